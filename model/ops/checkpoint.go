package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Recompute is a checkpointed segment of a graph (a decoder layer): the
// operation nodes the backward pass computes again from the segment's
// input instead of keeping their forward values (gradient checkpointing;
// Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").
type Recompute struct {
	// Nodes are the segment's operation nodes in the order they were
	// built (an order in which every node follows its inputs). Their
	// inputs are each other, the segment's input, or graph inputs
	// (weights, adapters).
	Nodes []*G.Node
	// Input is the segment's input node, whose value the checkpoint keeps.
	Input *G.Node

	want   []bool         // per node: recomputed in the running program (SetWanted)
	inputs [][]segmentArg // per node: its inputs in argument order (found once)
	values []G.Value      // per node: its value in the recomputation
	args   []G.Value      // scratch
}

// segmentArg is an input of a recomputed node: node j of the segment, or
// (j < 0) the segment's input or a graph input.
type segmentArg struct {
	n *G.Node
	j int
}

// prepare finds every node's inputs, once: the recomputation then
// allocates nothing.
func (r *Recompute) prepare() {
	if r.inputs != nil {
		return
	}
	at := make(map[*G.Node]int, len(r.Nodes))
	for i, n := range r.Nodes {
		at[n] = i
	}
	r.inputs = make([][]segmentArg, len(r.Nodes))
	for i, n := range r.Nodes {
		it := n.Graph().From(n.ID())
		for it.Next() {
			c := it.Node().(*G.Node)
			j, ok := at[c]
			if !ok {
				j = -1
			}
			r.inputs[i] = append(r.inputs[i], segmentArg{c, j})
		}
	}
	r.values = make([]G.Value, len(r.Nodes))
}

// SetWanted chooses the nodes the backward pass recomputes (a program's
// choice, set before each run: those whose values its backward reads, and
// what they are computed from); nil recomputes none.
func (r *Recompute) SetWanted(want []bool) { r.want = want }

// Checkpoint marks y, the output of a segment whose input is r.Input, as a
// checkpoint: its value is y's (copied into a buffer of its own), and its
// backward pass first recomputes the segment's wanted nodes from the
// input, writing each into its own output memory as in the forward pass,
// then hands the gradient on unchanged. The backward operations of the
// segment follow it (they consume the gradient it hands on), so they read
// recomputed values; a program may therefore give those values other uses
// between the passes (model.Program's placement). The recomputation runs
// the same operations on the same inputs, so its values are the forward
// pass's bit for bit.
func Checkpoint(y *G.Node, r *Recompute) (*G.Node, error) {
	if r == nil || r.Input == nil {
		return nil, fmt.Errorf("checkpoint: no segment input")
	}
	return apply(&checkpointOp{r: r}, y, r.Input)
}

type checkpointOp struct {
	pure
	r   *Recompute
	out buffer
}

func (op *checkpointOp) Arity() int { return 2 }
func (op *checkpointOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2))
}
func (op *checkpointOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}
func (op *checkpointOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.Checkpoint{%p}", op.r) }
func (op *checkpointOp) Hashcode() uint32      { return hashOf(op) }
func (op *checkpointOp) String() string        { return "Checkpoint" }

func (op *checkpointOp) Do(in ...G.Value) (G.Value, error) {
	y, err := dense(in[0], "checkpoint")
	if err != nil {
		return nil, err
	}
	out := op.out.get(y.Dtype(), y.Shape()...)
	copyValues(out, y)
	return out, nil
}

// copyValues copies src's values into dst (same dtype and size).
func copyValues(dst, src *tensor.Dense) {
	switch d := dst.Data().(type) {
	case []float32:
		copy(d, src.Data().([]float32))
	case []float64:
		copy(d, src.Data().([]float64))
	}
}

func (op *checkpointOp) DiffWRT(int) []bool { return []bool{true, false} }
func (op *checkpointOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	g, err := apply(&recomputeOp{r: op.r}, grad, in[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{g, nil}, nil
}

// recomputeOp is a checkpoint's backward pass: it recomputes the segment's
// wanted nodes from the input (its second argument) and hands the
// gradient (its first) on, copied.
type recomputeOp struct {
	pure
	terminal
	r   *Recompute
	out buffer
}

// IsRecompute reports whether op is a checkpoint's backward pass, and
// returns its segment.
func IsRecompute(op G.Op) (*Recompute, bool) {
	r, ok := op.(*recomputeOp)
	if !ok {
		return nil, false
	}
	return r.r, true
}

func (op *recomputeOp) Arity() int { return 2 }
func (op *recomputeOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2))
}
func (op *recomputeOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2)
	if err != nil {
		return nil, err
	}
	return s[0].Clone(), nil
}
func (op *recomputeOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.Recompute{%p}", op.r) }
func (op *recomputeOp) Hashcode() uint32      { return hashOf(op) }
func (op *recomputeOp) String() string        { return "Recompute" }

func (op *recomputeOp) Do(in ...G.Value) (G.Value, error) {
	g, err := dense(in[0], "recompute gradient")
	if err != nil {
		return nil, err
	}
	r := op.r
	r.prepare()
	clear(r.values)
	for i, n := range r.Nodes {
		if r.want == nil || !r.want[i] {
			continue
		}
		r.args = r.args[:0]
		for _, c := range r.inputs[i] {
			var v G.Value
			switch {
			case c.n == r.Input:
				v = in[1]
			case c.j >= 0 && r.values[c.j] != nil:
				v = r.values[c.j]
			case c.n.Op() != nil:
				return nil, fmt.Errorf("recompute: %s reads %s, neither recomputed nor an input", n.Name(), c.n.Name())
			default:
				v = c.n.Value()
			}
			r.args = append(r.args, v)
		}
		v, err := n.Op().Do(r.args...)
		if err != nil {
			return nil, fmt.Errorf("recompute %s: %w", n.Name(), err)
		}
		r.values[i] = v
	}
	out := op.out.get(g.Dtype(), g.Shape()...)
	copyValues(out, g)
	return out, nil
}
