package ppo

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*(1+math.Abs(b)) }

func TestGAEByHand(t *testing.T) {
	// Row 0: 3 tokens of 4; row 1: 1 token. γ = 0.9, λ = 0.8.
	rewards := []float64{1, 0, 2, 99, 3, 99, 99, 99}
	values := []float64{0.5, 1, 1.5, 99, 1, 99, 99, 99}
	lengths := []int{3, 1}
	adv, ret, err := GAE(rewards, values, lengths, 4, 0.9, 0.8)
	if err != nil {
		t.Fatal(err)
	}
	// δ₂ = 2 − 1.5 = 0.5; δ₁ = 0.9·1.5 − 1 = 0.35; δ₀ = 1 + 0.9·1 − 0.5 = 1.4;
	// Â₁ = 0.35 + 0.72·0.5 = 0.71; Â₀ = 1.4 + 0.72·0.71 = 1.9112.
	wantAdv := []float64{1.9112, 0.71, 0.5, 0, 2, 0, 0, 0}
	wantRet := []float64{2.4112, 1.71, 2, 0, 3, 0, 0, 0}
	for i := range adv {
		if !near(adv[i], wantAdv[i]) || !near(ret[i], wantRet[i]) {
			t.Fatalf("adv %v ret %v, want %v %v", adv, ret, wantAdv, wantRet)
		}
	}
	// λ = 1: Monte Carlo returns 2, 0.9·2, 1 + 0.9·1.8, whatever the values.
	for _, v := range [][]float64{values, {7, -3, 0.25, 0, -1, 0, 0, 0}} {
		_, ret, _ := GAE(rewards, v, lengths, 4, 0.9, 1)
		for i, w := range []float64{2.62, 1.8, 2, 0, 3} {
			if !near(ret[i], w) {
				t.Fatalf("MC returns %v, want 2.62 1.8 2 0 3", ret)
			}
		}
	}
	// λ = 0: one-step TD errors.
	adv, _, _ = GAE(rewards, values, lengths, 4, 0.9, 0)
	for i, w := range []float64{1.4, 0.35, 0.5, 0, 2} {
		if !near(adv[i], w) {
			t.Fatalf("TD(0) advantages %v", adv)
		}
	}
	for _, c := range []struct {
		lengths []int
		T       int
		gamma   float64
		want    string
	}{
		{[]int{3, 0}, 4, 0.9, "row 1 has length 0"},
		{[]int{3, 5}, 4, 0.9, "row 1 has length 5"},
		{[]int{3}, 4, 0.9, "values for 1 rows"},
		{[]int{3, 1}, 4, 1.5, "gamma"},
	} {
		if _, _, err := GAE(rewards, values, c.lengths, c.T, c.gamma, 0.9); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c, err, c.want)
		}
	}
}

func TestWhiten(t *testing.T) {
	x := []float64{1, 2, 3, 100}
	mask := []float64{1, 1, 1, 0}
	s := 1 / math.Sqrt(1+1e-8) // unbiased variance of 1, 2, 3 is 1
	for i, w := range []float64{-s, 0, s, 0} {
		if got := Whiten(x, mask, true); !near(got[i], w) {
			t.Fatalf("whitened %v", got)
		}
	}
	for i, w := range []float64{2 - s, 2, 2 + s, 0} {
		if got := Whiten(x, mask, false); !near(got[i], w) {
			t.Fatalf("scaled %v", got)
		}
	}
	if got := Whiten([]float64{5, 9}, []float64{1, 0}, true); got[0] != 0 || got[1] != 0 {
		t.Errorf("single entry: %v", got)
	}
}

func TestKLByHand(t *testing.T) {
	for _, c := range []struct {
		logp, ref, k1, k3 float64
	}{
		{-1, -2, 1, math.Exp(-1)}, // log r = −1: k3 = e⁻¹ − 1 + 1
		{-2, -1, -1, math.E - 2},  // log r = 1: k3 = e − 1 − 1
		{-0.7, -0.7, 0, 0},        // identical: both exactly 0
	} {
		if got := K1.Token(c.logp, c.ref); !near(got, c.k1) {
			t.Errorf("k1(%v, %v) = %v, want %v", c.logp, c.ref, got, c.k1)
		}
		if got := K3.Token(c.logp, c.ref); !near(got, c.k3) {
			t.Errorf("k3(%v, %v) = %v, want %v", c.logp, c.ref, got, c.k3)
		}
	}
	if KLEstimator("k2").Validate() == nil {
		t.Error("unknown estimator accepted")
	}
	// Both estimators are unbiased: their means over samples from π approach
	// KL(π‖ref) for a two-token distribution.
	pi, ref := []float64{0.8, 0.2}, []float64{0.5, 0.5}
	exact := 0.8*math.Log(0.8/0.5) + 0.2*math.Log(0.2/0.5)
	for _, e := range []KLEstimator{K1, K3} {
		mean := 0.0
		for a := range pi {
			mean += pi[a] * e.Token(math.Log(pi[a]), math.Log(ref[a]))
		}
		if !near(mean, exact) {
			t.Errorf("%s expectation %v, want KL %v", e, mean, exact)
		}
	}
}

