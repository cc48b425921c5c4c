package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Add is the elementwise sum of two tensors of one shape (the residual
// connection). Its gradient passes through unchanged to both inputs.
func Add(x, y *G.Node) (*G.Node, error) {
	if !x.Shape().Eq(y.Shape()) {
		return nil, fmt.Errorf("add: shapes %v and %v differ", x.Shape(), y.Shape())
	}
	return apply(&addOp{rank: x.Dims()}, x, y)
}

type addOp struct {
	pure
	rank int
	out  buffer
}

func (op *addOp) Arity() int { return 2 }
func (op *addOp) Type() hm.Type {
	t := tensorType(op.rank)
	return hm.NewFnType(t, t, t)
}
func (op *addOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, op.rank, op.rank)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}
func (op *addOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.Add{%d}", op.rank) }
func (op *addOp) Hashcode() uint32      { return hashOf(op) }
func (op *addOp) String() string        { return "Add" }

func (op *addOp) Do(in ...G.Value) (G.Value, error) {
	x, err := dense(in[0], "add x")
	if err != nil {
		return nil, err
	}
	y, err := dense(in[1], "add y")
	if err != nil {
		return nil, err
	}
	out := op.out.get(x.Dtype(), x.Shape()...)
	switch x.Dtype() {
	case tensor.Float32:
		add(floats[float32](x, y, out))
	default:
		add(floats[float64](x, y, out))
	}
	return out, nil
}

func add[T Float](s [][]T) {
	x, y, out := s[0], s[1], s[2]
	parallelFor(len(x), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			out[i] = x[i] + y[i]
		}
	})
}

func (op *addOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *addOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	return G.Nodes{grad, grad}, nil
}
