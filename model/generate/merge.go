package generate

import (
	"fmt"

	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/model"
)

// Merge returns a copy of w with every update of lr folded into its base
// weight, W' = W + scale·b·a (LoRA, Hu et al. 2021, §4.1: no inference
// latency once merged). w itself is left unchanged.
func Merge(w *model.Weights, lr LowRank) (*model.Weights, error) {
	out, err := model.Allocate(w.Config)
	if err != nil {
		return nil, fmt.Errorf("merge: %w", err)
	}
	src, dst := w.Named(), out.Named()
	if len(src) != len(dst) {
		return nil, fmt.Errorf("merge: weights have %d tensors, the config implies %d", len(src), len(dst))
	}
	for i := range src {
		s, d := model.F32(src[i].Tensor), model.F32(dst[i].Tensor)
		if len(s) != len(d) || src[i].Name != dst[i].Name {
			return nil, fmt.Errorf("merge: %s has %d values, want %d", src[i].Name, len(s), len(d))
		}
		copy(d, s)
	}
	for l := range out.Layers {
		for _, m := range model.LinearModules {
			a, b, r, scale, ok := lr.LowRank(l, m)
			if !ok {
				continue
			}
			t, err := out.Layers[l].Linear(m)
			if err != nil {
				return nil, fmt.Errorf("merge: %w", err)
			}
			shape := t.Shape()
			o, in := shape[0], shape[1]
			if r <= 0 || len(a) != r*in || len(b) != o*r {
				return nil, fmt.Errorf("merge: layer %d %s: rank %d with a of %d and b of %d values, want %d and %d",
					l, m, r, len(a), len(b), r*in, o*r)
			}
			// W (out, in) += scale · b (out, r) · a (r, in)
			blas.Gemm(false, false, o, in, r, scale, b, a, 1, model.F32(t))
		}
	}
	return out, nil
}
