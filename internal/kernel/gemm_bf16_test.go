package kernel

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gotune/gotune/internal/bf16"
)

// TestGemmNTBF16 checks the bfloat16 product against float64 sums over the
// widened weights, for one row of x (the register-widening kernel) and
// several (the widened blocks), on shapes with column and row tails.
func TestGemmNTBF16(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, s := range []struct{ N, in, out int }{{1, 8, 4}, {1, 896, 130}, {1, 24, 9}, {1, 7, 5}, {2, 40, 12}, {3, 100, 13}, {5, 4864, 9}, {4, 0, 4}, {1, 16, 3}} {
		x, w := make([]float32, s.N*s.in), make([]uint16, s.out*s.in)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for i := range w {
			w[i] = uint16(math.Float32bits(float32(r.NormFloat64())) >> 16)
		}
		y := make([]float32, s.N*s.out)
		for i := range y {
			y[i] = 99 // overwritten, not accumulated
		}
		if !GemmNTBF16(y, x, w, s.N, s.in, s.out) {
			t.Skip("no AVX2+FMA kernels on this CPU or build")
		}
		for i := range s.N {
			for j := range s.out {
				var want float64
				for k := range s.in {
					want += float64(x[i*s.in+k]) * float64(bf16.ToFloat32(w[j*s.in+k]))
				}
				if got := float64(y[i*s.out+j]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("shape %+v: y[%d,%d] = %g, want %g", s, i, j, got, want)
				}
			}
		}
	}
}
