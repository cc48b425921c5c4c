package grpo

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*max(1, math.Abs(b)) }

// TestAdvantagesHand checks the three estimators and scalings on two
// groups of three computed by hand: rewards (1, 0, 0), mean 1/3, unbiased
// std √(1/3); and (2, 2, 2), std 0.
func TestAdvantagesHand(t *testing.T) {
	r := []float64{1, 0, 0, 2, 2, 2}
	sd := math.Sqrt(1.0 / 3)
	batchSD := math.Sqrt((1.0/36 + 2*49.0/36 + 3*25.0/36) / 5)
	cases := []struct {
		est, scale string
		want       []float64
	}{
		{EstimatorGRPO, ScaleNone, []float64{2.0 / 3, -1.0 / 3, -1.0 / 3, 0, 0, 0}},
		{EstimatorGRPO, ScaleGroup, []float64{2.0 / 3 / (sd + 1e-4), -1.0 / 3 / (sd + 1e-4), -1.0 / 3 / (sd + 1e-4), 0, 0, 0}},
		{EstimatorGRPO, ScaleBatch, []float64{2.0 / 3 / (batchSD + 1e-4), -1.0 / 3 / (batchSD + 1e-4), -1.0 / 3 / (batchSD + 1e-4), 0, 0, 0}},
		// Leave-one-out: 1 − (0+0)/2 = 1, 0 − (1+0)/2 = −½.
		{EstimatorRLOO, ScaleNone, []float64{1, -0.5, -0.5, 0, 0, 0}},
		{EstimatorRLOO, ScaleGroup, []float64{1 / (sd + 1e-4), -0.5 / (sd + 1e-4), -0.5 / (sd + 1e-4), 0, 0, 0}},
	}
	for _, c := range cases {
		adv, st, err := Advantages(r, 3, c.est, c.scale)
		if err != nil {
			t.Fatal(err)
		}
		for i := range adv {
			if !near(adv[i], c.want[i], 1e-12) {
				t.Errorf("%s/%s: advantage %d = %v, want %v", c.est, c.scale, i, adv[i], c.want[i])
			}
		}
		if !near(st.Reward, 7.0/6, 1e-12) || !near(st.RewardStd, sd/2, 1e-12) || st.FracZeroStd != 0.5 {
			t.Errorf("%s/%s: stats %+v, want reward 7/6, reward_std %v, frac_reward_zero_std 0.5", c.est, c.scale, st, sd/2)
		}
	}
}

func TestAdvantagesErrors(t *testing.T) {
	for _, c := range []struct {
		r          []float64
		G          int
		est, scale string
		want       string
	}{
		{[]float64{1, 0}, 1, EstimatorGRPO, ScaleGroup, "at least 2"},
		{[]float64{1, 0, 1}, 2, EstimatorGRPO, ScaleGroup, "groups of 2"},
		{[]float64{1, math.NaN()}, 2, EstimatorGRPO, ScaleGroup, "reward 1"},
		{[]float64{1, 0}, 2, "ppo", ScaleGroup, `"ppo"`},
		{[]float64{1, 0}, 2, EstimatorGRPO, "true", `"true"`},
	} {
		if _, _, err := Advantages(c.r, c.G, c.est, c.scale); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Advantages(%v, %d, %s, %s): error %v, want one naming %s", c.r, c.G, c.est, c.scale, err, c.want)
		}
	}
}

func TestCombine(t *testing.T) {
	got, err := Combine([][]float64{{1, 0, 1}, {0.5, 1, 0}}, []float64{1, -2})
	if err != nil {
		t.Fatal(err)
	}
	for i, w := range []float64{0, -2, 1} {
		if got[i] != w {
			t.Errorf("reward %d = %v, want %v", i, got[i], w)
		}
	}
	if _, err := Combine([][]float64{{1}}, []float64{1, 2}); err == nil {
		t.Error("Combine accepted 1 reward function with 2 weights")
	}
}

// TestSequenceWeights: completions of 1 and 3 tokens, at most 4.
func TestSequenceWeights(t *testing.T) {
	for _, c := range []struct {
		typ  string
		want []float64
	}{
		{LossGRPO, []float64{1.0 / 2, 1.0 / 6}}, // 1/(G·|o_i|)
		{LossDAPO, []float64{1.0 / 4, 1.0 / 4}}, // 1/Σ|o_i|
		{LossDrGRPO, []float64{1.0 / 8, 1.0 / 8}},
	} {
		w, err := SequenceWeights(c.typ, []int{1, 3}, 4)
		if err != nil {
			t.Fatal(err)
		}
		for i := range w {
			if !near(w[i], c.want[i], 1e-15) {
				t.Errorf("%s: weight %d = %v, want %v", c.typ, i, w[i], c.want[i])
			}
		}
	}
	if _, err := SequenceWeights("bnpo", []int{1}, 4); err == nil || !strings.Contains(err.Error(), "bnpo") {
		t.Errorf("unknown loss type: error %v", err)
	}
	if _, err := SequenceWeights(LossGRPO, []int{5}, 4); err == nil || !strings.Contains(err.Error(), "completion 0") {
		t.Errorf("too long completion: error %v", err)
	}
}

