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
func planPlacements(sub *gorgonia.ExprGraph, outs gorgonia.Nodes, reg func(*gorgonia.Node) (any, bool), dt tensor.Dtype) (placed []placement, unplace []gorgonia.Op, recomputes []recompute) {
	if !placeValues || dt != tensor.Float32 {
		return nil, nil, nil
	}
	order, err := gorgonia.Sort(sub)
	if err != nil {
		return nil, nil, nil
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
	// lastIn is last restricted to the readers at positions in [lo, hi).
	var lastIn func(n *gorgonia.Node, lo, hi int) int
	lastIn = func(n *gorgonia.Node, lo, hi int) int {
		e := -1
		if kept[n] && hi > len(order) {
			e = len(order)
		}
		for _, r := range readers[n] {
			if pos[r] < lo || pos[r] >= hi {
				continue
			}
			e = max(e, pos[r])
			if r.Op() == nil || !ops.FreshOutput(r.Op()) {
				e = max(e, lastIn(r, lo, hi))
			}
		}
		return e
	}
	// Checkpointed layers (ops.Checkpoint): a recomputed value is alive
	// from its node to its last forward reader, and again from the
	// recomputation (which writes it into the same memory) to its last
	// backward reader. The backward recomputes the values it reads and
	// what they are computed from.
	at := map[*gorgonia.Node]int{} // recomputed node → position of its recomputation
	for i, n := range order {
		r, ok := ops.IsRecompute(n.Op())
		if !ok {
			continue
		}
		want := make([]bool, len(r.Nodes))
		in := map[*gorgonia.Node]int{}
		for j, m := range r.Nodes {
			in[m] = j
		}
		for j := len(r.Nodes) - 1; j >= 0; j-- {
			m := r.Nodes[j]
			if _, ok := pos[m]; !ok {
				continue
			}
			want[j] = want[j] || lastIn(m, i+1, len(order)+1) > i
			if !want[j] {
				continue
			}
			at[m] = i
			it := sub.From(m.ID())
			for it != nil && it.Next() {
				if k, ok := in[it.Node().(*gorgonia.Node)]; ok {
					want[k] = true
				}
			}
		}
		recomputes = append(recomputes, recompute{r: r, want: want})
	}
	// intervals are the positions at which n's value must keep its
	// memory; nil when it is read after the run.
	intervals := func(n *gorgonia.Node) [][2]int {
		g, ok := at[n]
		if !ok {
			if e := last(n); e < len(order) {
				return [][2]int{{pos[n], e}}
			}
			return nil
		}
		e1 := max(pos[n], lastIn(n, 0, g))
		e2 := max(g, lastIn(n, g+1, len(order)+1))
		if e2 >= len(order) {
			return nil
		}
		if e1 >= g {
			return [][2]int{{pos[n], e2}}
		}
		return [][2]int{{pos[n], e1}, {g, e2}}
	}
	// A UsePreallocDoer (gorgonia's own operations) writes into the value
	// its register held before it, when the register holds one: into the
	// memory of the value an earlier node left there, which must then
	// stay reserved for as long as the later node's value is alive.
	// inherited returns those intervals for the value node n leaves in
	// register r (the writers that follow it on r until another node
	// replaces the value), and false when one of them is read after the
	// run.
	writers := map[any][]*gorgonia.Node{}
	for _, n := range order {
		if r, ok := reg(n); ok {
			writers[r] = append(writers[r], n)
		}
	}
	inherited := func(r any, n *gorgonia.Node) ([][2]int, bool) {
		var ivs [][2]int
		ws := writers[r]
		k := slices.Index(ws, n)
		if k < 0 {
			return nil, false
		}
		for _, w := range ws[k+1:] {
			if _, ok := w.Op().(gorgonia.UsePreallocDoer); !ok {
				break
			}
			e := last(w)
			if e >= len(order) {
				return nil, false
			}
			ivs = append(ivs, [2]int{pos[w], e})
		}
		return ivs, true
	}
	type slot struct {
		size int      // elements
		busy [][2]int // positions at which a value holds it
	}
	overlaps := func(s slot, ivs [][2]int) bool {
		for _, b := range s.busy {
			for _, v := range ivs {
				if b[0] <= v[1] && v[0] <= b[1] {
					return true
				}
			}
		}
		return false
	}
	var slots []slot
	type use struct {
		n          *gorgonia.Node
		i          int
		shape      tensor.Shape
		slot, size int
		extra      [][2]int // inherited intervals
	}
	var uses []use
	// outputs lists what n writes that may be placed: its value, or the
	// outputs its Pick readers hand out (nil when one of them cannot be).
	outputs := func(n *gorgonia.Node) []use {
		if n.Op() == nil || n.Dtype() != tensor.Float32 {
			return nil
		}
		if ops.Placeable(n.Op()) {
			r, ok := reg(n)
			if !ok {
				return nil
			}
			extra, ok := inherited(r, n)
			if !ok {
				return nil
			}
			return []use{{n: n, i: -1, shape: n.Shape(), extra: extra}}
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
			rr, ok := reg(r)
			if !ok {
				return nil
			}
			extra, ok := inherited(rr, r)
			if !ok {
				return nil
			}
			for _, u := range out {
				if u.i == i {
					return nil // two picks of one output: leave it
				}
			}
			out = append(out, use{n: n, i: i, shape: r.Shape(), extra: extra})
		}
		return out
	}
	for _, n := range order {
		outs := outputs(n)
		if len(outs) == 0 {
			continue
		}
		nivs := intervals(n)
		if nivs == nil {
			continue
		}
		for _, u := range outs {
			ivs := append(slices.Clone(nivs), u.extra...)
			size := u.shape.TotalSize()
			// The free slot that fits most tightly, else the largest free
			// one grown, else a new one.
			best := -1
			for i, s := range slots {
				if overlaps(s, ivs) {
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
			slots[best].busy = append(slots[best].busy, ivs...)
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
	return placed, unplace, recomputes
}

// recompute is what a program recomputes of one checkpointed layer.
type recompute struct {
	r    *ops.Recompute
	want []bool
}
