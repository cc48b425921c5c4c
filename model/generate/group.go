package generate

import (
	"context"
	"fmt"
	"slices"
)

// CopyFrom makes s hold the same positions as src (a state of the same
// engine), so that one prefilled prompt can be continued several ways.
func (s *State) CopyFrom(src *State) {
	if len(s.k) != len(src.k) {
		panic(fmt.Sprintf("generate: copy a state of %d layers into one of %d", len(src.k), len(s.k)))
	}
	for l := range src.k {
		s.k[l] = append(s.k[l][:0], src.k[l]...)
		s.v[l] = append(s.v[l][:0], src.v[l]...)
	}
	s.n = src.n
}

// GenerateShared is Generate for requests of which several continue the
// same prompt, as the group of completions that GRPO samples per prompt:
// every distinct prompt is prefilled once, its key/value cache is copied
// into each of its requests' states and its last logits serve each of
// their first tokens; decoding then proceeds as in Generate. Requests of
// equal prompts and options but different seeds give the same results as
// through Generate, up to floating-point summation order.
func (e *Engine) GenerateShared(ctx context.Context, reqs []Request) ([]Result, error) {
	seqs := make([]*seq, len(reqs))
	var prefill []*State
	defer func() {
		for _, s := range seqs {
			if s != nil {
				e.putState(s.st)
			}
		}
		for _, st := range prefill {
			e.putState(st)
		}
	}()
	for i := range reqs {
		s, err := e.start(&reqs[i])
		if err != nil {
			return nil, fmt.Errorf("request %d: %w", i, err)
		}
		seqs[i] = s
	}
	// Distinct prompts, in order of first use.
	of := make([]int, len(reqs)) // request → its prompt's index in prompts
	var prompts [][]int
	for i := range reqs {
		k := slices.IndexFunc(prompts, func(p []int) bool { return slices.Equal(p, reqs[i].Prompt) })
		if k < 0 {
			k = len(prompts)
			prompts = append(prompts, reqs[i].Prompt)
			prefill = append(prefill, e.getState())
		}
		of[i] = k
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logits, err := e.Forward(prefill, prompts)
	if err != nil {
		return nil, err
	}
	feeds := make([][]int, len(seqs))
	scratch := make([]float32, e.V)
	for i, s := range seqs {
		s.st.CopyFrom(prefill[of[i]])
		copy(scratch, logits[of[i]]) // the sampler modifies its logits
		tok, lp := s.smp.next(scratch)
		e.push(s, tok, lp)
		if !s.done {
			feeds[i] = s.next()
		}
	}
	return e.decode(ctx, seqs, feeds)
}