// TestObjectiveHand checks single tokens with ρ = 1.5 (log π_old = 0,
// log π = ln 1.5) against values worked out by hand.
func TestObjectiveHand(t *testing.T) {
	lp := math.Log(1.5)
	k3 := 1/1.5 + lp - 1 // exp(0 − ln 1.5) − (0 − ln 1.5) − 1
	cases := []struct {
		name               string
		adv, epsHigh, beta float64
		loss, grad         float64
		clipHigh, clipLow  float64
	}{
		// Â > 0, ρ above 1+ε: the clipped term 1.2 is the smaller, so
		// ℓ = −1.2 with no gradient.
		{"clipped high", 1, 0.2, 0, -1.2, 0, 1, 0},
		// Â < 0: −min(−1.5, −1.2) = 1.5, gradient −ρÂ = 1.5.
		{"negative advantage", -1, 0.2, 0, 1.5, 1.5, 0, 0},
		// Clip-higher ε_high = 0.6 lets ρ = 1.5 through: ℓ = −1.5, ∂ = −1.5.
		{"clip higher", 1, 0.6, 0, -1.5, -1.5, 0, 0},
		// KL: + β·k3 and + β·(1 − exp(log π_ref − log π)) = β·(1 − 1/1.5).
		{"kl", -1, 0.2, 0.1, 1.5 + 0.1*k3, 1.5 + 0.1*(1-1/1.5), 0, 0},
	}
	for _, c := range cases {
		o := &Objective{Old: []float64{0}, Ref: []float64{0}, Advantage: []float64{c.adv}, Weight: []float64{1},
			EpsLow: 0.2, EpsHigh: c.epsHigh, Beta: c.beta}
		l, g := o.Loss([][]float64{{lp}})
		if !near(l, c.loss, 1e-12) || !near(g[0][0], c.grad, 1e-12) {
			t.Errorf("%s: loss %v, gradient %v; want %v, %v", c.name, l, g[0][0], c.loss, c.grad)
		}
		if o.Last.ClipHigh != c.clipHigh || o.Last.ClipLow != c.clipLow || o.Last.ClipAny != c.clipHigh+c.clipLow {
			t.Errorf("%s: clip stats %+v", c.name, o.Last)
		}
		if c.beta > 0 && !near(o.Last.KL, k3, 1e-12) {
			t.Errorf("%s: kl %v, want %v", c.name, o.Last.KL, k3)
		}
	}
	// ρ = 0.5 with Â < 0 is clipped low.
	o := &Objective{Old: []float64{0}, Advantage: []float64{-1}, Weight: []float64{1}, EpsLow: 0.2, EpsHigh: 0.2}
	if l, g := o.Loss([][]float64{{math.Log(0.5)}}); !near(l, 0.8, 1e-12) || g[0][0] != 0 || o.Last.ClipLow != 1 {
		t.Errorf("clipped low: loss %v gradient %v stats %+v, want 0.8, 0, clip low 1", l, g[0][0], o.Last)
	}
}

// TestObjectiveOnPolicy: without Old the ratio is 1, so the loss is
// −Σ w·Â and the gradient −w·Â, whatever log π is.
func TestObjectiveOnPolicy(t *testing.T) {
	o := &Objective{Advantage: []float64{2, -1, 0.5}, Weight: []float64{0.5, 0.25, 0}, EpsLow: 0.2, EpsHigh: 0.2}
	l, g := o.Loss([][]float64{{-3, -0.2, -7}})
	if !near(l, -(0.5*2+0.25*-1), 1e-15) || g[0][0] != -1 || g[0][1] != 0.25 || g[0][2] != 0 {
		t.Errorf("loss %v gradient %v, want −0.75 and (−1, 0.25, 0)", l, g[0])
	}
	if o.Last.Tokens != 2 || o.Last.RatioMean != 1 {
		t.Errorf("stats %+v, want 2 tokens of ratio 1", o.Last)
	}
}

// TestObjectiveFiniteDifferences compares the gradient with central
// differences at random points of every regime (clipped or not, either
// sign of Â, with and without KL).
func TestObjectiveFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, h = 64, 1e-6
	for _, beta := range []float64{0, 0.04} {
		o := &Objective{Old: make([]float64, n), Ref: make([]float64, n), Advantage: make([]float64, n), Weight: make([]float64, n),
			EpsLow: 0.2, EpsHigh: 0.28, Beta: beta}
		lp := make([]float64, n)
		for i := range n {
			o.Old[i] = -2 * rng.Float64()
			lp[i] = o.Old[i] + 0.8*(rng.Float64()-0.5) // ratios in (0.67, 1.49): all regimes
			o.Ref[i] = lp[i] + 0.6*(rng.Float64()-0.5)
			o.Advantage[i] = rng.NormFloat64()
			if i%5 != 0 {
				o.Weight[i] = rng.Float64()
			}
		}
		_, g := o.Loss([][]float64{lp})
		for i := range n {
			x := append([]float64(nil), lp...)
			x[i] = lp[i] + h
			up, _ := o.Loss([][]float64{x})
			x[i] = lp[i] - h
			down, _ := o.Loss([][]float64{x})
			if fd := (up - down) / (2 * h); math.Abs(fd-g[0][i]) > 1e-6 {
				t.Errorf("β %v, position %d: gradient %v, finite difference %v", beta, i, g[0][i], fd)
			}
		}
	}
}