func TestKLControllers(t *testing.T) {
	f := &FixedKL{Value: 0.05}
	f.Update(100, 64)
	if f.Coef() != 0.05 {
		t.Errorf("fixed coefficient changed to %v", f.Coef())
	}
	a := &AdaptiveKL{Value: 0.2, Target: 6, Horizon: 10000}
	a.Update(9, 256) // e = clip(0.5) = 0.2
	if !near(a.Coef(), 0.2*(1+0.2*256/10000.0)) {
		t.Errorf("adaptive above target: %v", a.Coef())
	}
	a = &AdaptiveKL{Value: 0.2, Target: 6, Horizon: 10000}
	a.Update(5.7, 256) // e = −0.05
	if !near(a.Coef(), 0.2*(1-0.05*256/10000.0)) {
		t.Errorf("adaptive below target: %v", a.Coef())
	}
	if (&AdaptiveKL{Value: 0.1, Target: 0, Horizon: 10}).Validate() == nil ||
		(&AdaptiveKL{Value: 0.1, Target: 6, Horizon: 0}).Validate() == nil ||
		(&AdaptiveKL{Value: 0.1, Target: 6, Horizon: 10000}).Validate() != nil {
		t.Error("AdaptiveKL.Validate")
	}
	// The controller drives a KL that responds to β towards the target.
	a = &AdaptiveKL{Value: 1, Target: 2, Horizon: 100}
	for range 400 {
		a.Update(1/a.Coef(), 10) // a toy policy whose KL is 1/β
	}
	if kl := 1 / a.Coef(); math.Abs(kl-2) > 0.05 {
		t.Errorf("adaptive KL settles at %v, want 2", kl)
	}
}

