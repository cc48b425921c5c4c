package generate

import (
	"math"
	"strings"
	"testing"

	"github.com/gotune/gotune/model"
)

// This file holds what the tests compare against: an independent,
// full-recompute float64 forward pass written straight from Hugging Face's
// modeling_llama.py, with modeling_qwen3.py's per-head q/k norms (no cache,
// no BLAS, no shared code with the engine), and a byte tokenizer.

// refLogits returns the (T, V) logits of every position of toks.
func refLogits(w *model.Weights, toks []int, lr LowRank) [][]float64 {
	c := w.Config
	C, F, H, KVH, D, V := c.HiddenSize, c.IntermediateSize, c.NumAttentionHeads, c.KVHeads(), c.HeadDim(), c.VocabSize
	T := len(toks)
	f := func(t interface{ Data() any }) []float32 { return t.Data().([]float32) }
	// lin: y = x·Wᵀ (+ b) (+ scale·(x·aᵀ)·bᵀ)
	lin := func(x []float64, W []float32, bias []float32, out int, layer int, module string) []float64 {
		in := len(x)
		y := make([]float64, out)
		for o := range out {
			var s float64
			for i := range in {
				s += x[i] * float64(W[o*in+i])
			}
			if bias != nil {
				s += float64(bias[o])
			}
			y[o] = s
		}
		if lr != nil {
			if a, b, r, scale, ok := lr.LowRank(layer, module); ok {
				t := make([]float64, r)
				for k := range r {
					for i := range in {
						t[k] += x[i] * float64(a[k*in+i])
					}
				}
				for o := range out {
					for k := range r {
						y[o] += float64(scale) * t[k] * float64(b[o*r+k])
					}
				}
			}
		}
		return y
	}
	norm := func(x []float64, g []float32) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss/float64(len(x))+c.RMSNormEps)
		y := make([]float64, len(x))
		for i := range x {
			y[i] = x[i] * inv * float64(g[i])
		}
		return y
	}
	inv := c.InvFreq()
	rope := func(v []float64, pos int) {
		for h := 0; h < len(v)/D; h++ {
			x := v[h*D : (h+1)*D]
			rot := make([]float64, D) // rotate_half: (−x₂, x₁)
			for i := range D / 2 {
				rot[i] = -x[i+D/2]
				rot[i+D/2] = x[i]
			}
			for i := range D {
				a := float64(pos) * inv[i%(D/2)]
				x[i] = x[i]*math.Cos(a) + rot[i]*math.Sin(a)
			}
		}
	}
	bias := func(t interface{ Data() any }) []float32 {
		if t == nil || !c.AttentionBias {
			return nil
		}
		return f(t)
	}
	x := make([][]float64, T)
	for t, id := range toks {
		x[t] = make([]float64, C)
		for i := range C {
			x[t][i] = float64(f(w.Embed)[id*C+i])
		}
	}
	for l, ly := range w.Layers {
		var bq, bk, bv interface{ Data() any }
		if ly.Bq != nil {
			bq, bk, bv = ly.Bq, ly.Bk, ly.Bv
		}
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			h := norm(x[t], f(ly.AttnNorm))
			q[t] = lin(h, f(ly.Wq), bias(bq), H*D, l, "q_proj")
			k[t] = lin(h, f(ly.Wk), bias(bk), KVH*D, l, "k_proj")
			v[t] = lin(h, f(ly.Wv), bias(bv), KVH*D, l, "v_proj")
			if ly.QNorm != nil { // Qwen3Attention: q_norm, k_norm per head
				for hd := range H {
					copy(q[t][hd*D:(hd+1)*D], norm(q[t][hd*D:(hd+1)*D], f(ly.QNorm)))
				}
				for hd := range KVH {
					copy(k[t][hd*D:(hd+1)*D], norm(k[t][hd*D:(hd+1)*D], f(ly.KNorm)))
				}
			}
			rope(q[t], t)
			rope(k[t], t)
		}
		for t := range T {
			att := make([]float64, H*D)
			for h := range H {
				kv := h / (H / KVH)
				s := make([]float64, t+1)
				m := math.Inf(-1)
				for u := 0; u <= t; u++ {
					for i := range D {
						s[u] += q[t][h*D+i] * k[u][kv*D+i]
					}
					s[u] /= math.Sqrt(float64(D))
					m = math.Max(m, s[u])
				}
				var z float64
				for u := range s {
					s[u] = math.Exp(s[u] - m)
					z += s[u]
				}
				for u := range s {
					for i := range D {
						att[h*D+i] += s[u] / z * v[u][kv*D+i]
					}
				}
			}
			o := lin(att, f(ly.Wo), nil, C, l, "o_proj")
			for i := range C {
				x[t][i] += o[i]
			}
			h := norm(x[t], f(ly.MLPNorm))
			g := lin(h, f(ly.Gate), nil, F, l, "gate_proj")
			u := lin(h, f(ly.Up), nil, F, l, "up_proj")
			for i := range F {
				g[i] = g[i] / (1 + math.Exp(-g[i])) * u[i]
			}
			d := lin(g, f(ly.Down), nil, C, l, "down_proj")
			for i := range C {
				x[t][i] += d[i]
			}
		}
	}
	out := make([][]float64, T)
	for t := range T {
		out[t] = lin(norm(x[t], f(w.Norm)), f(w.LMHead), nil, V, -1, "lm_head")
	}
	return out
}

// byteTok is a byte-level tokenizer: ids 0..255 are bytes, 256 is BOS and
// 257 EOS (both special, skipped in decoding); higher ids decode to "".
type byteTok struct{ eos int }

func newByteTok() *byteTok { return &byteTok{eos: 257} }

func (b *byteTok) Encode(s string, addSpecial bool) []int {
	var ids []int
	if addSpecial {
		ids = append(ids, 256)
	}
	for i := 0; i < len(s); i++ {
		ids = append(ids, int(s[i]))
	}
	return ids
}

func (b *byteTok) Decode(ids []int, skipSpecial bool) string {
	var sb strings.Builder
	var raw []byte
	for _, id := range ids {
		switch {
		case id < 256:
			raw = append(raw, byte(id))
		case !skipSpecial && id == 256:
			raw = append(raw, "<s>"...)
		case !skipSpecial && id == 257:
			raw = append(raw, "</s>"...)
		}
	}
	// Invalid UTF-8 becomes U+FFFD, as Hugging Face's decoders do.
	sb.WriteString(strings.ToValidUTF8(string(raw), "\uFFFD"))
	return sb.String()
}

func (b *byteTok) EOS() int { return b.eos }

// testConfig is a small model with GQA; vocabulary 300 covers byteTok.
func testConfig(t testing.TB) model.Config {
	t.Helper()
	c, err := model.Preset("tiny", 300)
	if err != nil {
		t.Fatal(err)
	}
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 32, 48, 2
	c.NumAttentionHeads, c.NumKeyValueHeads = 4, 2
	c.MaxPositionEmbeddings = 96
	return c
}

func randomWeights(t testing.TB, c model.Config, seed uint64) *model.Weights {
	t.Helper()
	w, err := model.NewRandom(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	// Larger weights than the initialisation make sharper, more varied
	// logits, so that argmax comparisons are not decided by ties.
	for _, n := range w.Named() {
		d := model.F32(n.Tensor)
		if n.Tensor.Dims() == 1 {
			for i := range d {
				d[i] = 1 + 0.1*float32(math.Sin(float64(i)))
			}
			continue
		}
		for i := range d {
			d[i] *= 8
		}
	}
	return w
}
