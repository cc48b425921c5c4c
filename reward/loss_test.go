package reward

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// lsig is log σ(x), written out independently of the package.
func lsig(x float64) float64 { return -math.Log(1 + math.Exp(-x)) }

func TestLossByHand(t *testing.T) {
	chosen := []float64{1.5, -0.5, 2}
	rejected := []float64{0.5, 0.5, 2}
	// z = (1, −1, 0)
	for _, c := range []struct {
		name   string
		cfg    LossConfig
		margin []float64
		want   float64
	}{
		{"plain", LossConfig{}, nil, -(lsig(1) + lsig(-1) + lsig(0)) / 3},
		{"margin", LossConfig{}, []float64{0.5, 0, 1}, -(lsig(0.5) + lsig(-1) + lsig(-1)) / 3},
		// (r_c + r_r)² = (4, 0, 16)
		{"centered", LossConfig{CenterCoefficient: 0.01}, nil, -(lsig(1)+lsig(-1)+lsig(0))/3 + 0.01*20/3},
	} {
		out, err := c.cfg.Compute(chosen, rejected, c.margin)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(out.Loss-c.want) > 1e-12 {
			t.Errorf("%s: loss %.15f, want %.15f", c.name, out.Loss, c.want)
		}
	}
	out, _ := LossConfig{}.Compute(chosen, rejected, nil)
	want := map[string]float64{
		"accuracy": 1.0 / 3, // the tie counts as wrong
		"margin":   0, "mean_reward": 6.0 / 6, "min_reward": -0.5, "max_reward": 2, "loss": out.Loss,
	}
	got := out.Metrics.Map("eval_")
	for k, v := range want {
		if g, ok := got["eval_"+k]; !ok || math.Abs(g-v) > 1e-12 {
			t.Errorf("eval_%s = %v, want %v", k, g, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("metrics %v", got)
	}
	// A zero-margin pair at equal rewards costs log 2.
	if out, _ := (LossConfig{}).Compute([]float64{3}, []float64{3}, nil); out.Loss != math.Ln2 {
		t.Errorf("equal rewards: loss %v, want log 2", out.Loss)
	}
}

func TestGradientFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n, h = 5, 1e-6
	for _, cfg := range []LossConfig{{}, {CenterCoefficient: 0.05}} {
		for _, withMargin := range []bool{false, true} {
			chosen, rejected := make([]float64, n), make([]float64, n)
			var margin []float64
			for i := range n {
				chosen[i], rejected[i] = 4*r.NormFloat64(), 4*r.NormFloat64()
				if withMargin {
					margin = append(margin, r.Float64())
				}
			}
			out, err := cfg.Compute(chosen, rejected, margin)
			if err != nil {
				t.Fatal(err)
			}
			for _, side := range []struct {
				x, g []float64
			}{{chosen, out.GradChosen}, {rejected, out.GradRejected}} {
				for i := range side.x {
					x0 := side.x[i]
					side.x[i] = x0 + h
					up, _ := cfg.Compute(chosen, rejected, margin)
					side.x[i] = x0 - h
					dn, _ := cfg.Compute(chosen, rejected, margin)
					side.x[i] = x0
					fd := (up.Loss - dn.Loss) / (2 * h)
					if math.Abs(fd-side.g[i]) > 1e-7 {
						t.Errorf("%+v margin=%v [%d]: grad %.9g, finite difference %.9g", cfg, withMargin, i, side.g[i], fd)
					}
				}
			}
		}
	}
}

func TestStepLossFuncs(t *testing.T) {
	s := &Step{Config: LossConfig{CenterCoefficient: 0.1}, Margin: []float64{0.2, 0.3}}
	l1, g1 := s.PairLoss([][]float64{{1, 2}, {0, 3}})
	l2, g2 := s.StackedLoss([][]float64{{1, 2, 0, 3}})
	if l1 != l2 || s.Last.Loss != l2 {
		t.Fatalf("stacked loss %v != pair loss %v", l2, l1)
	}
	want := append(append([]float64(nil), g1[0]...), g1[1]...)
	for i, g := range g2[0] {
		if g != want[i] {
			t.Fatalf("stacked gradient %v != %v", g2[0], want)
		}
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		cfg             LossConfig
		ch, rej, margin []float64
		want            string
	}{
		{LossConfig{CenterCoefficient: -1}, []float64{1}, []float64{0}, nil, KeyCenterRewards},
		{LossConfig{}, nil, nil, nil, "empty"},
		{LossConfig{}, []float64{1, 2}, []float64{0}, nil, "rejected"},
		{LossConfig{}, []float64{1}, []float64{0}, []float64{1, 2}, "margins"},
	} {
		_, err := c.cfg.Compute(c.ch, c.rej, c.margin)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c, err, c.want)
		}
	}
	out, err := LossConfig{}.Compute([]float64{1000}, []float64{-1000}, nil)
	if err != nil || math.IsNaN(out.Loss) || math.IsNaN(out.GradChosen[0]) {
		t.Errorf("extreme rewards: %+v %v", out, err)
	}
	out, _ = LossConfig{}.Compute([]float64{-1000}, []float64{1000}, nil)
	if math.Abs(out.Loss-2000) > 1e-9 || math.Abs(out.GradChosen[0]+1) > 1e-12 {
		t.Errorf("extreme wrong pair: loss %v grad %v, want 2000 and −1", out.Loss, out.GradChosen[0])
	}
}
