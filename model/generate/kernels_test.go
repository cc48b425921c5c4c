package generate

import (
	"fmt"

	"github.com/gotune/gotune/internal/blas"
	"math"
	"math/rand/v2"
	"testing"
)

// The register-blocked kernels agree with a plain triple loop on every
// shape class: odd N, out not a multiple of 4, in not a multiple of 8 or 16.
func TestSmallGemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, s := range []struct{ N, in, out int }{{1, 8, 4}, {1, 288, 768}, {2, 24, 9}, {3, 7, 5}, {8, 288, 32000 / 16}, {5, 100, 13}, {1, 16, 4}, {1, 40, 4}, {4, 0, 4}, {301, 288, 12}, {7, 3, 9}, {packedMinRows + 3, 37, 70}, {packedMinRows, 288, 768}} {
		x, w := make([]float32, s.N*s.in), make([]float32, s.out*s.in)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		y := make([]float32, s.N*s.out)
		for i := range y {
			y[i] = 99 // overwritten, not accumulated
		}
		if !smallGemm(y, x, w, s.N, s.in, s.out) {
			t.Skip("no AVX2+FMA kernels on this CPU or build")
		}
		for i := range s.N {
			for j := range s.out {
				var want float64
				for k := range s.in {
					want += float64(x[i*s.in+k]) * float64(w[j*s.in+k])
				}
				if got := float64(y[i*s.out+j]); math.Abs(got-want) > 1e-4*(1+math.Abs(want)) {
					t.Fatalf("shape %+v: y[%d,%d] = %g, want %g", s, i, j, got, want)
				}
			}
		}
	}
}

// BenchmarkMatmul compares the kernels behind matmulT on stories15M shapes:
// the register-blocked AVX2 kernel, BLAS GEMM, and (N = 1) the BLAS gemv.
func BenchmarkMatmul(b *testing.B) {
	for _, s := range []struct{ out, in int }{{32000, 288}, {768, 288}, {288, 768}} {
		for _, N := range []int{1, 8, 32, 128} {
			w, x, y := make([]float32, s.out*s.in), make([]float32, N*s.in), make([]float32, N*s.out)
			for i := range w {
				w[i] = float32(i%13) * 0.01
			}
			flops := float64(2 * N * s.in * s.out)
			name := func(k string) string { return fmt.Sprintf("%s/%dx%d/N=%d", k, s.out, s.in, N) }
			b.Run(name("kernel"), func(b *testing.B) {
				if !smallGemm(y, x, w, N, s.in, s.out) {
					b.Skip("no AVX2+FMA kernels")
				}
				for b.Loop() {
					smallGemm(y, x, w, N, s.in, s.out)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			b.Run(name("gemm"), func(b *testing.B) {
				for b.Loop() {
					blas.Gemm(false, true, N, s.out, s.in, 1, x, w, 0, y)
				}
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			if N == 1 {
				b.Run(name("gemv"), func(b *testing.B) {
					for b.Loop() {
						matvec(y, x, w, s.in, s.out)
					}
					b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

func TestDotRows(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for _, s := range []struct{ n, ldw, rows int }{{48, 96, 37}, {8, 8, 4}, {12, 24, 9}, {5, 7, 3}, {64, 128, 1}, {48, 48, 0}} {
		w := make([]float32, max(0, (s.rows-1)*s.ldw+s.n))
		x := make([]float32, s.n)
		for i := range w {
			w[i] = float32(r.NormFloat64())
		}
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		y := make([]float32, s.rows)
		dotRows(y, x, w, s.n, s.ldw, s.rows)
		for u := range s.rows {
			var want float64
			for k := range s.n {
				want += float64(x[k]) * float64(w[u*s.ldw+k])
			}
			if math.Abs(float64(y[u])-want) > 1e-4*(1+math.Abs(want)) {
				t.Fatalf("shape %+v row %d: %g, want %g", s, u, y[u], want)
			}
		}
	}
}
