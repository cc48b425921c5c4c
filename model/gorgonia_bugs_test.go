package model

// Regression tests for the gorgonia v0.9.18 defects the model works
// around. Each test first shows the defect is still there (so a gorgonia
// upgrade that fixes it fails here and the workaround can be reconsidered),
// then that the path the model takes gives the right answer.

import (
	"math"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/model/ops"
)

func vec64(g *gorgonia.ExprGraph, name string, v ...float64) *gorgonia.Node {
	return gorgonia.NewVector(g, tensor.Float64, gorgonia.WithShape(len(v)), gorgonia.WithName(name),
		gorgonia.WithValue(tensor.New(tensor.WithShape(len(v)), tensor.WithBacking(append([]float64(nil), v...)))))
}

func mat64(g *gorgonia.ExprGraph, name string, r, c int, v ...float64) *gorgonia.Node {
	return gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(r, c), gorgonia.WithName(name),
		gorgonia.WithValue(tensor.New(tensor.WithShape(r, c), tensor.WithBacking(append([]float64(nil), v...)))))
}

// runGrad compiles loss and its gradients w.r.t. wrt, runs once, and
// returns the gradients.
func runGrad(t *testing.T, g *gorgonia.ExprGraph, loss *gorgonia.Node, wrt ...*gorgonia.Node) [][]float64 {
	t.Helper()
	grads, err := gorgonia.Grad(loss, wrt...)
	if err != nil {
		t.Fatal(err)
	}
	m := gorgonia.NewTapeMachine(g)
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	var out [][]float64
	for _, gn := range grads {
		out = append(out, append([]float64(nil), gn.Value().Data().([]float64)...))
	}
	return out
}

