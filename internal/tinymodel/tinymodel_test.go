package tinymodel

import (
	"math"
	"testing"
)

// TestNLL checks the reference NLL on values known by hand, and that it
// stays finite for logits whose exponentials overflow float64.
func TestNLL(t *testing.T) {
	for _, c := range []struct {
		logits []float32
		target int
		want   float64
	}{
		{[]float32{0, 0}, 0, math.Ln2},
		{[]float32{0, 0, 0, 0}, 3, math.Log(4)},
		{[]float32{2, 0}, 1, 2 + math.Log(1+math.Exp(-2))},
		{[]float32{1000, 0}, 1, 1000},
		{[]float32{1000, 1000}, 0, math.Ln2},
	} {
		if got := NLL(c.logits, c.target); math.Abs(got-c.want) > 1e-9*math.Max(1, c.want) {
			t.Errorf("NLL(%v, %d) = %v, want %v", c.logits, c.target, got, c.want)
		}
	}
}
