package finetune

import (
	"context"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// moeAdapter is an all-linear adapter on w (MLA projections, routed and
// shared experts) with random B, so that every adapter tensor has a
// gradient.
func moeAdapter(t *testing.T, w *model.Weights) *lora.Adapter {
	t.Helper()
	a, err := lora.New(w, lora.Config{R: 2, Alpha: 4, Targets: []string{lora.AllLinear}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	for _, m := range a.Modules {
		for i := range model.F32(m.B) {
			model.F32(m.B)[i] = float32(0.05 * r.NormFloat64())
		}
	}
	return a
}

// fillTokens puts the same pseudo-random tokens, targets and weights into
// the graph of p.
func fillTokens(p *Program) {
	g := p.Graph
	r := rand.New(rand.NewPCG(7, 8))
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32(r.IntN(g.Config.VocabSize))
		g.In.Targets[i] = int32(r.IntN(g.Config.VocabSize))
	}
	weights := g.Vector(WeightsInput)
	for i := range weights {
		weights[i] = float32(i % 2)
	}
}

func value(n *gorgonia.Node) float64 { return float64(model.Value32(n)[0]) }

// With a balance-loss weight, a trainable program descends the token loss
// plus MoEBalanceLoss(alpha): its gradients are those of the token loss
// plus those of the balance loss alone, and LogMoE reports the term, adds
// it to the step's loss, and logs every MoE layer's load.
func TestBalanceLossInTraining(t *testing.T) {
	const alpha, B, T = 0.3, 2, 6
	for _, v3 := range []bool{false, true} {
		w, tok := tinymodel.DeepSeek(t, v3, 1, 16)
		a := moeAdapter(t, w)

		plain := New("base", w, tok)
		plain.Adapter = a
		p0, err := plain.Program("sft", B, T, true, TokenLoss)
		if err != nil {
			t.Fatal(err)
		}
		// The balance loss alone, plus nll − nll so that the adapters after
		// the last router (which the balance loss does not reach) stay
		// differentiable, with exact zeros.
		pb, err := plain.Program("balance", B, T, true, func(g *model.Graph, _ map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
			nll, _, _ := TokenLoss(g, nil)
			zero, err := gorgonia.Sub(nll, nll)
			if err != nil {
				return nil, nil, err
			}
			loss, err := gorgonia.Add(zero, g.MoEBalanceLoss(alpha))
			return loss, nil, err
		})
		if err != nil {
			t.Fatal(err)
		}
		with := New("base", w, tok)
		with.Adapter = a
		if err := with.SetMoEAuxLoss(alpha); err != nil {
			t.Fatal(err)
		}
		p1, err := with.Program("sft", B, T, true, TokenLoss)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []*Program{p0, pb, p1} {
			fillTokens(p)
		}
		if err := p0.Run(); err != nil {
			t.Fatal(err)
		}
		if err := pb.Run(); err != nil {
			t.Fatal(err)
		}
		step := with.LogMoE(func(context.Context, int, int) (train.Metrics, error) {
			if err := p1.Run(); err != nil {
				return nil, err
			}
			return train.Metrics{train.KeyLoss: value(p1.Loss)}, nil
		})
		met, err := step(context.Background(), 0, 0)
		if err != nil {
			t.Fatal(err)
		}

		// Gradients: plain's programs sum the token and balance losses'.
		sum, got := plain.Params(), with.Params()
		var diff, scale, balanceNorm float64
		for i := range got {
			gs, gw := sum[i].Grad(), got[i].Grad()
			for j := range gw {
				diff = max(diff, math.Abs(float64(gw[j]-gs[j])))
				scale = max(scale, math.Abs(float64(gs[j])))
			}
		}
		for _, q := range pb.params {
			for _, v := range pb.Prog.Grad(q.Node) {
				balanceNorm += float64(v) * float64(v)
			}
		}
		if balanceNorm == 0 {
			t.Fatalf("v3=%v: the balance loss gives the adapter no gradient; the test would prove nothing", v3)
		}
		if diff > 1e-5*scale {
			t.Errorf("v3=%v: gradient with the balance loss differs from token + balance gradients by %.3g (scale %.3g)", v3, diff, scale)
		}

		// Metrics: the term, the loss it joins, and each MoE layer's load.
		aux := value(pb.Loss)
		if math.Abs(met[MetricMoEAuxLoss]-aux) > 1e-6*math.Abs(aux) || aux <= 0 {
			t.Errorf("v3=%v: %s = %v, want the balance loss %v", v3, MetricMoEAuxLoss, met[MetricMoEAuxLoss], aux)
		}
		if want := value(p0.Loss) + aux; math.Abs(met[train.KeyLoss]-want) > 1e-5 {
			t.Errorf("v3=%v: loss %v, want token loss + balance = %v", v3, met[train.KeyLoss], want)
		}
		for l := range w.Config.NumHiddenLayers {
			cv, hasCV := met[MetricLoadCV(l)]
			mx, hasMax := met[MetricLoadMax(l)]
			if !w.Config.IsMoELayer(l) {
				if hasCV || hasMax {
					t.Errorf("v3=%v: dense layer %d has load metrics", v3, l)
				}
				continue
			}
			E := float64(w.Config.NRoutedExperts)
			if !hasCV || !hasMax || cv < 0 || mx < 1/E-1e-12 || mx > 1 {
				t.Errorf("v3=%v: layer %d load CV %v (%v), max fraction %v (%v)", v3, l, cv, hasCV, mx, hasMax)
			}
			ld := p1.Graph.ExpertLoad()
			for _, x := range ld {
				if x.Layer == l && math.Abs(x.CV-cv) > 1e-12 {
					t.Errorf("v3=%v: layer %d CV %v, the graph's %v", v3, l, cv, x.CV)
				}
			}
		}
	}
}

// Loads of several graphs run in one step are pooled by token slots, and a
// graph that did not run in the step is not counted.
func TestLogMoEPoolsGraphsThatRan(t *testing.T) {
	w, tok := tinymodel.DeepSeek(t, false, 2, 16)
	m := New("base", w, tok)
	short, err := m.Program("a", 1, 4, true, TokenLoss)
	if err != nil {
		t.Fatal(err)
	}
	long, err := m.Program("a", 2, 8, true, TokenLoss)
	if err != nil {
		t.Fatal(err)
	}
	fillTokens(short)
	fillTokens(long)
	if err := short.Run(); err != nil { // an earlier step's run
		t.Fatal(err)
	}
	only := m.LogMoE(func(context.Context, int, int) (train.Metrics, error) {
		return train.Metrics{train.KeyLoss: 1}, long.Run()
	})
	met, err := only(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ld := range long.Graph.ExpertLoad() {
		if got := met[MetricLoadCV(ld.Layer)]; math.Abs(got-ld.CV) > 1e-12 {
			t.Errorf("layer %d: CV %v, want the graph that ran's %v", ld.Layer, got, ld.CV)
		}
	}
	if _, ok := met[MetricMoEAuxLoss]; ok {
		t.Errorf("%s logged with the balance loss off", MetricMoEAuxLoss)
	}

	both := m.LogMoE(func(context.Context, int, int) (train.Metrics, error) {
		if err := short.Run(); err != nil {
			return nil, err
		}
		return train.Metrics{train.KeyLoss: 1}, long.Run()
	})
	if met, err = both(context.Background(), 0, 0); err != nil {
		t.Fatal(err)
	}
	ls, ll := short.Graph.ExpertLoad(), long.Graph.ExpertLoad()
	for i := range ll {
		counts := make([]float64, len(ll[i].Fractions))
		for e := range counts {
			counts[e] = ls[i].Fractions[e]*float64(ls[i].Slots) + ll[i].Fractions[e]*float64(ll[i].Slots)
		}
		cv, mx := loadStats(counts, ls[i].Slots+ll[i].Slots)
		if math.Abs(met[MetricLoadCV(ll[i].Layer)]-cv) > 1e-12 || met[MetricLoadMax(ll[i].Layer)] != mx {
			t.Errorf("layer %d: pooled CV %v max %v, want %v %v", ll[i].Layer, met[MetricLoadCV(ll[i].Layer)], met[MetricLoadMax(ll[i].Layer)], cv, mx)
		}
	}
}

// A dense model logs no MoE metric, and refuses a positive balance-loss
// weight naming the key; a negative weight is refused for any model.
func TestMoEAuxLossRefusals(t *testing.T) {
	dense, tok := tinymodel.Weights(t, 1, 16)
	m := New("dense-base", dense, tok)
	if err := m.SetMoEAuxLoss(0); err != nil {
		t.Fatal(err)
	}
	err := m.SetMoEAuxLoss(0.01)
	if err == nil || !strings.Contains(err.Error(), train.KeyMoEAuxLossAlpha) || !strings.Contains(err.Error(), "dense-base") {
		t.Errorf("alpha 0.01 on a dense model: %v, want an error naming %s and the model", err, train.KeyMoEAuxLossAlpha)
	}
	p, err := m.Program("sft", 1, 4, true, TokenLoss)
	if err != nil {
		t.Fatal(err)
	}
	fillTokens(p)
	met, err := m.LogMoE(func(context.Context, int, int) (train.Metrics, error) {
		return train.Metrics{train.KeyLoss: 2}, p.Run()
	})(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for k := range met {
		if strings.HasPrefix(k, "moe/") {
			t.Errorf("a dense model logged %s", k)
		}
	}
	if met[train.KeyLoss] != 2 {
		t.Errorf("loss changed to %v", met[train.KeyLoss])
	}

	w, tok := tinymodel.DeepSeek(t, true, 1, 16)
	for _, bad := range []float64{-0.1, math.NaN(), math.Inf(1)} {
		if err := New("moe", w, tok).SetMoEAuxLoss(bad); err == nil || !strings.Contains(err.Error(), train.KeyMoEAuxLossAlpha) {
			t.Errorf("alpha %v: %v, want an error naming %s", bad, err, train.KeyMoEAuxLossAlpha)
		}
	}
	built := New("moe", w, tok)
	if _, err := built.Program("sft", 1, 4, false, TokenLoss); err != nil {
		t.Fatal(err)
	}
	if err := built.SetMoEAuxLoss(0.1); err == nil {
		t.Error("SetMoEAuxLoss after a program was built: no error")
	}
}
