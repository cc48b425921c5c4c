package model

import (
	"errors"
	"fmt"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/model/ops"
)

// gradSet maps each parameter to its gradient node for one loss.
type gradSet map[*gorgonia.Node]*gorgonia.Node

// Program is a compiled, pruned piece of a graph: the requested outputs and,
// for a loss, the gradients of the chosen parameters. Gradients accumulate
// across Runs until ZeroGrad, which is how micro-batches are summed.
type Program struct {
	g        *Graph
	m        gorgonia.VM
	nodes    map[*gorgonia.Node]bool // every node the program computes
	planners []ops.Planner
	wrt      gorgonia.Nodes
	grads    gorgonia.Nodes // grads[i] is the gradient node of wrt[i]
	acc32    [][]float32
	acc64    [][]float64
	placed   []placement   // values in shared memory (planPlacements)
	unplace  []gorgonia.Op // operations returned to their own memory before placing
	// recomputes are the checkpointed layers' values the backward pass
	// recomputes (planPlacements); without placement none need be.
	recomputes []recompute
}

// Compile makes a program computing outputs and, when loss is not nil,
// loss and its gradients with respect to wrt (parameters from Trainable,
// or input nodes such as adapter weights). Only what these need is
// compiled (gorgonia.CompileFunction), so frozen weights cost no gradient
// work. Gorgonia leaves derivative nodes on the graph, so a graph is
// differentiated for one loss only: later Compiles may reuse that loss
// with the same or fewer wrt, or compile forward-only programs.
func (g *Graph) Compile(loss *gorgonia.Node, wrt []*gorgonia.Node, outputs ...*gorgonia.Node) (*Program, error) {
	p := &Program{g: g}
	var outs gorgonia.Nodes
	add := func(n *gorgonia.Node) {
		if n != nil && !outs.Contains(n) {
			outs = append(outs, n)
		}
	}
	for _, o := range outputs {
		if o == nil {
			return nil, errors.New("compile: nil output node")
		}
		add(o)
	}
	if loss != nil {
		if !loss.IsScalar() {
			return nil, fmt.Errorf("compile: loss %v is not a scalar (shape %v)", loss.Name(), loss.Shape())
		}
		add(loss)
		if len(wrt) > 0 {
			gs, err := g.gradients(loss, wrt)
			if err != nil {
				return nil, fmt.Errorf("compile: %w", err)
			}
			for _, n := range wrt {
				p.wrt = append(p.wrt, n)
				p.grads = append(p.grads, gs[n])
				add(gs[n])
			}
		}
	}
	if len(outs) == 0 {
		return nil, errors.New("compile: nothing to compute")
	}
	sub := g.G.ExactSubgraphRoots(outs...)
	prog, locMap, err := gorgonia.CompileFunction(g.G, sub.Inputs(), outs)
	if err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	p.m = gorgonia.NewTapeMachine(g.G, gorgonia.WithPrecompiled(prog, locMap))
	reg := func(n *gorgonia.Node) (any, bool) { r, ok := locMap[n]; return r, ok }
	p.placed, p.unplace, p.recomputes = planPlacements(sub, outs, reg, g.Dtype)
	p.nodes = map[*gorgonia.Node]bool{}
	for _, n := range sub.AllNodes() {
		p.nodes[n] = true
		if pl, ok := n.Op().(ops.Planner); ok {
			p.planners = append(p.planners, pl)
		}
	}
	for _, n := range p.wrt {
		size := n.Shape().TotalSize()
		if g.Dtype == gorgonia.Float64 {
			p.acc64 = append(p.acc64, make([]float64, size))
		} else {
			p.acc32 = append(p.acc32, make([]float32, size))
		}
	}
	return p, nil
}

