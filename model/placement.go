package model

import (
	"slices"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/model/ops"
)

// placement is one operation output that a program places in shared
// memory (see planPlacements).
type placement struct {
	op gorgonia.Op
	i  int // output of a multi-output operation (ops.PlacePicked); -1: its only output
	t  *tensor.Dense
}

// place points the operation at its memory.
func (pl placement) place() {
	if pl.i < 0 {
		ops.PlaceOutput(pl.op, pl.t)
	} else {
		ops.PlacePicked(pl.op, pl.i, pl.t)
	}
}

// placeValues is whether Compile shares memory between the values of a
// program (tests turn it off to compare).
var placeValues = true

// planPlacements lets the values of a program share memory: each operation
// keeps its output in a buffer of its own across runs, so a program would
// hold every intermediate of the forward and the backward pass at once,
// although most are dead long before the run ends — a projection's output
// once its residual sum or RoPE has read it, most gradients of a decoder
// layer once the layer below has read them. Here every output that
// ops.PlaceOutput accepts (of the forward or the backward pass) gets a
// slice of a shared slot, such that no two outputs in one slot are alive
// at the same time in the order in which the tape runs the nodes
// (gorgonia.Sort of the program's subgraph, reversed, as
// gorgonia.CompileFunction orders them): a value is alive from the node
// that writes it to its last reader, through any reader that may return
// it as its own value (an operation of another package, or Pick). A
// forward value the backward pass reads is alive until that read. A value
// the caller reads after the run (an output, a gradient) is never placed,
// nor a value in a register that an operation of another package shares
// (gorgonia's own operations may write into a register's previous value).
// Another program compiled on the same graph runs the same operations in
// another order, so a program unplaces (ops.Unplace) every operation it
// runs before placing its own (the placements' unplace list). Placement
// changes where values live, not what is computed: a caller that reads a
// node's value after a run compiles that node as an output.
func planPlacements(sub *gorgonia.ExprGraph, outs gorgonia.Nodes, reg func(*gorgonia.Node) (any, bool), dt tensor.Dtype) (placed []placement, unplace []gorgonia.Op) {
	if !placeValues || dt != tensor.Float32 {
		return nil, nil
	}
	order, err := gorgonia.Sort(sub)
	if err != nil {
		return nil, nil
	}
	for _, n := range order {
		if n.Op() != nil && (ops.Placeable(n.Op()) || ops.MultiPlaceable(n.Op())) {
			unplace = append(unplace, n.Op())
		}
	}
	slices.Reverse(order)
	pos := make(map[*gorgonia.Node]int, len(order))
	for i, n := range order {
		pos[n] = i
	}
	readers := map[*gorgonia.Node][]*gorgonia.Node{}
	for _, n := range order {
		it := sub.From(n.ID())
		for it != nil && it.Next() {
			ch := it.Node().(*gorgonia.Node)
			readers[ch] = append(readers[ch], n)
		}
	}
	// end is the last position at which n's value (or a value that may
	// be the same memory) is read; len(order) when read after the run.
	kept := map[*gorgonia.Node]bool{}
	for _, n := range outs {
		kept[n] = true
	}
	end := map[*gorgonia.Node]int{}
	var last func(n *gorgonia.Node) int
	last = func(n *gorgonia.Node) int {
		if e, ok := end[n]; ok {
			return e
		}
		e := pos[n]
		if kept[n] {
			e = len(order)
		}
		for _, r := range readers[n] {
			e = max(e, pos[r])
			if r.Op() == nil || !ops.FreshOutput(r.Op()) {
				e = max(e, last(r))
			}
		}
		end[n] = e
		return e
	}
	// Registers in which an operation may write into the value the
	// register held before (gorgonia's tape does so for a
	// UsePreallocDoer whose register is not empty).
	foreign := map[any]bool{}
	for _, n := range order {
		if _, ok := n.Op().(gorgonia.UsePreallocDoer); ok {
			if r, ok := reg(n); ok {
				foreign[r] = true
			}
		}
	}
	type slot struct {
		size, free int // elements; position after which it is free
	}
	var slots []slot
	type use struct {
		n          *gorgonia.Node
		i          int
		shape      tensor.Shape
		slot, size int
	}
	var uses []use
	// outputs lists what n writes that may be placed: its value, or the
	// outputs its Pick readers hand out (nil when one of them cannot be).
	outputs := func(n *gorgonia.Node) []use {
		if n.Op() == nil || n.Dtype() != tensor.Float32 {
			return nil
		}
		if ops.Placeable(n.Op()) {
			if r, ok := reg(n); !ok || foreign[r] {
				return nil
			}
			return []use{{n: n, i: -1, shape: n.Shape()}}
		}
		if !ops.MultiPlaceable(n.Op()) {
			return nil
		}
		var out []use
		for _, r := range readers[n] {
			i, ok := ops.PickIndex(r.Op())
			if !ok {
				return nil
			}
			if reg, ok := reg(r); !ok || foreign[reg] {
				return nil
			}
			for _, u := range out {
				if u.i == i {
					return nil // two picks of one output: leave it
				}
			}
			out = append(out, use{n: n, i: i, shape: r.Shape()})
		}
		return out
	}
	for _, n := range order {
		outs := outputs(n)
		if len(outs) == 0 {
			continue
		}
		e := last(n)
		if e >= len(order) {
			continue
		}
		for _, u := range outs {
			size := u.shape.TotalSize()
			// The free slot that fits most tightly, else the largest free
			// one grown, else a new one.
			best := -1
			for i, s := range slots {
				if s.free >= pos[n] {
					continue
				}
				switch {
				case best < 0:
					best = i
				case s.size >= size && (slots[best].size < size || s.size < slots[best].size):
					best = i
				case s.size < size && slots[best].size < size && s.size > slots[best].size:
					best = i
				}
			}
			if best < 0 {
				slots = append(slots, slot{})
				best = len(slots) - 1
			}
			slots[best].size = max(slots[best].size, size)
			slots[best].free = e
			u.slot, u.size = best, size
			uses = append(uses, u)
		}
	}
	mem := make([][]float32, len(slots))
	for i, s := range slots {
		mem[i] = make([]float32, s.size)
	}
	placed = make([]placement, len(uses))
	for i, u := range uses {
		t := tensor.New(tensor.WithBacking(mem[u.slot][:u.size]), tensor.WithShape(u.shape...))
		placed[i] = placement{op: u.n.Op(), i: u.i, t: t}
	}
	return placed, unplace
}
