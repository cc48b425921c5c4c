package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RMSNorm normalises each row of x (N, C) by its root mean square and
// scales by weight (C) (Zhang & Sennrich 2019, eq. 4, with ε inside the
// root as in LLaMA):
//
//	y = x · r · w,   r = 1 / √(mean(x²) + ε)
func RMSNorm(x, weight *G.Node, eps float64) (*G.Node, error) {
	return apply(&rmsnormOp{eps: eps, heads: 1}, x, weight)
}

// HeadRMSNorm normalises each of the heads blocks of D values in every row
// of x (N, heads·D) on its own, all with the same weight (D): RMSNorm over
// the head dimension, as Qwen3 applies to queries and keys (its q_norm and
// k_norm). It is RMSNorm of x viewed as (N·heads, D), so it shares
// RMSNorm's kernels and backward pass.
func HeadRMSNorm(x, weight *G.Node, eps float64, heads int) (*G.Node, error) {
	if heads <= 0 {
		return nil, fmt.Errorf("head rmsnorm: %d heads", heads)
	}
	return apply(&rmsnormOp{eps: eps, heads: heads}, x, weight)
}

type rmsnormOp struct {
	pure
	eps   float64
	heads int // blocks per row normalised separately (1: the whole row)
	out   buffer
}

func (op *rmsnormOp) Arity() int { return 2 }
func (op *rmsnormOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(1), tensorType(2))
}
func (op *rmsnormOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 1)
	if err != nil {
		return nil, err
	}
	if s[0][1] != op.heads*s[1][0] {
		return nil, fmt.Errorf("rmsnorm: x %v is not %d heads of weight %v", s[0], op.heads, s[1])
	}
	return s[0].Clone(), nil
}
func (op *rmsnormOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.RMSNorm{%v,%d}", op.eps, op.heads)
}
func (op *rmsnormOp) Hashcode() uint32 { return hashOf(op) }
func (op *rmsnormOp) String() string {
	if op.heads > 1 {
		return "HeadRMSNorm"
	}
	return "RMSNorm"
}

func (op *rmsnormOp) Do(in ...G.Value) (G.Value, error) {
	x, err := dense(in[0], "rmsnorm x")
	if err != nil {
		return nil, err
	}
	w, err := dense(in[1], "rmsnorm weight")
	if err != nil {
		return nil, err
	}
	out := op.out.get(x.Dtype(), x.Shape()...)
	// Rows of the kernel: every head of every row.
	N, C := x.Shape()[0]*op.heads, w.Shape()[0]
	switch x.Dtype() {
	case tensor.Float32:
		rmsnormForward(floats[float32](x, w, out), N, C, op.eps)
	default:
		rmsnormForward(floats[float64](x, w, out), N, C, op.eps)
	}
	return out, nil
}

// rstd is r = 1/√(mean(row²) + ε), accumulated in float64.
func rstd[T Float](row []T, eps float64) float64 {
	var ss float64
	for _, v := range row {
		ss += float64(v) * float64(v)
	}
	return 1 / math.Sqrt(ss/float64(len(row))+eps)
}

// rmsnormForward computes y = x·r·w row by row; s = {x, w, y}.
func rmsnormForward[T Float](s [][]T, N, C int, eps float64) {
	x, w, y := s[0], s[1], s[2]
	parallelFor(N, 64, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			xr, yr := x[n*C:(n+1)*C], y[n*C:(n+1)*C]
			r := T(rstd(xr, eps))
			for c, v := range xr {
				yr[c] = v * r * w[c]
			}
		}
	})
}

func (op *rmsnormOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *rmsnormOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	dx, err := apply(&rmsnormGradOp{eps: op.eps, heads: op.heads}, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	dw, err := apply(&rmsnormGradOp{eps: op.eps, heads: op.heads, weight: true}, in[0], in[1], grad)
	return G.Nodes{dx, dw}, err
}

// rmsnormGradOp is one half of RMSNorm's backward pass, from (x, w, dy).
// With x̂ = x·r and g = dy ⊙ w (r recomputed, a cheap pass over x):
//
//	dx = r · (g − x̂ · mean(g ⊙ x̂))     (per row)
//	dw = Σ_rows dy ⊙ x̂
type rmsnormGradOp struct {
	pure
	terminal
	eps    float64
	heads  int  // as rmsnormOp.heads
	weight bool // dw instead of dx
	out    buffer
}

func (op *rmsnormGradOp) Arity() int { return 3 }
func (op *rmsnormGradOp) Type() hm.Type {
	if op.weight {
		return hm.NewFnType(tensorType(2), tensorType(1), tensorType(2), tensorType(1))
	}
	return hm.NewFnType(tensorType(2), tensorType(1), tensorType(2), tensorType(2))
}
func (op *rmsnormGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 1, 2)
	if err != nil {
		return nil, err
	}
	if op.weight {
		return s[1].Clone(), nil
	}
	return s[0].Clone(), nil
}
func (op *rmsnormGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.RMSNormGrad{%v,%d,%v}", op.eps, op.heads, op.weight)
}
func (op *rmsnormGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *rmsnormGradOp) String() string {
	if op.weight {
		return "RMSNormGradW"
	}
	return "RMSNormGradX"
}

func (op *rmsnormGradOp) Do(in ...G.Value) (G.Value, error) {
	var ts [3]*tensor.Dense
	if err := denses(ts[:], in, "rmsnorm gradient", "x", "weight", "dy"); err != nil {
		return nil, err
	}
	N, C := ts[0].Shape()[0]*op.heads, ts[1].Shape()[0]
	var out *tensor.Dense
	if op.weight {
		out = op.out.get(ts[0].Dtype(), C)
	} else {
		out = op.out.get(ts[0].Dtype(), ts[0].Shape()...)
	}
	switch ts[0].Dtype() {
	case tensor.Float32:
		rmsnormBackward(floats[float32](ts[0], ts[1], ts[2], out), N, C, op.eps, op.weight)
	default:
		rmsnormBackward(floats[float64](ts[0], ts[1], ts[2], out), N, C, op.eps, op.weight)
	}
	return out, nil
}

// rmsnormBackward writes dx (weight = false) or dw; s = {x, w, dy, out}.
func rmsnormBackward[T Float](s [][]T, N, C int, eps float64, weight bool) {
	x, w, dy, out := s[0], s[1], s[2], s[3]
	if weight {
		// Columns are split between workers so each owns its sums.
		parallelFor(C, 32, func(lo, hi int) {
			acc := make([]float64, hi-lo)
			for n := range N {
				xr := x[n*C : (n+1)*C]
				r := rstd(xr, eps)
				for c := lo; c < hi; c++ {
					acc[c-lo] += float64(dy[n*C+c]) * float64(xr[c]) * r
				}
			}
			for c := lo; c < hi; c++ {
				out[c] = T(acc[c-lo])
			}
		})
		return
	}
	parallelFor(N, 64, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			xr, dyr, dxr := x[n*C:(n+1)*C], dy[n*C:(n+1)*C], out[n*C:(n+1)*C]
			r := rstd(xr, eps)
			var dot float64 // Σ g ⊙ x̂
			for c, v := range xr {
				dot += float64(dyr[c]) * float64(w[c]) * float64(v) * r
			}
			mean := dot / float64(C)
			for c, v := range xr {
				dxr[c] = T(r * (float64(dyr[c])*float64(w[c]) - float64(v)*r*mean))
			}
		}
	})
}
