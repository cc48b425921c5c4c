package dpo

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// batch is a fixed tiny batch of two pairs:
//
//	pair 1: πc −5, πr −7, ρc −6, ρr −6, |c| 2, |r| 3  ⇒ Δ = 2
//	pair 2: πc −8, πr −6, ρc −7.5, ρr −7, |c| 4, |r| 2 ⇒ Δ = −1.5
func batch() Pairs {
	return Pairs{
		PolicyChosen: []float64{-5, -8}, PolicyRejected: []float64{-7, -6},
		RefChosen: []float64{-6, -7.5}, RefRejected: []float64{-6, -7},
		ChosenTokens: []float64{2, 4}, RejectedTokens: []float64{3, 2},
	}
}

// lsig is log σ(x), written out independently of the package.
func lsig(x float64) float64 { return -math.Log(1 + math.Exp(-x)) }

func TestLossesByHand(t *testing.T) {
	const b = 0.1
	// IPO averages per token: Δ̄₁ = (−5/2 + 7/3) − (−6/2 + 6/3) = 5/6,
	// Δ̄₂ = (−8/4 + 6/2) − (−7.5/4 + 7/2) = −5/8; target 1/(2β) = 5.
	// SimPO (β 2, γ 0.5): h₁ = −5/2 + 7/3 = −1/6, h₂ = −2 + 3 = 1.
	for _, c := range []struct {
		name string
		cfg  LossConfig
		want float64
	}{
		{"sigmoid", LossConfig{Beta: b}, -(lsig(0.2) + lsig(-0.15)) / 2},
		{"cdpo", LossConfig{Beta: b, LabelSmoothing: 0.1},
			(-0.9*lsig(0.2) - 0.1*lsig(-0.2) - 0.9*lsig(-0.15) - 0.1*lsig(0.15)) / 2},
		{"robust", LossConfig{Type: Robust, Beta: b, LabelSmoothing: 0.1},
			((-0.9*lsig(0.2) + 0.1*lsig(-0.2)) + (-0.9*lsig(-0.15) + 0.1*lsig(0.15))) / 0.8 / 2},
		{"hinge", LossConfig{Type: Hinge, Beta: b}, (0.8 + 1.15) / 2},
		{"hinge_zero", LossConfig{Type: Hinge, Beta: 1}, (0 + 2.5) / 2}, // βΔ₁ = 2 ≥ 1 costs nothing
		{"ipo", LossConfig{Type: IPO, Beta: b}, ((5.0/6-5)*(5.0/6-5) + (-5.0/8-5)*(-5.0/8-5)) / 2},
		{"simpo", LossConfig{Type: SimPO, Beta: 2, Gamma: 0.5}, -(lsig(2*(-1.0/6)-0.5) + lsig(2*1-0.5)) / 2},
		{"sigmoid+sft", LossConfig{Beta: b, SFTWeight: 0.5}, -(lsig(0.2)+lsig(-0.15))/2 + 0.5*13.0/6},
	} {
		out, err := c.cfg.Compute(batch())
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if math.Abs(out.Loss-c.want) > 1e-12 {
			t.Errorf("%s: loss %.15f, want %.15f", c.name, out.Loss, c.want)
		}
		if out.Metrics.Loss != out.Loss {
			t.Errorf("%s: metric loss %v != %v", c.name, out.Metrics.Loss, out.Loss)
		}
	}
}

