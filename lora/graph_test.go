package lora

import (
	"math"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
)

// logitsOf runs a forward-only graph of w (with an optional adapter hook)
// on fixed tokens and returns its logits.
func logitsOf(t *testing.T, w *model.Weights, a *Adapter, B, T int) []float32 {
	opt := model.GraphOptions{B: B, T: T}
	if a != nil {
		opt.Hook = a.Hook()
	}
	return tinymodel.Logits(t, w, opt)
}

// TestMergedEqualsLive checks that W + s·B·A in the weights gives the same
// logits as the base with the adapter live, and that a disabled adapter
// gives the base logits exactly.
func TestMergedEqualsLive(t *testing.T) {
	w := microWeights(t)
	a, err := New(w, Config{R: 3, Alpha: 6, Targets: []string{"all-linear"}, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a)
	base := logitsOf(t, w, nil, 2, 5)
	live := logitsOf(t, w, a, 2, 5)
	if tinymodel.MaxRelDiff(base, live) < 1e-3 {
		t.Fatal("adapter has no visible effect; the test would prove nothing")
	}
	a.SetEnabled(false)
	off := logitsOf(t, w, a, 2, 5)
	for i := range base {
		if off[i] != base[i] {
			t.Fatalf("disabled adapter changed logit %d: %g vs %g", i, off[i], base[i])
		}
	}
	a.SetEnabled(true)
	if err := a.Merge(w); err != nil {
		t.Fatal(err)
	}
	merged := logitsOf(t, w, nil, 2, 5)
	if d := tinymodel.MaxRelDiff(live, merged); d > 1e-5 {
		t.Errorf("merged vs live logits differ by %.3g relative (want ≤ 1e-5)", d)
	}
}

// TestSwitchWithoutRebuild flips the adapter off and on in one compiled
// program.
func TestSwitchWithoutRebuild(t *testing.T) {
	w := microWeights(t)
	a, err := New(w, Config{R: 2, Alpha: 2, Targets: []string{"q_proj", "v_proj"}, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a)
	g, err := model.Build(w, model.GraphOptions{B: 1, T: 4, Hook: a.Hook()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32((i*7 + 3) % w.Config.VocabSize) // as logitsOf
	}
	p, err := g.Compile(nil, nil, g.Logits())
	if err != nil {
		t.Fatal(err)
	}
	run := func() []float32 {
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), model.Value32(g.Logits())...)
	}
	on := run()
	a.SetEnabled(false)
	off := run()
	a.SetEnabled(true)
	again := run()
	if tinymodel.MaxRelDiff(on, off) < 1e-4 {
		t.Fatal("switching off changed nothing")
	}
	for i := range on {
		if on[i] != again[i] {
			t.Fatal("switching back on does not restore the outputs")
		}
	}
	want := logitsOf(t, w, nil, 1, 4)
	for i := range off {
		if off[i] != want[i] {
			t.Fatal("switched-off program differs from the base model")
		}
	}
}

// TestAdapterGradientsFiniteDifference checks ∂loss/∂A and ∂loss/∂B of the
// mean NLL in float64 against central differences.
func TestAdapterGradientsFiniteDifference(t *testing.T) {
	checkAdapterGradients(t, microWeights(t), Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "o_proj", "up_proj"}, Seed: 6},
		func(i int) float32 { return float32(i % 3) }) // some tokens masked out
}