// gradients differentiates loss once per graph (see Compile).
func (g *Graph) gradients(loss *gorgonia.Node, wrt []*gorgonia.Node) (gradSet, error) {
	seen := map[*gorgonia.Node]bool{}
	for _, n := range wrt {
		switch {
		case n == nil:
			return nil, errors.New("nil wrt node")
		case seen[n]:
			return nil, fmt.Errorf("wrt node %s given twice", n.Name())
		case !g.G.Has(n.ID()) || !n.IsVar():
			return nil, fmt.Errorf("wrt node %s is not an input of this graph", n.Name())
		}
		if name, ok := g.frozen[n]; ok {
			return nil, fmt.Errorf("parameter %s is frozen (GraphOptions.Trainable)", name)
		}
		seen[n] = true
	}
	if gs, ok := g.lossGrads[loss]; ok {
		for _, n := range wrt {
			if gs[n] == nil {
				return nil, fmt.Errorf("the graph was differentiated without %s: compile its gradient the first time", n.Name())
			}
		}
		return gs, nil
	}
	if len(g.lossGrads) > 0 {
		return nil, errors.New("the graph was already differentiated for another loss (one loss per graph)")
	}
	grads, err := gorgonia.Grad(loss, wrt...)
	if err != nil {
		return nil, fmt.Errorf("differentiate: %w", err)
	}
	gs := gradSet{}
	for i, n := range wrt {
		gs[n] = grads[i]
	}
	g.lossGrads[loss] = gs
	return gs, nil
}

// inProgram reports whether the program computes n.
func (p *Program) inProgram(n *gorgonia.Node) bool { return n != nil && p.nodes[n] }

// Run executes the program once on the current Inputs and input vectors:
// forward, and backward when compiled with a loss, adding the gradients to
// the accumulated ones.
func (p *Program) Run() error {
	p.g.syncVectors()
	for _, op := range p.unplace {
		ops.Unplace(op)
	}
	for _, pl := range p.placed {
		pl.place()
	}
	for _, rc := range p.recomputes {
		rc.r.SetWanted(rc.want)
	}
	for _, pl := range p.planners {
		pl.Plan(p.inProgram)
	}
	p.m.Reset()
	if err := p.m.RunAll(); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	for i, gn := range p.grads {
		switch d := gn.Value().Data().(type) {
		case []float32:
			acc := p.acc32[i]
			parallelAdd(acc, d)
		case []float64:
			acc := p.acc64[i]
			for j, v := range d {
				acc[j] += v
			}
		default:
			return fmt.Errorf("run: gradient of %s has type %T", p.wrt[i].Name(), d)
		}
	}
	return nil
}

// Grad is the gradient of wrt node n accumulated since the last ZeroGrad
// (nil when n is not one of the program's wrt). The slice is the
// program's own accumulator in float32 graphs (a copy in float64 ones).
func (p *Program) Grad(n *gorgonia.Node) []float32 {
	for i, w := range p.wrt {
		if w != n {
			continue
		}
		if p.acc32 != nil {
			return p.acc32[i]
		}
		out := make([]float32, len(p.acc64[i]))
		for j, v := range p.acc64[i] {
			out[j] = float32(v)
		}
		return out
	}
	return nil
}

// grad64 is the accumulated gradient of n in a float64 graph.
func (p *Program) grad64(n *gorgonia.Node) []float64 {
	for i, w := range p.wrt {
		if w == n && p.acc64 != nil {
			return p.acc64[i]
		}
	}
	return nil
}

// ZeroGrad clears the accumulated gradients.
func (p *Program) ZeroGrad() {
	for _, a := range p.acc32 {
		clear(a)
	}
	for _, a := range p.acc64 {
		clear(a)
	}
}

// Value32 is a node's current value as float32: a view of the value in
// float32 graphs (valid until the next Run), a copy otherwise; nil before
// any run.
func Value32(n *gorgonia.Node) []float32 {
	v := n.Value()
	if v == nil {
		return nil
	}
	switch d := v.Data().(type) {
	case []float32:
		return d
	case []float64:
		out := make([]float32, len(d))
		for i, x := range d {
			out[i] = float32(x)
		}
		return out
	case float32:
		return []float32{d}
	case float64:
		return []float32{float32(d)}
	}
	return nil
}

// parallelAdd adds src into dst, split between two goroutines when large.
func parallelAdd(dst, src []float32) {
	add := func(d, s []float32) {
		for j, v := range s {
			d[j] += v
		}
	}
	if len(dst) < 1<<16 {
		add(dst, src)
		return
	}
	half := len(dst) / 2
	done := make(chan struct{})
	go func() { add(dst[:half], src[:half]); close(done) }()
	add(dst[half:], src[half:])
	<-done
}