func TestMetricsByHand(t *testing.T) {
	out, err := LossConfig{Beta: 0.1}.Compute(batch())
	if err != nil {
		t.Fatal(err)
	}
	// Rewards: chosen 0.1·(1, −0.5), rejected 0.1·(−1, 1).
	want := map[string]float64{
		"rewards/chosen": 0.025, "rewards/rejected": 0, "rewards/accuracies": 0.5,
		"rewards/margins": (0.2 - 0.15) / 2, "logps/chosen": -6.5, "logps/rejected": -6.5,
		"loss": out.Loss,
	}
	got := out.Metrics.Map("")
	if len(got) != len(want) {
		t.Fatalf("metrics %v", got)
	}
	for k, v := range want {
		if math.Abs(got[k]-v) > 1e-12 {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for k := range out.Metrics.Map("eval_") {
		if !strings.HasPrefix(k, "eval_") {
			t.Errorf("unprefixed %q", k)
		}
	}
	// IPO and SimPO report per-token averages.
	ipo, _ := LossConfig{Type: IPO, Beta: 0.1}.Compute(batch())
	if w := (-5.0/2 + -8.0/4) / 2; math.Abs(ipo.Metrics.LogpsChosen-w) > 1e-12 {
		t.Errorf("ipo logps/chosen %v, want %v", ipo.Metrics.LogpsChosen, w)
	}
	if w := 0.1 * ((-5.0/2 + 6.0/2) + (-8.0/4 + 7.5/4)) / 2; math.Abs(ipo.Metrics.RewardsChosen-w) > 1e-12 {
		t.Errorf("ipo rewards/chosen %v, want %v", ipo.Metrics.RewardsChosen, w)
	}
	simpo, _ := LossConfig{Type: SimPO, Beta: 2}.Compute(batch())
	if w := 2 * (-5.0/2 + -8.0/4) / 2; math.Abs(simpo.Metrics.RewardsChosen-w) > 1e-12 {
		t.Errorf("simpo rewards/chosen %v, want %v", simpo.Metrics.RewardsChosen, w)
	}
}

// configs covers every variant and option for the gradient tests.
var configs = []LossConfig{
	{Beta: 0.1},
	{Beta: 0.5, LabelSmoothing: 0.2},
	{Type: Robust, Beta: 0.3, LabelSmoothing: 0.2},
	{Type: Hinge, Beta: 0.2},
	{Type: IPO, Beta: 0.1},
	{Type: IPO, Beta: 0.4, SFTWeight: 0.3},
	{Type: SimPO, Beta: 2, Gamma: 0.7},
	{Type: SimPO, Beta: 2.5, Gamma: 1, LabelSmoothing: 0.1, SFTWeight: 1},
	{Beta: 0.1, SFTWeight: 1},
}

func randomPairs(r *rand.Rand, n int) Pairs {
	p := Pairs{}
	for range n {
		p.PolicyChosen = append(p.PolicyChosen, -20*r.Float64())
		p.PolicyRejected = append(p.PolicyRejected, -20*r.Float64())
		p.RefChosen = append(p.RefChosen, -20*r.Float64())
		p.RefRejected = append(p.RefRejected, -20*r.Float64())
		p.ChosenTokens = append(p.ChosenTokens, float64(1+r.IntN(9)))
		p.RejectedTokens = append(p.RejectedTokens, float64(1+r.IntN(9)))
	}
	return p
}

// TestGradientsFiniteDifference checks ∂L/∂πc and ∂L/∂πr of every variant
// against central differences.
func TestGradientsFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const h = 1e-6
	for _, cfg := range configs {
		for trial := range 5 {
			p := randomPairs(r, 4)
			out, err := cfg.Compute(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, side := range []struct {
				name string
				x    []float64
				g    []float64
			}{{"chosen", p.PolicyChosen, out.GradChosen}, {"rejected", p.PolicyRejected, out.GradRejected}} {
				for i := range side.x {
					x0 := side.x[i]
					side.x[i] = x0 + h
					up, _ := cfg.Compute(p)
					side.x[i] = x0 - h
					dn, _ := cfg.Compute(p)
					side.x[i] = x0
					fd := (up.Loss - dn.Loss) / (2 * h)
					if cfg.Type == Hinge && math.Abs(fd-side.g[i]) > 1e-4 && kinkNear(cfg, p, i) {
						continue // the hinge's kink lies within ±h
					}
					if math.Abs(fd-side.g[i]) > 1e-6*(1+math.Abs(fd)) {
						t.Errorf("%+v trial %d %s[%d]: grad %.9g, finite difference %.9g", cfg, trial, side.name, i, side.g[i], fd)
					}
				}
			}
		}
	}
}

func kinkNear(cfg LossConfig, p Pairs, i int) bool {
	d := (p.PolicyChosen[i] - p.PolicyRejected[i]) - (p.RefChosen[i] - p.RefRejected[i])
	return math.Abs(1-cfg.Beta*d) < 1e-4
}

// tokenBatch lays out P pairs of T tokens: chosen rows, then rejected rows,
// with a prompt of a few masked-out tokens, completion tokens, then padding.
func tokenBatch(r *rand.Rand, P, T int) (policy, ref, mask []float64) {
	n := 2 * P * T
	policy, ref, mask = make([]float64, n), make([]float64, n), make([]float64, n)
	for row := range 2 * P {
		prompt := 1 + r.IntN(3)
		comp := 1 + r.IntN(T-prompt)
		for j := range T {
			k := row*T + j
			policy[k] = -3 * r.Float64()
			ref[k] = -3 * r.Float64()
			if j >= prompt && j < prompt+comp {
				mask[k] = 1
			}
		}
	}
	return policy, ref, mask
}

func TestTokenLoss(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const P, T, h = 3, 8, 1e-6
	for _, cfg := range configs {
		policy, ref, mask := tokenBatch(r, P, T)
		s := &Step{Config: cfg, T: T, Mask: mask, RefTokenLogps: ref}
		loss, grads := s.TokenLoss([][]float64{policy})
		if len(grads) != 1 || len(grads[0]) != len(policy) {
			t.Fatalf("gradient shape %d×%d", len(grads), len(grads[0]))
		}
		// The same loss through PairLoss with the sums.
		sums, counts := RowSums(policy, mask, T)
		refSums, _ := RowSums(ref, mask, T)
		ps := &Step{Config: cfg, Ref: Pairs{RefChosen: refSums[:P], RefRejected: refSums[P:], ChosenTokens: counts[:P], RejectedTokens: counts[P:]}}
		pl, _ := ps.PairLoss([][]float64{sums[:P], sums[P:]})
		if math.Abs(pl-loss) > 1e-12 {
			t.Errorf("%+v: TokenLoss %v != PairLoss %v", cfg, loss, pl)
		}
		if s.Last.Loss != loss {
			t.Errorf("Last not recorded")
		}
		for k := range policy {
			x0 := policy[k]
			policy[k] = x0 + h
			up, _ := s.TokenLoss([][]float64{policy})
			policy[k] = x0 - h
			dn, _ := s.TokenLoss([][]float64{policy})
			policy[k] = x0
			fd := (up - dn) / (2 * h)
			if math.Abs(fd-grads[0][k]) > 1e-6*(1+math.Abs(fd)) {
				t.Errorf("%+v token %d: grad %.9g, finite difference %.9g", cfg, k, grads[0][k], fd)
			}
			if mask[k] == 0 && grads[0][k] != 0 {
				t.Errorf("gradient %v on masked-out token %d", grads[0][k], k)
			}
		}
	}
}

// TestFreshAdapter: when the policy is the reference (a fresh adapter),
// every implicit reward is exactly 0 and the sigmoid loss is exactly log 2.
func TestFreshAdapter(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const P, T = 4, 16
	policy, _, mask := tokenBatch(r, P, T)
	ref := append([]float64(nil), policy...)
	s := &Step{Config: LossConfig{Beta: 0.1}, T: T, Mask: mask, RefTokenLogps: ref}
	loss, _ := s.TokenLoss([][]float64{policy})
	if loss != math.Ln2 {
		t.Errorf("loss %v, want exactly log 2 = %v", loss, math.Ln2)
	}
	m := s.Last.Metrics
	if m.RewardsChosen != 0 || m.RewardsRejected != 0 || m.RewardsMargins != 0 || m.RewardsAccuracies != 0 {
		t.Errorf("rewards not zero: %+v", m)
	}
	// Precomputed reference sums give the same loss as live reference tokens.
	refSums, _ := RowSums(ref, mask, T)
	pre := &Step{Config: s.Config, T: T, Mask: mask, Ref: Pairs{RefChosen: refSums[:P], RefRejected: refSums[P:]}}
	if l, _ := pre.TokenLoss([][]float64{policy}); l != loss {
		t.Errorf("precomputed reference loss %v != live %v", l, loss)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  LossConfig
		want string
	}{
		{LossConfig{Type: "kto", Beta: 0.1}, KeyLossType},
		{LossConfig{Beta: 0}, KeyBeta},
		{LossConfig{Beta: math.NaN()}, KeyBeta},
		{LossConfig{Beta: 0.1, LabelSmoothing: 1}, KeyLabelSmoothing},
		{LossConfig{Type: Robust, Beta: 0.1, LabelSmoothing: 0.5}, "< 0.5"},
		{LossConfig{Type: IPO, Beta: 0.1, LabelSmoothing: 0.1}, KeyLabelSmoothing + " applies"},
		{LossConfig{Beta: 0.1, Gamma: 1}, KeySimPOGamma},
		{LossConfig{Beta: 0.1, SFTWeight: -1}, KeyRPOAlpha},
	} {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one mentioning %q", c.cfg, err, c.want)
		}
	}
	bad := batch()
	bad.RejectedTokens[1] = 0
	if _, err := (LossConfig{Type: IPO, Beta: 0.1}).Compute(bad); err == nil || !strings.Contains(err.Error(), "pair 1") {
		t.Errorf("empty completion: %v", err)
	}
	short := batch()
	short.RefRejected = short.RefRejected[:1]
	if _, err := (LossConfig{Beta: 0.1}).Compute(short); err == nil {
		t.Error("short reference accepted")
	}
	// SimPO needs no reference.
	noRef := batch()
	noRef.RefChosen, noRef.RefRejected = nil, nil
	if _, err := (LossConfig{Type: SimPO, Beta: 2}).Compute(noRef); err != nil {
		t.Errorf("simpo without reference: %v", err)
	}
	if _, err := (LossConfig{Beta: 0.1}).Compute(Pairs{}); err == nil {
		t.Error("empty batch accepted")
	}
}

// TestStable: extreme log-ratios give finite losses and gradients.
func TestStable(t *testing.T) {
	p := Pairs{
		PolicyChosen: []float64{-1, -5000}, PolicyRejected: []float64{-5000, -1},
		RefChosen: []float64{-10, -10}, RefRejected: []float64{-10, -10},
		ChosenTokens: []float64{1, 1}, RejectedTokens: []float64{1, 1},
	}
	for _, cfg := range configs {
		out, err := cfg.Compute(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range append(append([]float64{out.Loss}, out.GradChosen...), out.GradRejected...) {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("%+v: non-finite %v", cfg, v)
			}
		}
	}
}
