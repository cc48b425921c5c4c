package train

import (
	"math"
	"testing"
)

// Softplus and Sigmoid agree with their definitions where those are
// representable, stay finite where they are not, and Sigmoid is Softplus's
// derivative.
func TestLogistic(t *testing.T) {
	if Softplus(0) != math.Ln2 || Sigmoid(0) != 0.5 {
		t.Fatalf("at 0: softplus %v, sigmoid %v", Softplus(0), Sigmoid(0))
	}
	for _, x := range []float64{-30, -3, -0.5, 0.25, 2, 30} {
		if want := math.Log(1 + math.Exp(x)); math.Abs(Softplus(x)-want) > 1e-12*(1+want) {
			t.Errorf("softplus(%v) = %v, want %v", x, Softplus(x), want)
		}
		if want := 1 / (1 + math.Exp(-x)); math.Abs(Sigmoid(x)-want) > 1e-15 {
			t.Errorf("sigmoid(%v) = %v, want %v", x, Sigmoid(x), want)
		}
		// softplus(x) − softplus(−x) = x
		if d := Softplus(x) - Softplus(-x); math.Abs(d-x) > 1e-12*(1+math.Abs(x)) {
			t.Errorf("softplus(%v) − softplus(%v) = %v", x, -x, d)
		}
		const h = 1e-6
		if fd := (Softplus(x+h) - Softplus(x-h)) / (2 * h); math.Abs(fd-Sigmoid(x)) > 1e-6 {
			t.Errorf("d softplus/dx at %v: %v, sigmoid %v", x, fd, Sigmoid(x))
		}
	}
	for _, x := range []float64{-1000, 1000} {
		if s, g := Softplus(x), Sigmoid(x); math.IsInf(s, 0) || math.IsNaN(s) || math.IsNaN(g) {
			t.Errorf("at %v: softplus %v, sigmoid %v", x, s, g)
		}
	}
	if Softplus(1000) != 1000 || Softplus(-1000) != 0 || Sigmoid(1000) != 1 || Sigmoid(-1000) != 0 {
		t.Errorf("limits: %v %v %v %v", Softplus(1000), Softplus(-1000), Sigmoid(1000), Sigmoid(-1000))
	}
}
