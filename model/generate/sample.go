package generate

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
)

// sampler draws the next token of one sequence from its logits, applying
// in Hugging Face's order: repetition penalty, temperature, top-k, top-p.
type sampler struct {
	opt  Options
	rng  *rand.Rand
	seen []uint64 // bitset over the vocabulary: ids in prompt or output
	ids  []int    // the ids set in seen, in first-seen order
	cand []cand   // scratch
	raw  []float32
}

type cand struct {
	id int
	p  float32
}

func newSampler(opt Options, V int, prompt []int) *sampler {
	s := &sampler{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x5851f42d4c957f2d))}
	if opt.RepetitionPenalty > 0 && opt.RepetitionPenalty != 1 {
		s.seen = make([]uint64, (V+63)/64)
		for _, t := range prompt {
			s.see(t)
		}
	}
	return s
}

func (s *sampler) see(t int) {
	if s.seen == nil {
		return
	}
	if s.seen[t/64]&(1<<(t%64)) == 0 {
		s.seen[t/64] |= 1 << (t % 64)
		s.ids = append(s.ids, t)
	}
}

// next picks a token from logits (which it modifies) and returns it with
// its log-probability under the unmodified model distribution when
// Options.LogProbs is set (else 0).
func (s *sampler) next(logits []float32) (int, float32) {
	var lse float32
	if s.opt.LogProbs {
		s.raw = append(s.raw[:0], logits...)
		lse = logSumExp(logits)
	}
	// Repetition penalty (Keskar et al. 2019, CTRL, eq. 4 as implemented by
	// Hugging Face): logits of seen tokens are divided by θ when positive and
	// multiplied by θ when negative, so they always become less likely.
	if p := float32(s.opt.RepetitionPenalty); s.seen != nil {
		for _, t := range s.ids {
			if logits[t] > 0 {
				logits[t] /= p
			} else {
				logits[t] *= p
			}
		}
	}
	var tok int
	if s.opt.Temperature <= 0 {
		tok = argmax(logits)
	} else {
		tok = s.draw(logits)
	}
	s.see(tok)
	if s.opt.LogProbs {
		return tok, s.raw[tok] - lse
	}
	return tok, 0
}

// draw samples from softmax(logits/T) restricted to the top-k tokens and
// then to the smallest set whose probability reaches top-p (nucleus
// sampling, Holtzman et al. 2020, eq. 2).
func (s *sampler) draw(logits []float32) int {
	V := len(logits)
	invT := float32(1 / s.opt.Temperature)
	for i := range logits {
		logits[i] *= invT
	}
	c := s.cand[:0]
	k := s.opt.TopK
	if k > 0 && k < V {
		// The k largest: a bounded selection over the vocabulary. Ties are
		// broken by the lower id so the choice is deterministic.
		for i, v := range logits {
			c = append(c, cand{i, v})
		}
		selectTop(c, k)
		c = c[:k]
	} else {
		for i, v := range logits {
			c = append(c, cand{i, v})
		}
	}
	// Softmax over the candidates.
	m := float32(math.Inf(-1))
	for _, x := range c {
		m = max(m, x.p)
	}
	var sum float32
	for i := range c {
		c[i].p = expf(c[i].p - m)
		sum += c[i].p
	}
	for i := range c {
		c[i].p /= sum
	}
	if p := float32(s.opt.TopP); p > 0 && p < 1 {
		if len(c) > 1024 {
			// Tokens below (1−p)/(n−1) can never be in the nucleus: even if
			// all of them together were, the rest would still hold ≥ p.
			cut := (1 - p) / float32(len(c)-1)
			kept := c[:0]
			for _, x := range c {
				if x.p >= cut {
					kept = append(kept, x)
				}
			}
			c = kept
		}
		slices.SortFunc(c, byProbDesc)
		var cum float32
		for i, x := range c {
			cum += x.p
			if cum >= p {
				c = c[:i+1]
				break
			}
		}
	}
	s.cand = c[:0]
	var total float32
	for _, x := range c {
		total += x.p
	}
	u := s.rng.Float32() * total
	for _, x := range c {
		u -= x.p
		if u < 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}

func byProbDesc(a, b cand) int {
	if c := cmp.Compare(b.p, a.p); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// selectTop partially orders c so that its first k entries are the k
// largest (by byProbDesc), in no particular order (Hoare's quickselect).
func selectTop(c []cand, k int) {
	lo, hi := 0, len(c)-1
	for lo < hi {
		pivot := c[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for byProbDesc(c[i], pivot) < 0 {
				i++
			}
			for byProbDesc(c[j], pivot) > 0 {
				j--
			}
			if i <= j {
				c[i], c[j] = c[j], c[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// logSumExp is log Σ exp(v_i), computed stably around the maximum.
func logSumExp(v []float32) float32 {
	m := float32(math.Inf(-1))
	for _, x := range v {
		m = max(m, x)
	}
	var s float64
	for _, x := range v {
		s += float64(expf(x - m))
	}
	return m + float32(math.Log(s))
}
