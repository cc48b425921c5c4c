package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
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
	out buffer
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
	return swigluDo(&op.out, -1, in...)
}

// swigluDo runs the forward pass (which < 0) or the gradient of input
// which (0 gate, 1 up) from (gate, up[, dm]).
func swigluDo(b *buffer, which int, in ...G.Value) (G.Value, error) {
	var ts [3]*tensor.Dense
	for i := range in {
		t, err := dense(in[i], "swiglu input")
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	out := b.get(ts[0].Dtype(), ts[0].Shape()...)
	switch ts[0].Dtype() {
	case tensor.Float32:
		swiglu(floats[float32](ts[0], ts[1], ts[2], out), which)
	default:
		swiglu(floats[float64](ts[0], ts[1], ts[2], out), which)
	}
	return out, nil
}

// swiglu writes into s[3]; s = {gate, up, dm (nil in the forward pass), out}.
//
//	forward:  silu(g)·u
//	dgate:    dm·u·σ(g)·(1 + g·(1 − σ(g)))
//	dup:      dm·silu(g)
func swiglu[T Float](s [][]T, which int) {
	g, u, dm, out := s[0], s[1], s[2], s[3]
	parallelFor(len(g), 4096, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			sig := 1 / (1 + expT(-g[i]))
			switch which {
			case 0:
				out[i] = dm[i] * u[i] * sig * (1 + g[i]*(1-sig))
			case 1:
				out[i] = dm[i] * g[i] * sig
			default:
				out[i] = g[i] * sig * u[i]
			}
		}
	})
}

func (op *swigluOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *swigluOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	dg, err := apply(&swigluGradOp{which: 0}, in[0], in[1], grad)
	if err != nil {
		return nil, err
	}
	du, err := apply(&swigluGradOp{which: 1}, in[0], in[1], grad)
	return G.Nodes{dg, du}, err
}

// swigluGradOp is the gradient of SwiGLU for its gate (which = 0) or up
// (which = 1) input, from (gate, up, dm).
type swigluGradOp struct {
	pure
	terminal
	which int
	out   buffer
}

func (op *swigluGradOp) Arity() int { return 3 }
func (op *swigluGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(2))
}
func (op *swigluGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}
func (op *swigluGradOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.SwiGLUGrad{%d}", op.which) }
func (op *swigluGradOp) Hashcode() uint32      { return hashOf(op) }
func (op *swigluGradOp) String() string        { return fmt.Sprintf("SwiGLUGrad%d", op.which) }
func (op *swigluGradOp) Do(in ...G.Value) (G.Value, error) {
	return swigluDo(&op.out, op.which, in...)
}
