package train

import (
	"math"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

// TestAdamWHand checks two updates against values worked out by hand from
// Algorithm 2 with lr = 0.1, β = (0.9, 0.999), ε = 10⁻⁸, λ = 0.01.
func TestAdamWHand(t *testing.T) {
	o := NewAdamW(0.9, 0.999, 1e-8, 0.01, []int{2, 1})
	theta := []float32{1, -2}
	frozen := []float32{3} // exempt from decay
	values := [][]float32{theta, frozen}
	decay := []bool{true, false}

	// Update 1, g = (0.5, −1): m = 0.1·g, v = 0.001·g², so m̂ = g, v̂ = g²
	// and m̂/(√v̂+ε) = ±1/(1+2·10⁻⁸ | 10⁻⁸). θ ← 0.999·θ − 0.1·(±1):
	//   θ₀ = 0.999 − 0.099999998 = 0.899000002
	//   θ₁ = −1.998 + 0.099999999 = −1.898000001
	o.Update(values, [][]float32{{0.5, -1}, {2}}, decay, 0.1)
	want := []float64{0.899000002, -1.898000001}
	for i := range want {
		if !near(float64(theta[i]), want[i], 1e-7) {
			t.Errorf("update 1: θ[%d] = %.9f, want %.9f", i, theta[i], want[i])
		}
	}
	// The exempt parameter moves by exactly lr·sign(g) (no decay).
	if !near(float64(frozen[0]), 3-0.1, 1e-7) {
		t.Errorf("no-decay parameter = %.9f, want 2.9", frozen[0])
	}

	// Update 2, g = (−0.5, 2); 1−β₁² = 0.19, 1−β₂² = 0.001999.
	//   m₀ = 0.9·0.05 − 0.05 = −0.005,   v₀ = 0.999·0.00025 + 0.00025 = 0.00049975
	//   m̂₀ = −0.005/0.19 = −0.02631579, v̂₀ = 0.00049975/0.001999 = 0.25
	//   θ₀ = 0.899000002·0.999 + 0.1·0.02631579/0.5 = 0.90336416
	//   m₁ = −0.09 + 0.2 = 0.11,         v₁ = 0.000999 + 0.004 = 0.004999
	//   m̂₁ = 0.11/0.19 = 0.57894737,     v̂₁ = 0.004999/0.001999 = 2.50075038
	//   θ₁ = −1.898000001·0.999 − 0.1·0.57894737/1.58137610 = −1.93271235
	o.Update(values, [][]float32{{-0.5, 2}, {2}}, decay, 0.1)
	want = []float64{0.90336416, -1.93271235}
	for i := range want {
		if !near(float64(theta[i]), want[i], 1e-6) {
			t.Errorf("update 2: θ[%d] = %.9f, want %.9f", i, theta[i], want[i])
		}
	}
	if o.T != 2 || !near(float64(o.M[0][0]), -0.005, 1e-6) || !near(float64(o.V[0][1]), 0.004999, 1e-6) {
		t.Errorf("state t=%d m=%v v=%v", o.T, o.M, o.V)
	}
}

func TestSchedule(t *testing.T) {
	cos := Schedule{Kind: "cosine", LR: 2, WarmupSteps: 10, TotalSteps: 110}
	floor := cos
	floor.MinLRRatio = 0.1
	lin := cos
	lin.Kind = "linear"
	constant := cos
	constant.Kind = "constant"
	cases := []struct {
		s    Schedule
		step int
		want float64
	}{
		{cos, 0, 0}, {cos, 5, 1}, {cos, 10, 2}, {cos, 60, 1}, {cos, 110, 0},
		{cos, 35, 2 * 0.5 * (1 + math.Cos(math.Pi/4))}, // a quarter of the decay
		{floor, 60, 2 * (0.1 + 0.9*0.5)}, {floor, 110, 0.2}, {floor, 5, 1},
		{lin, 60, 1}, {lin, 85, 0.5}, {lin, 110, 0},
		{constant, 3, 0.6}, {constant, 100, 2},
		{Schedule{LR: 1, TotalSteps: 4}, 2, 0.5}, // default kind is cosine, no warmup
	}
	for _, c := range cases {
		if got := c.s.At(c.step); !near(got, c.want, 1e-12) {
			t.Errorf("%s (warmup %d, floor %g) at %d = %g, want %g", c.s.Kind, c.s.WarmupSteps, c.s.MinLRRatio, c.step, got, c.want)
		}
	}
	if err := (Schedule{Kind: "step"}).Validate(); err == nil {
		t.Error("unknown kind accepted")
	}
	if err := (Schedule{MinLRRatio: 2}).Validate(); err == nil {
		t.Error("min_lr_ratio 2 accepted")
	}
}

func TestClipGlobalNorm(t *testing.T) {
	g := [][]float32{{3}, {0, 4}}
	if n := ClipGlobalNorm(g, 10); n != 5 || g[0][0] != 3 || g[1][1] != 4 {
		t.Errorf("below the limit: norm %g, grads %v", n, g)
	}
	if n := ClipGlobalNorm(g, 1); n != 5 {
		t.Errorf("norm before clipping %g, want 5", n)
	}
	c := 1 / (5 + 1e-6)
	if !near(float64(g[0][0]), 3*c, 1e-7) || !near(float64(g[1][1]), 4*c, 1e-7) || g[1][0] != 0 {
		t.Errorf("clipped grads %v", g)
	}
	if n := GlobalNorm(g); !near(n, 1, 1e-6) {
		t.Errorf("norm after clipping %g", n)
	}
	if n := ClipGlobalNorm([][]float32{{float32(math.Inf(1))}}, 1); !math.IsInf(n, 1) {
		t.Errorf("infinite norm reported as %g", n)
	}
}
