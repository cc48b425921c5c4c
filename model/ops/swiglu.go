package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/model/ops/internal/vec"
)

// SwiGLU is the gated activation of the LLaMA MLP (Shazeer 2020, eq. 6 of
// "GLU Variants Improve Transformer"), elementwise on gate and up (N, F):
//
//	m = silu(gate) ⊙ up,   silu(x) = x·σ(x)
func SwiGLU(gate, up *G.Node) (*G.Node, error) {
	return apply(&swigluOp{}, gate, up)
}

type swigluOp struct {
	pure
	out   buffer
	grads swigluGrads // filled by the backward pass
}

func (op *swigluOp) Arity() int { return 2 }
func (op *swigluOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2))
}
func (op *swigluOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2)
	if err != nil {
		return nil, err
	}
	if !s[0].Eq(s[1]) {
		return nil, fmt.Errorf("swiglu: gate %v and up %v disagree", s[0], s[1])
	}
	return s[0].Clone(), nil
}
func (op *swigluOp) WriteHash(h hash.Hash) { fmt.Fprint(h, "gotune.SwiGLU") }
func (op *swigluOp) Hashcode() uint32      { return hashOf(op) }
func (op *swigluOp) String() string        { return "SwiGLU" }

func (op *swigluOp) Do(in ...G.Value) (G.Value, error) {
	var ts [2]*tensor.Dense
	for i := range ts {
		t, err := dense(in[i], "swiglu input")
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	out := op.out.get(ts[0].Dtype(), ts[0].Shape()...)
	switch ts[0].Dtype() {
	case tensor.Float32:
		swigluForward(floats[float32](ts[0], ts[1], out))
	default:
		swigluForward(floats[float64](ts[0], ts[1], out))
	}
	return out, nil
}

// swigluForward computes silu(g)·u; s = {gate, up, out}.
func swigluForward[T Float](s [][]T) {
	g, u, out := s[0], s[1], s[2]
	parallelFor(len(g), 4096, func(lo, hi int) {
		if n8 := (hi - lo) &^ 7; n8 > 0 && vec.Available {
			if g32, ok := any(g[lo : lo+n8]).([]float32); ok {
				vec.SwiGLU(any(out[lo:lo+n8]).([]float32), g32, any(u[lo:lo+n8]).([]float32))
				lo += n8
			}
		}
		var sig [256]T
		for b := lo; b < hi; b += len(sig) {
			n := min(len(sig), hi-b)
			sigmoid(sig[:n], g[b:b+n])
			for j, sg := range sig[:n] {
				i := b + j
				out[i] = g[i] * sg * u[i]
			}
		}
	})
}

func (op *swigluOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *swigluOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	bwd, err := apply(&swigluGradOp{fwd: op}, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	dg, err := newPick(&op.grads, bwd, 0, "dgate", in[0].Shape())
	if err != nil {
		return nil, err
	}
	du, err := newPick(&op.grads, bwd, 1, "dup", in[1].Shape())
	return G.Nodes{dg, du}, err
}

// swigluGrads are the gate and up gradients of one backward pass.
type swigluGrads struct{ dg, du buffer }

func (g *swigluGrads) output(i int) *tensor.Dense {
	if i == 0 {
		return g.dg.t
	}
	return g.du.t
}

// swigluGradOp is SwiGLU's backward pass from (gate, up, dm), both
// gradients in one pass so σ is computed once:
//
//	dgate = dm·u·σ(g)·(1 + g·(1 − σ(g))),   dup = dm·silu(g)
type swigluGradOp struct {
	pure
	terminal
	fwd         *swigluOp
	placeholder buffer
}

func (op *swigluGradOp) Arity() int { return 3 }
func (op *swigluGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(1))
}
func (op *swigluGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{1}, nil
}
func (op *swigluGradOp) WriteHash(h hash.Hash) { fmt.Fprint(h, "gotune.SwiGLUGrad") }
func (op *swigluGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *swigluGradOp) String() string        { return "SwiGLUGrad" }

func (op *swigluGradOp) Do(in ...G.Value) (G.Value, error) {
	var ts [3]*tensor.Dense
	for i := range ts {
		t, err := dense(in[i], "swiglu gradient input")
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	dt, shape := ts[0].Dtype(), ts[0].Shape()
	dg, du := op.fwd.grads.dg.get(dt, shape...), op.fwd.grads.du.get(dt, shape...)
	switch dt {
	case tensor.Float32:
		swigluBackward(floats[float32](ts[0], ts[1], ts[2], dg, du))
	default:
		swigluBackward(floats[float64](ts[0], ts[1], ts[2], dg, du))
	}
	return placeholder(&op.placeholder, dt), nil
}

// swigluBackward fills dgate and dup; s = {gate, up, dm, dgate, dup}.
func swigluBackward[T Float](s [][]T) {
	g, u, dm, dg, du := s[0], s[1], s[2], s[3], s[4]
	parallelFor(len(g), 4096, func(lo, hi int) {
		if n8 := (hi - lo) &^ 7; n8 > 0 && vec.Available {
			if g32, ok := any(g[lo : lo+n8]).([]float32); ok {
				f32 := func(x []T) []float32 { return any(x[lo : lo+n8]).([]float32) }
				vec.SwiGLUBackward(f32(dg), f32(du), g32, f32(u), f32(dm))
				lo += n8
			}
		}
		var sig [256]T
		for b := lo; b < hi; b += len(sig) {
			n := min(len(sig), hi-b)
			sigmoid(sig[:n], g[b:b+n])
			for j, sg := range sig[:n] {
				i := b + j
				dg[i] = dm[i] * u[i] * sg * (1 + g[i]*(1-sg))
				du[i] = dm[i] * g[i] * sg
			}
		}
	})
}

// sigmoid sets dst = σ(x) = 1/(1 + e^−x), with the vector exp in float32.
func sigmoid[T Float](dst, x []T) {
	for j, v := range x {
		dst[j] = -v
	}
	switch d := any(dst).(type) {
	case []float32:
		expShiftSums32(d, 0)
	case []float64:
		for j, v := range d {
			d[j] = math.Exp(v)
		}
	}
	for j, e := range dst {
		dst[j] = 1 / (1 + e)
	}
}
