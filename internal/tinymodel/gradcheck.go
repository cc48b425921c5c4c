package tinymodel

import (
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/model"
)

// Difference is one coordinate of a gradient check: the gradient that the
// compiled program computed and the central difference of its loss.
type Difference struct {
	Param    int // the node's index in wrt
	Index    int // the coordinate's index in the node's values
	Analytic float64
	Numeric  float64
}

// CentralDifferences compiles loss on g with respect to wrt, runs it once
// and returns that loss, and, at the coordinates at(n) of each node of n
// values, the program's gradient beside the central difference
// (loss(x+h) − loss(x−h)) / 2h with h = 1e-5. The nodes must hold float64
// values (a graph built with Dtype tensor.Float64), so that h is far above
// the rounding error; each coordinate is restored after it is moved. A
// check with no coordinate fails, rather than passing vacuously.
func CentralDifferences(tb testing.TB, g *model.Graph, loss *gorgonia.Node, wrt []*gorgonia.Node, at func(n int) []int) (float64, []Difference) {
	tb.Helper()
	prog, err := g.Compile(loss, wrt)
	if err != nil {
		tb.Fatal(err)
	}
	eval := func() float64 {
		prog.ZeroGrad()
		if err := prog.Run(); err != nil {
			tb.Fatal(err)
		}
		return loss.Value().Data().(float64)
	}
	l0 := eval()
	var out []Difference
	for k, n := range wrt {
		grad := append([]float32(nil), prog.Grad(n)...) // eval zeroes it
		vals, ok := n.Value().Data().([]float64)
		if !ok {
			tb.Fatalf("node %s holds %T, not float64 values", n.Name(), n.Value().Data())
		}
		for _, i := range at(len(vals)) {
			const h = 1e-5
			orig := vals[i]
			vals[i] = orig + h
			up := eval()
			vals[i] = orig - h
			down := eval()
			vals[i] = orig
			out = append(out, Difference{Param: k, Index: i, Analytic: float64(grad[i]), Numeric: (up - down) / (2 * h)})
		}
	}
	if len(out) == 0 {
		tb.Fatal("the gradient check has no coordinate to check")
	}
	return l0, out
}