// mustFor returns a helper that fails t on a graph-building error.
func mustFor(t *testing.T) func(*gorgonia.Node, error) *gorgonia.Node {
	return func(n *gorgonia.Node, err error) *gorgonia.Node {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
}

// SoftMax and LogSoftMax write the same op hash (the isLog flag is left
// out), so the graph merges LogSoftMax(x) into an earlier SoftMax(x). The
// model computes log-softmax inside its fused head and never uses either.
func TestGorgoniaSoftMaxLogSoftMaxCollide(t *testing.T) {
	must := mustFor(t)
	g := gorgonia.NewGraph()
	x := mat64(g, "x", 1, 3, 1, 2, 3)
	sm := must(gorgonia.SoftMax(x))
	lsm := must(gorgonia.LogSoftMax(x))
	if sm != lsm {
		t.Fatal("gorgonia fixed the SoftMax/LogSoftMax hash collision: revisit the workaround")
	}

	// The fused head: log p(v) for every v of one row sums (as p) to 1 and
	// matches log-softmax computed directly.
	g = gorgonia.NewGraph()
	h := mat64(g, "h", 3, 2, 0.5, -1, 0.5, -1, 0.5, -1) // one hidden state, three times
	w := mat64(g, "w", 3, 2, 1, 0, 0, 1, 1, 1)          // z = (0.5, −1, −0.5)
	lp := must(ops.LogProbs(h, w, []int32{0, 1, 2}, nil))
	if err := gorgonia.NewTapeMachine(g).RunAll(); err != nil {
		t.Fatal(err)
	}
	z := []float64{0.5, -1, -0.5}
	lse := math.Log(math.Exp(z[0]) + math.Exp(z[1]) + math.Exp(z[2]))
	for v, got := range lp.Value().Data().([]float64) {
		if math.Abs(got-(z[v]-lse)) > 1e-12 {
			t.Errorf("log p(%d) = %v, want %v", v, got, z[v]-lse)
		}
	}
}

// InverseSqrt's gradient is wrong; RMSNorm has its own backward pass.
func TestGorgoniaInverseSqrtGradient(t *testing.T) {
	must := mustFor(t)
	g := gorgonia.NewGraph()
	x := vec64(g, "x", 0.5, 2, 4)
	loss := must(gorgonia.Sum(must(gorgonia.InverseSqrt(x))))
	got := runGrad(t, g, loss, x)[0]
	wrong := false
	for i, v := range []float64{0.5, 2, 4} {
		want := -0.5 * math.Pow(v, -1.5)
		if math.Abs(got[i]-want) > 1e-9 {
			wrong = true
		}
	}
	if !wrong {
		t.Fatal("gorgonia fixed the InverseSqrt gradient: revisit the workaround")
	}

	// RMSNorm of a single value x with weight 1 is x/√(x²+ε), whose
	// derivative is ε/(x²+ε)^1.5.
	const eps = 0.25
	g = gorgonia.NewGraph()
	xm := mat64(g, "x", 1, 1, 0.7)
	wn := vec64(g, "w", 1)
	y := must(ops.RMSNorm(xm, wn, eps))
	loss = must(gorgonia.Sum(y))
	d := runGrad(t, g, loss, xm)[0][0]
	if want := eps / math.Pow(0.49+eps, 1.5); math.Abs(d-want) > 1e-12 {
		t.Fatalf("RMSNorm derivative %v, want %v", d, want)
	}
}

// Dropout's backward divides by the drop probability instead of the keep
// probability (and its hash omits the probability). The model has no
// dropout; where one is wanted it multiplies by a mask input node.
func TestGorgoniaDropoutGradient(t *testing.T) {
	must := mustFor(t)
	const p = 0.25
	g := gorgonia.NewGraph()
	x := vec64(g, "x", 1, 1, 1, 1, 1, 1, 1, 1)
	y := must(gorgonia.Dropout(x, p))
	loss := must(gorgonia.Sum(y))
	grad := runGrad(t, g, loss, x)[0]
	out := y.Value().Data().([]float64)
	wrong := false
	for i := range grad {
		// Kept elements are x/(1−p) forward, so their gradient is 1/(1−p).
		if out[i] != 0 && math.Abs(grad[i]-1/(1-p)) > 1e-12 {
			wrong = true
		}
	}
	if !wrong {
		t.Fatal("gorgonia fixed the Dropout gradient (or dropped nothing): revisit the workaround")
	}

	// The mask input: forward x·m, gradient m, with m ∈ {0, 1/(1−p)}.
	g = gorgonia.NewGraph()
	x = vec64(g, "x", 1, 2, 3, 4)
	mask := []float64{0, 1 / (1 - p), 1 / (1 - p), 0}
	m := vec64(g, "mask", mask...)
	loss = must(gorgonia.Sum(must(gorgonia.HadamardProd(x, m))))
	for i, v := range runGrad(t, g, loss, x)[0] {
		if v != mask[i] {
			t.Fatalf("masked gradient %v, want %v", v, mask[i])
		}
	}
}

// ByIndices' gradient is wrong except for 2-D inputs along axis 0. The
// model's gathers (embedding rows, target logits) are custom operations
// with their own scatter backward.
func TestGorgoniaByIndicesGradient(t *testing.T) {
	must := mustFor(t)
	g := gorgonia.NewGraph()
	x := mat64(g, "x", 2, 3, 1, 2, 3, 4, 5, 6)
	idx := gorgonia.NewVector(g, tensor.Int, gorgonia.WithShape(2), gorgonia.WithName("idx"),
		gorgonia.WithValue(tensor.New(tensor.WithBacking([]int{2, 0}))))
	loss := must(gorgonia.Sum(must(gorgonia.ByIndices(x, idx, 1))))
	got := runGrad(t, g, loss, x)[0]
	want := []float64{1, 0, 1, 1, 0, 1} // columns 2 and 0 of each row were taken
	same := true
	for i := range want {
		same = same && got[i] == want[i]
	}
	if same {
		t.Fatal("gorgonia fixed the ByIndices gradient along axis 1: revisit the workaround")
	}

	// The embedding gather scatters gradients back onto the rows it read,
	// counting repeats.
	g = gorgonia.NewGraph()
	table := mat64(g, "table", 3, 2, 1, 2, 3, 4, 5, 6)
	e := must(ops.Embedding(table, []int32{2, 0, 2}))
	loss = must(gorgonia.Sum(e))
	for i, v := range runGrad(t, g, loss, table)[0] {
		if w := []float64{1, 1, 0, 0, 2, 2}[i]; v != w {
			t.Fatalf("embedding gradient[%d] = %v, want %v", i, v, w)
		}
	}
}

// LogSumExp does not build (it subtracts an unbroadcast max). The fused
// head computes log Σ exp itself.
func TestGorgoniaLogSumExpDoesNotBuild(t *testing.T) {
	must := mustFor(t)
	g := gorgonia.NewGraph()
	x := mat64(g, "x", 2, 3, 1, 2, 3, 4, 5, 6)
	if _, err := gorgonia.LogSumExp(x, 1); err == nil {
		t.Fatal("gorgonia's LogSumExp builds now: revisit the workaround")
	}

	// The head's log-prob of target v is z_v − log Σ exp z: with the
	// identity as output embedding, z is the hidden row itself.
	g = gorgonia.NewGraph()
	h := mat64(g, "h", 2, 3, 1, 2, 3, 4, 5, 6)
	w := mat64(g, "w", 3, 3, 1, 0, 0, 0, 1, 0, 0, 0, 1)
	lp := must(ops.LogProbs(h, w, []int32{0, 0}, nil))
	if err := gorgonia.NewTapeMachine(g).RunAll(); err != nil {
		t.Fatal(err)
	}
	for r, row := range [][]float64{{1, 2, 3}, {4, 5, 6}} {
		lse := math.Log(math.Exp(row[0]) + math.Exp(row[1]) + math.Exp(row[2]))
		if got := lp.Value().Data().([]float64)[r]; math.Abs(got-(row[0]-lse)) > 1e-12 {
			t.Fatalf("row %d: %v, want %v", r, got, row[0]-lse)
		}
	}
}

// NewAdamW's Step computes new weights into a fresh tensor and drops them:
// the weights never change. The training loop (package train) has its
// own AdamW and reads gradients from Program.Grad instead.
func TestGorgoniaAdamWDoesNotUpdate(t *testing.T) {
	must := mustFor(t)
	step := func(s gorgonia.Solver) []float64 {
		g := gorgonia.NewGraph()
		x := vec64(g, "x", 1, -2, 3)
		loss := must(gorgonia.Sum(must(gorgonia.Square(x))))
		if _, err := gorgonia.Grad(loss, x); err != nil {
			t.Fatal(err)
		}
		if err := gorgonia.NewTapeMachine(g).RunAll(); err != nil {
			t.Fatal(err)
		}
		if err := s.Step([]gorgonia.ValueGrad{x}); err != nil {
			t.Fatal(err)
		}
		return x.Value().Data().([]float64)
	}
	if got := step(gorgonia.NewVanillaSolver(gorgonia.WithLearnRate(0.1))); got[0] == 1 {
		t.Fatal("the plain SGD solver did not move the weights either: the test setup is broken")
	}
	got := step(gorgonia.NewAdamW(gorgonia.WithLearnRate(0.1)))
	if got[0] != 1 || got[1] != -2 || got[2] != 3 {
		t.Fatalf("gorgonia's AdamW updates weights now (%v): revisit the workaround", got)
	}
}
