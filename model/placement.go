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
	t  *tensor.Dense
}

// placeBackward is whether Compile shares memory between the outputs of
// the backward pass (tests turn it off to compare).
var placeBackward = true

// planPlacements lets the outputs of the backward pass share memory: each
// operation keeps its output in a buffer of its own across runs, so a
// program holds every intermediate of the forward and the backward pass at
// once, although most gradients of a decoder layer are dead once the layer
// below has read them. Here every output of a backward-only node (one the
// forward outputs do not need) that ops.PlaceOutput accepts gets a slice
// of a shared slot, such that no two outputs in one slot are alive at the
// same time in the order in which the tape runs the nodes (gorgonia.Sort
// of the program's subgraph, reversed, as gorgonia.CompileFunction orders
// them): a value is alive from the node that writes it to its last
// reader, through any reader that may return it as its own value (an
// operation of another package, or Pick). A value the caller reads after
// the run (an output, a gradient) is never placed, nor a value in a
// register that an operation of another package shares (gorgonia's own
// operations may write into a register's previous value). The forward
// values are left where they are: a forward-only program compiled on the
// same graph runs them in another order. Placement changes where values
// live, not what is computed.
func planPlacements(sub *gorgonia.ExprGraph, outs, forward gorgonia.Nodes, reg func(*gorgonia.Node) (any, bool), dt tensor.Dtype) []placement {
	if !placeBackward || dt != tensor.Float32 {
		return nil
	}
	order, err := gorgonia.Sort(sub)
	if err != nil {
		return nil
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
	inForward := map[*gorgonia.Node]bool{}
	for _, n := range forward {
		inForward[n] = true
	}
	foreign := map[any]bool{}
	for _, n := range order {
		if n.Op() != nil && !ops.FreshOutput(n.Op()) {
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
		slot, size int
	}
	var uses []use
	for _, n := range order {
		if n.Op() == nil || inForward[n] || !ops.Placeable(n.Op()) || n.Dtype() != tensor.Float32 {
			continue
		}
		if r, ok := reg(n); !ok || foreign[r] {
			continue
		}
		e := last(n)
		if e >= len(order) {
			continue
		}
		size := n.Shape().TotalSize()
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
		uses = append(uses, use{n, best, size})
	}
	mem := make([][]float32, len(slots))
	for i, s := range slots {
		mem[i] = make([]float32, s.size)
	}
	out := make([]placement, len(uses))
	for i, u := range uses {
		t := tensor.New(tensor.WithBacking(mem[u.slot][:u.size]), tensor.WithShape(u.n.Shape()...))
		out[i] = placement{op: u.n.Op(), t: t}
	}
	return out
}
