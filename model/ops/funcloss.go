package ops

import (
	"fmt"
	"hash"
	"sync/atomic"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LossFunc is a scalar loss written as a plain Go function of the values of
// some graph nodes (each flattened), returning the loss and its gradient
// with respect to each input: grad[i] has len(in[i]).
type LossFunc func(in [][]float64) (loss float64, grad [][]float64)

// funcLossIDs tells FuncLoss nodes apart: two Go functions cannot be
// compared, so every call gets its own identity.
var funcLossIDs atomic.Int64

// FuncLoss turns fn into a scalar node of the inputs. The forward pass
// calls fn once and keeps its gradient; the backward pass hands each
// input its part, multiplied by the upstream gradient.
func FuncLoss(name string, fn LossFunc, in ...*G.Node) (*G.Node, error) {
	if fn == nil || len(in) == 0 {
		return nil, fmt.Errorf("func loss %q: needs a function and at least one input", name)
	}
	op := &funcLossOp{name: name, id: funcLossIDs.Add(1), fn: fn}
	for _, n := range in {
		op.ranks = append(op.ranks, n.Dims())
		op.shapes = append(op.shapes, n.Shape().Clone())
	}
	return apply(op, in...)
}

type funcLossOp struct {
	pure
	name   string
	id     int64
	fn     LossFunc
	ranks  []int
	shapes []tensor.Shape
	in     [][]float64 // inputs as float64, reused
	grad   [][]float64 // fn's gradient from the last forward pass
}

func (op *funcLossOp) Arity() int { return len(op.ranks) }
func (op *funcLossOp) Type() hm.Type {
	ts := make([]hm.Type, 0, len(op.ranks)+1)
	for _, r := range op.ranks {
		ts = append(ts, rankType(r))
	}
	return hm.NewFnType(append(ts, a)...)
}

// rankType is a tensor type of rank r, or the scalar type a for r = 0.
func rankType(r int) hm.Type {
	if r == 0 {
		return a
	}
	return tensorType(r)
}

func (op *funcLossOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.ScalarShape(), nil
}
func (op *funcLossOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.FuncLoss{%s,%d}", op.name, op.id)
}
func (op *funcLossOp) Hashcode() uint32 { return hashOf(op) }
func (op *funcLossOp) String() string   { return "FuncLoss(" + op.name + ")" }

func (op *funcLossOp) Do(in ...G.Value) (G.Value, error) {
	if len(op.in) != len(in) {
		op.in = make([][]float64, len(in))
	}
	var dt tensor.Dtype
	for i, v := range in {
		switch d := v.Data().(type) {
		case []float32:
			op.in[i] = grow(op.in[i], len(d))
			for j, x := range d {
				op.in[i][j] = float64(x)
			}
		case []float64:
			op.in[i] = grow(op.in[i], len(d))
			copy(op.in[i], d)
		case float32:
			op.in[i] = append(op.in[i][:0], float64(d))
		case float64:
			op.in[i] = append(op.in[i][:0], d)
		default:
			return nil, fmt.Errorf("func loss %q: input %d has unsupported type %T", op.name, i, v)
		}
		dt = v.Dtype()
	}
	loss, grad := op.fn(op.in)
	if len(grad) != len(in) {
		return nil, fmt.Errorf("func loss %q: %d gradients for %d inputs", op.name, len(grad), len(in))
	}
	for i, g := range grad {
		if len(g) != len(op.in[i]) {
			return nil, fmt.Errorf("func loss %q: gradient %d has %d values, input has %d", op.name, i, len(g), len(op.in[i]))
		}
	}
	op.grad = grad
	return newScalar(dt, loss), nil
}

func (op *funcLossOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}
func (op *funcLossOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	grads := make(G.Nodes, len(in))
	for i := range in {
		var err error
		if grads[i], err = apply(&funcLossGradOp{fwd: op, i: i}, out, grad); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// funcLossGradOp hands input i its gradient, scaled by the upstream
// gradient; its children are (loss, upstream gradient).
type funcLossGradOp struct {
	pure
	terminal
	fwd *funcLossOp
	i   int
	out buffer
}

func (op *funcLossGradOp) Arity() int { return 2 }
func (op *funcLossGradOp) Type() hm.Type {
	return hm.NewFnType(a, a, rankType(op.fwd.ranks[op.i]))
}
func (op *funcLossGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.fwd.shapes[op.i].Clone(), nil
}
func (op *funcLossGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.FuncLossGrad{%s,%d,%d}", op.fwd.name, op.fwd.id, op.i)
}
func (op *funcLossGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *funcLossGradOp) String() string {
	return fmt.Sprintf("FuncLossGrad(%s,%d)", op.fwd.name, op.i)
}

func (op *funcLossGradOp) Do(in ...G.Value) (G.Value, error) {
	s, err := scalar(in[1])
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	if op.fwd.grad == nil {
		return nil, fmt.Errorf("%v: forward pass has not run", op)
	}
	g := op.fwd.grad[op.i]
	dt := in[0].Dtype()
	shape := op.fwd.shapes[op.i]
	if shape.Dims() == 0 {
		return newScalar(dt, s*g[0]), nil
	}
	out := op.out.get(dt, shape...)
	switch d := out.Data().(type) {
	case []float32:
		for j, v := range g {
			d[j] = float32(s * v)
		}
	case []float64:
		for j, v := range g {
			d[j] = s * v
		}
	}
	return out, nil
}
