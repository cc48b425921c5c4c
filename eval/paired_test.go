package eval

import (
	"math"
	"testing"
)

// TestMcNemar checks the exact test against binomial sums done by hand.
func TestMcNemar(t *testing.T) {
	for _, c := range []struct {
		b, c int
		want float64
	}{
		{10, 0, 2.0 / 1024}, // 2·(½)¹⁰
		{0, 10, 2.0 / 1024},
		{5, 5, 1},
		{3, 1, 0.625},               // 2·(1+4)/16
		{12, 9, 0.6636238098144531}, // 2·Σ_{i≤9} C(21,i)/2²¹
		{23, 9, 0.020061607006937265},
		{0, 0, 1},
	} {
		if got := McNemar(c.b, c.c); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("McNemar(%d, %d) = %.15g, want %.15g", c.b, c.c, got, c.want)
		}
	}
}

func TestCompare(t *testing.T) {
	a := []bool{true, true, false, true, false, true}
	b := []bool{false, true, true, false, false, false}
	p, err := Compare(a, b)
	if err != nil {
		t.Fatal(err)
	}
	// Tasks 0, 3 and 5 fixed, task 2 broken.
	if p != (Paired{Tasks: 6, Fixed: 3, Broken: 1}) || p.Delta() != 2.0/6 || p.P() != McNemar(3, 1) {
		t.Errorf("Compare = %+v (Δ %g, p %g)", p, p.Delta(), p.P())
	}
	if _, err := Compare(a, b[:5]); err == nil {
		t.Error("results of different lengths: no error")
	}
	if _, err := Compare(nil, nil); err == nil {
		t.Error("no results: no error")
	}
}

func TestStdErr(t *testing.T) {
	if got := StdErr(0.3, 10); math.Abs(got-math.Sqrt(0.021)) > 1e-15 {
		t.Errorf("StdErr(0.3, 10) = %g, want √0.021", got)
	}
	if StdErr(1, 5) != 0 || !math.IsNaN(StdErr(0.5, 0)) {
		t.Errorf("StdErr(1, 5) = %g, StdErr(0.5, 0) = %g; want 0 and NaN", StdErr(1, 5), StdErr(0.5, 0))
	}
}