// checkAdapterGradients builds a float64 graph of w with a fresh adapter
// of cfg (B random, so that both halves have gradients), scores fixed
// tokens with the given token weights, and checks the gradient of every
// adapter tensor at its first, middle and last value against central
// differences of the mean NLL.
func checkAdapterGradients(t *testing.T, w *model.Weights, cfg Config, weight func(i int) float32) {
	t.Helper()
	a, err := New(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a)
	inj := a.Hook()
	B, T := 2, 4
	g, err := model.Build(w, model.GraphOptions{B: B, T: T, Hook: inj, Dtype: tensor.Float64})
	if err != nil {
		t.Fatal(err)
	}
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32((i*5 + 1) % 11)
		g.In.Targets[i] = int32((i*3 + 2) % 11)
	}
	wn := g.InputVector("weights", B*T)
	for i := range g.Vector("weights") {
		g.Vector("weights")[i] = weight(i)
	}
	params := inj.Params()
	if len(params) != 2*len(a.Modules) {
		t.Fatalf("%d adapter tensors in the graph, want %d", len(params), 2*len(a.Modules))
	}
	var wrt []*G.Node
	for _, p := range params {
		wrt = append(wrt, p.Node)
	}
	_, diffs := tinymodel.CentralDifferences(t, g, g.MeanNLL(wn), wrt, func(n int) []int { return []int{0, n / 2, n - 1} })
	for _, d := range diffs {
		if math.Abs(d.Numeric-d.Analytic) > 1e-5+1e-3*math.Abs(d.Numeric) {
			t.Errorf("%s[%d]: analytic %g, finite difference %g", params[d.Param].Name, d.Index, d.Analytic, d.Numeric)
		}
	}
}

// TestPlacedProgramMatchesFloat64 runs a float32 training program of a
// model with adapters on every linear module — whose outputs the program
// places in shared memory (ops.Placer), unlike a float64 program's — with
// a forward-only program on the same graph run between its runs, and
// compares the losses and the accumulated adapter gradients with the
// float64 graph's.
func TestPlacedProgramMatchesFloat64(t *testing.T) {
	w := microWeights(t)
	run := func(dt tensor.Dtype) (losses []float64, grads [][]float64) {
		a, err := New(w, Config{R: 2, Alpha: 4, Targets: []string{AllLinear}, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		randomizeB(a)
		inj := a.Hook()
		g, err := model.Build(w, model.GraphOptions{B: 2, T: 5, Hook: inj, Dtype: dt})
		if err != nil {
			t.Fatal(err)
		}
		loss := g.MeanNLL(g.InputVector("weights", 10))
		var wrt []*G.Node
		for _, p := range inj.Params() {
			wrt = append(wrt, p.Node)
		}
		p, err := g.Compile(loss, wrt)
		if err != nil {
			t.Fatal(err)
		}
		fwd, err := g.Compile(nil, nil, loss)
		if err != nil {
			t.Fatal(err)
		}
		for step, prog := range []*model.Program{p, fwd, p} {
			for i := range g.In.Tokens {
				g.In.Tokens[i] = int32((i*5 + step*3 + 1) % 11)
				g.In.Targets[i] = int32((i*3 + step + 2) % 11)
				g.Vector("weights")[i] = float32(i % 3)
			}
			if err := prog.Run(); err != nil {
				t.Fatal(err)
			}
			losses = append(losses, float64(model.Value32(loss)[0]))
		}
		for _, n := range wrt {
			var d []float64
			for _, v := range p.Grad(n) {
				d = append(d, float64(v))
			}
			grads = append(grads, d)
		}
		return losses, grads
	}
	wantLoss, wantGrads := run(tensor.Float64)
	gotLoss, gotGrads := run(tensor.Float32)
	for i := range wantLoss {
		if math.Abs(gotLoss[i]-wantLoss[i]) > 1e-5*math.Abs(wantLoss[i]) {
			t.Errorf("loss %d: float32 %g, float64 %g", i, gotLoss[i], wantLoss[i])
		}
	}
	for i := range wantGrads {
		var d, m float64
		for j := range wantGrads[i] {
			d = math.Max(d, math.Abs(gotGrads[i][j]-wantGrads[i][j]))
			m = math.Max(m, math.Abs(wantGrads[i][j]))
		}
		if d > 1e-4*m {
			t.Errorf("gradient %d differs by %.2g of %.2g", i, d, m)
		}
	}
}
