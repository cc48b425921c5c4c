package ops

import (
	"errors"
	"fmt"
	"hash"
	"hash/fnv"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Planner is implemented by operations whose work depends on which of their
// gradient nodes the program about to run contains (a fused loss computes
// its gradients during the forward pass only when a program needs them; a
// fused backward skips a weight gradient nobody reads). The program calls
// Plan before every run.
type Planner interface {
	Plan(inProgram func(*G.Node) bool)
}

// a is the element type variable every operation's signature is written in.
var a = hm.TypeVariable('a')

// tensorType is a tensor of the given rank over the element type a.
func tensorType(dims int) hm.Type { return G.TensorType{Dims: dims, Of: a} }

// hashOf is the 32-bit FNV hash of an operation's WriteHash text. Gorgonia
// merges nodes whose hashes agree, so WriteHash must name every field that
// changes the result.
func hashOf(op interface{ WriteHash(hash.Hash) }) uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}

// pure is embedded by every operation: results go to a fresh register that
// gorgonia never aliases with an input, and no cgo trampoline batching.
type pure struct{}

func (pure) ReturnsPtr() bool     { return false }
func (pure) CallsExtern() bool    { return false }
func (pure) OverwritesInput() int { return -1 }

// terminal is embedded by backward operations: they are never differentiated.
type terminal struct{}

func (terminal) DiffWRT(n int) []bool { return make([]bool, n) }
func (terminal) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, errors.New("backward operations are not differentiable")
}

// buffer is where an operation writes an output, reused across runs: the
// operation's own tensor, or memory a program placed it in (PlaceOutput).
type buffer struct {
	t   *tensor.Dense // the output's memory: placed, or own
	own *tensor.Dense // the operation's own, allocated when first needed
}

// get returns the buffer: the placed memory when it fits dtype and shape,
// else the operation's own, (re)allocated when dtype or shape changed.
// Its contents are whatever the last run left there.
func (b *buffer) get(dt tensor.Dtype, shape ...int) *tensor.Dense {
	fits := func(t *tensor.Dense) bool {
		return t != nil && t.Dtype() == dt && t.Shape().Eq(tensor.Shape(shape))
	}
	if fits(b.t) {
		return b.t
	}
	if !fits(b.own) {
		b.own = tensor.New(tensor.Of(dt), tensor.WithShape(shape...))
	}
	b.t = b.own
	return b.t
}

// place points the buffer at t; nil returns it to the operation's own.
func (b *buffer) place(t *tensor.Dense) { b.t = t }

// grow returns s resized to n, reallocating only when it is too short (a
// private scratch slice reused across runs).
func grow[T Float](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// dense returns the tensor behind a value, checking its element type.
func dense(v G.Value, what string) (*tensor.Dense, error) {
	t, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("%s: want a dense tensor, got %T", what, v)
	}
	if dt := t.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 {
		return nil, fmt.Errorf("%s: dtype %v is not supported (float32 or float64)", what, dt)
	}
	return t, nil
}

// denses checks an operation's inputs as dense tensors into dst (one per
// name), each named for errors as "what name". dst is the caller's array,
// so that an operation's Do allocates nothing.
func denses(dst []*tensor.Dense, in []G.Value, what string, names ...string) error {
	for i, name := range names {
		t, err := dense(in[i], what+" "+name)
		if err != nil {
			return err
		}
		dst[i] = t
	}
	return nil
}

// floats returns the backing slices of tensors sharing the element type T.
func floats[T Float](ts ...*tensor.Dense) [][]T {
	out := make([][]T, len(ts))
	for i, t := range ts {
		if t != nil {
			out[i] = t.Data().([]T)
		}
	}
	return out
}

// scalar reads a scalar value (a gorgonia F32/F64 or a one-element tensor).
func scalar(v G.Value) (float64, error) {
	switch s := v.(type) {
	case *G.F32:
		return float64(*s), nil
	case *G.F64:
		return float64(*s), nil
	case tensor.Tensor:
		if s.Shape().TotalSize() != 1 {
			return 0, fmt.Errorf("want a scalar, got shape %v", s.Shape())
		}
		switch d := s.Data().(type) {
		case []float32:
			return float64(d[0]), nil
		case []float64:
			return d[0], nil
		case float32:
			return float64(d), nil
		case float64:
			return d, nil
		}
	}
	return 0, fmt.Errorf("want a float scalar, got %T", v)
}

// newScalar wraps x as a gorgonia scalar of the given element type.
func newScalar(dt tensor.Dtype, x float64) G.Value {
	if dt == tensor.Float64 {
		v := G.F64(x)
		return &v
	}
	return G.NewF32(float32(x))
}

// shapeOf converts a DimSizer handed to InferShape into a shape.
func shapeOf(d G.DimSizer) (tensor.Shape, error) {
	s, ok := d.(tensor.Shape)
	if !ok {
		return nil, fmt.Errorf("want a shape, got %T", d)
	}
	return s, nil
}

// shapes converts InferShape's arguments, checking their ranks.
func shapes(ds []G.DimSizer, ranks ...int) ([]tensor.Shape, error) {
	if len(ds) != len(ranks) {
		return nil, fmt.Errorf("want %d inputs, got %d", len(ranks), len(ds))
	}
	out := make([]tensor.Shape, len(ds))
	for i, d := range ds {
		s, err := shapeOf(d)
		if err != nil {
			return nil, err
		}
		if s.Dims() != ranks[i] {
			return nil, fmt.Errorf("input %d: want rank %d, got shape %v", i, ranks[i], s)
		}
		out[i] = s
	}
	return out, nil
}

// apply adds op to the graph, wrapping gorgonia's error with the op name.
func apply(op G.Op, children ...*G.Node) (*G.Node, error) {
	n, err := G.ApplyOp(op, children...)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	return n, nil
}

// multiOutput is a backward operation that computes several gradients in
// one pass; pick nodes hand them out one by one.
type multiOutput interface {
	output(i int) *tensor.Dense
}

// pickOp returns output i of a multiOutput node (its only child). The
// gradients live in buffers the multi-output operation owns; the parent's
// own value is a one-element placeholder, so gorgonia reusing it cannot
// touch them.
type pickOp struct {
	pure
	terminal
	src   multiOutput
	i     int
	name  string
	shape tensor.Shape
	rank  int
}

func newPick(src multiOutput, parent *G.Node, i int, name string, shape tensor.Shape) (*G.Node, error) {
	return apply(&pickOp{src: src, i: i, name: name, shape: shape.Clone(), rank: shape.Dims()}, parent)
}

func (op *pickOp) Arity() int    { return 1 }
func (op *pickOp) Type() hm.Type { return hm.NewFnType(tensorType(1), tensorType(op.rank)) }
func (op *pickOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *pickOp) Do(...G.Value) (G.Value, error) {
	t := op.src.output(op.i)
	if t == nil {
		return nil, fmt.Errorf("%v: gradient was not computed", op)
	}
	return t, nil
}
func (op *pickOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.Pick{%s,%d,%v}", op.name, op.i, op.shape)
}
func (op *pickOp) Hashcode() uint32 { return hashOf(op) }
func (op *pickOp) String() string   { return fmt.Sprintf("Pick(%s,%d)", op.name, op.i) }

// placeholder is the one-element value multi-output operations return.
func placeholder(b *buffer, dt tensor.Dtype) *tensor.Dense { return b.get(dt, 1) }