func TestShapeByHand(t *testing.T) {
	r := Rollout{
		T: 3, Lengths: []int{2, 3},
		Logprobs:    []float64{-1, -2, 0, -0.5, -0.5, -0.5},
		RefLogprobs: []float64{-1.5, -1, 0, -0.5, -0.5, -0.5},
		Scores:      []float64{1, 2},
		HasEOS:      []bool{true, false},
	}
	s, err := Shape(r, ShapeConfig{Estimator: K1, KLCoef: 0.1, MissingEOSPenalty: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Row 0: KL (0.5, −1), score 1 on its last token; row 1: KL 0, score 2 − 1.
	wantRewards := []float64{-0.05, 0.1 + 1, 0, 0, 0, 1}
	wantKL := []float64{0.5, -1, 0, 0, 0, 0}
	for i := range wantRewards {
		if !near(s.Rewards[i], wantRewards[i]) || !near(s.KL[i], wantKL[i]) {
			t.Fatalf("rewards %v kl %v, want %v %v", s.Rewards, s.KL, wantRewards, wantKL)
		}
	}
	want := map[string]float64{
		"objective/kl": -0.25, "objective/entropy": 2.25, "objective/non_score_reward": 0.025,
		"objective/scores": 1, "objective/rlhf_reward": 1.025,
	}
	got := s.Stats.Map()
	for k, v := range want {
		if !near(got[k], v) {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	r.Scores = r.Scores[:1]
	if _, err := Shape(r, ShapeConfig{Estimator: K1}); err == nil {
		t.Error("missing score accepted")
	}
}

// policyBatch: old log-probs −1; ratios 1, 1.5, 0.5, 1.1, 1.5 and a padding
// position; ε = 0.2.
func policyBatch() (*Minibatch, []float64) {
	m := &Minibatch{
		OldLogprobs: []float64{-1, -1, -1, -1, -1, -1},
		Advantages:  []float64{1, 1, -1, -2, -1, 5},
		OldValues:   make([]float64, 6), Returns: make([]float64, 6),
		Mask:      []float64{1, 1, 1, 1, 1, 0},
		ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 0.1,
	}
	logp := []float64{-1, -1 + math.Log(1.5), -1 + math.Log(0.5), -1 + math.Log(1.1), -1 + math.Log(1.5), 3}
	return m, logp
}

func TestPolicyLossByHand(t *testing.T) {
	m, logp := policyBatch()
	loss, g := m.PolicyLoss([][]float64{logp})
	// Per token max(−Âρ, −Â clip ρ): −1 (equal), −1.2 (clipped), 0.8 (clipped),
	// 2.2 (equal, inside the range), 1.5 (unclipped term larger although ρ is
	// outside the range).
	if !near(loss, (-1-1.2+0.8+2.2+1.5)/5) {
		t.Errorf("loss %v, want 0.46", loss)
	}
	wantGrad := []float64{-1.0 / 5, 0, 0, 2 * 1.1 / 5, 1.5 / 5, 0}
	for i := range wantGrad {
		if !near(g[0][i], wantGrad[i]) {
			t.Fatalf("grad %v, want %v", g[0], wantGrad)
		}
	}
	l2 := math.Log(1.5) * math.Log(1.5)
	wantKL := 0.5 * (2*l2 + math.Log(0.5)*math.Log(0.5) + math.Log(1.1)*math.Log(1.1)) / 5
	if !near(m.Last.ClipFrac, 0.4) || !near(m.Last.ApproxKL, wantKL) || m.Last.PolicyLoss != loss {
		t.Errorf("stats %+v", m.Last)
	}
}

func TestValueLossByHand(t *testing.T) {
	m := &Minibatch{
		OldLogprobs: make([]float64, 4), Advantages: make([]float64, 4),
		OldValues: []float64{0, 0, 0, 0}, Returns: []float64{1, 1, -1, 0.1},
		Mask: []float64{1, 1, 1, 1}, ClipRangeValue: 0.2,
	}
	loss, g := m.ValueLoss([][]float64{{0.1, 0.5, 0.5, 0.3}})
	// max((V−R)², (V_c−R)²): 0.81 (equal), 0.64 (clipped), 2.25, 0.04.
	if !near(loss, 0.5*(0.81+0.64+2.25+0.04)/4) {
		t.Errorf("loss %v, want 0.4675", loss)
	}
	for i, w := range []float64{-0.9 / 4, 0, 1.5 / 4, 0.2 / 4} {
		if !near(g[0][i], w) {
			t.Fatalf("grad %v", g[0])
		}
	}
	if !near(m.Last.ValueClipFrac, 0.25) || m.Last.ValueLoss != loss {
		t.Errorf("stats %+v", m.Last)
	}
}

func TestLossesFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	const n, h = 40, 1e-6
	m := &Minibatch{ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 0.3}
	logp, vals := make([]float64, n), make([]float64, n)
	for i := range n {
		m.OldLogprobs = append(m.OldLogprobs, -3*r.Float64())
		logp[i] = m.OldLogprobs[i] + 0.6*r.NormFloat64() // many tokens outside the clip range
		m.Advantages = append(m.Advantages, r.NormFloat64())
		m.OldValues = append(m.OldValues, r.NormFloat64())
		vals[i] = m.OldValues[i] + 0.5*r.NormFloat64()
		m.Returns = append(m.Returns, r.NormFloat64())
		mask := 1.0
		if r.IntN(4) == 0 {
			mask = 0 // about a quarter padding
		}
		m.Mask = append(m.Mask, mask)
	}
	_, g := m.Loss([][]float64{logp, vals})
	if m.Last.ClipFrac == 0 || m.Last.ValueClipFrac == 0 {
		t.Fatalf("batch exercises no clipping: %+v", m.Last)
	}
	for k, x := range [][]float64{logp, vals} {
		for i := range x {
			x0 := x[i]
			x[i] = x0 + h
			up, _ := m.Loss([][]float64{logp, vals})
			x[i] = x0 - h
			dn, _ := m.Loss([][]float64{logp, vals})
			x[i] = x0
			if fd := (up - dn) / (2 * h); math.Abs(fd-g[k][i]) > 1e-6 {
				t.Errorf("input %d position %d: grad %.9g, finite difference %.9g", k, i, g[k][i], fd)
			}
		}
	}
}

func TestUpdateAverager(t *testing.T) {
	var a UpdateAverager
	if a.Mean() != (UpdateStats{}) {
		t.Error("empty averager not zero")
	}
	a.Add(UpdateStats{ApproxKL: 1, ClipFrac: 0.5, PolicyLoss: -1, ValueLoss: 2, ValueClipFrac: 0})
	a.Add(UpdateStats{ApproxKL: 3, ClipFrac: 0, PolicyLoss: 1, ValueLoss: 4, ValueClipFrac: 1})
	want := map[string]float64{
		"policy/approxkl_avg": 2, "policy/clipfrac_avg": 0.25, "loss/policy_avg": 0,
		"loss/value_avg": 3, "val/clipfrac_avg": 0.5,
	}
	for k, v := range a.Map() {
		if want[k] != v {
			t.Errorf("%s = %v, want %v", k, v, want[k])
		}
	}
}
