package dpo

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
)

// microPairs tokenizes n world pairs for the micro tokenizer.
func microPairs(t testing.TB, n int) []*pair {
	t.Helper()
	rows := world.New(5).Preferences(world.Train, n).Rows()
	var rep data.TruncationReport
	enc := &encoder{tok: microTokenizer(t)}
	ps, err := encodePairs(0, rows, enc, data.BatchOptions{MaxLen: 256, PadID: enc.tok.PAD()}, &rep)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*pair, len(ps))
	for i := range ps {
		out[i] = &ps[i]
	}
	return out
}

// randomizeB gives every adapter B matrix small random values, so the
// adapter changes the outputs and A gets gradients.
func randomizeB(a *lora.Adapter, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	for _, m := range a.Modules {
		for i := range model.F32(m.B) {
			model.F32(m.B)[i] = float32(0.05 * r.NormFloat64())
		}
	}
}

// TestLossGradientThroughModel checks ∂loss/∂A and ∂loss/∂B of every loss
// variant, computed by the graph (fused log-prob head, FuncLoss, LoRA),
// against central differences in a float64 graph of the micro model.
func TestLossGradientThroughModel(t *testing.T) {
	tok := microTokenizer(t)
	mc := microConfig(tok.VocabSize())
	mc.NumHiddenLayers = 1
	w, err := model.NewRandom(mc, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(w, lora.Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a, 9)
	ps := microPairs(t, 2)
	const P = 2
	T := 0
	for _, p := range ps {
		T = max(T, p.maxLen())
	}
	b := collate(ps, T, tok.PAD())
	r := rand.New(rand.NewPCG(4, 4))
	ref := make([]float64, 2*P*T) // a reference some nats away from the policy
	for i := range ref {
		ref[i] = -3 + r.NormFloat64()
	}
	for _, cfg := range []LossConfig{
		{Beta: 0.1},
		{Beta: 0.3, LabelSmoothing: 0.2},
		{Type: Robust, Beta: 0.2, LabelSmoothing: 0.1},
		{Type: Hinge, Beta: 0.01},
		{Type: IPO, Beta: 0.5},
		{Type: SimPO, Beta: 2, Gamma: 0.5, SFTWeight: 0.5},
	} {
		s := &Step{Config: cfg, T: T, Mask: maskOf(b, nil), RefTokenLogps: ref}
		inj := a.Hook()
		g, err := model.Build(w, model.GraphOptions{B: 2 * P, T: T, Hook: inj, Dtype: tensor.Float64})
		if err != nil {
			t.Fatal(err)
		}
		copy(g.In.Tokens, b.Inputs)
		copy(g.In.Targets, b.Targets)
		params := inj.Params()
		var wrt []*G.Node
		for _, p := range params {
			wrt = append(wrt, p.Node)
		}
		l0, diffs := tinymodel.CentralDifferences(t, g, lossHead(g, s), wrt, func(n int) []int { return []int{n / 3, n - 1} })
		if cfg.Type == Hinge && l0 == 0 {
			t.Fatalf("hinge loss is 0: the test would prove nothing")
		}
		var nonzero int
		for _, d := range diffs {
			if math.Abs(d.Numeric-d.Analytic) > 1e-6+2e-3*math.Abs(d.Numeric) {
				t.Errorf("%+v: %s[%d]: analytic %g, finite difference %g", cfg, params[d.Param].Name, d.Index, d.Analytic, d.Numeric)
			}
			if math.Abs(d.Numeric) > 1e-6 {
				nonzero++
			}
		}
		if nonzero < len(diffs)/2 {
			t.Errorf("%+v: only %d of %d checked gradients are non-zero (loss %g)", cfg, nonzero, len(diffs), l0)
		}
	}
}
