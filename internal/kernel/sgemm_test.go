package kernel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gotune/gotune/internal/benchutil"
)

// refSgemm is the plain triple loop (float64 sums) the packed kernels are
// checked against; C is not read when beta is 0.
func refSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := range m {
		for j := range n {
			var s float64
			for p := range k {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := alpha * float32(s)
			if beta != 0 {
				v += beta * c[i*ldc+j]
			}
			c[i*ldc+j] = v
		}
	}
}

// gemmCase is one product with padded operands: every leading dimension
// exceeds its row's width by pad, and the padding holds NaNs that must
// neither be read into C nor overwritten.
type gemmCase struct {
	transA, transB bool
	m, n, k, pad   int
	alpha, beta    float32
}

func (tc gemmCase) String() string {
	return fmt.Sprintf("tA=%v tB=%v m=%d n=%d k=%d pad=%d alpha=%g beta=%g", tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad, tc.alpha, tc.beta)
}

// check runs tc on Sgemm and on refSgemm and fails on the first element
// that differs by more than float32 rounding over k terms allows.
func (tc gemmCase) check(t *testing.T, r *rand.Rand) {
	t.Helper()
	nan := float32(math.NaN())
	ra, ca, rb, cb := tc.m, tc.k, tc.k, tc.n
	if tc.transA {
		ra, ca = tc.k, tc.m
	}
	if tc.transB {
		rb, cb = tc.n, tc.k
	}
	lda, ldb, ldc := ca+tc.pad, cb+tc.pad, tc.n+tc.pad
	fill := func(rows, cols, ld int) []float32 {
		x := make([]float32, rows*ld)
		for i := range x {
			x[i] = nan
			if i%ld < cols {
				x[i] = r.Float32()*2 - 1
			}
		}
		return x
	}
	a, b := fill(ra, ca, max(1, lda)), fill(rb, cb, max(1, ldb))
	c := fill(tc.m, tc.n, ldc)
	if tc.beta == 0 {
		for i := range c { // must not be read
			if i%ldc < tc.n {
				c[i] = nan
			}
		}
	}
	want := append([]float32(nil), c...)
	refSgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, want, ldc)
	if !Sgemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc) {
		t.Fatalf("%v: Sgemm reported no kernel", tc)
	}
	tol := 1e-5 * float64(tc.k+1)
	for i := range c {
		if i%ldc >= tc.n {
			if !math.IsNaN(float64(c[i])) {
				t.Fatalf("%v: padding c[%d] overwritten with %g", tc, i, c[i])
			}
			continue
		}
		if d := math.Abs(float64(c[i] - want[i])); !(d <= tol*(1+math.Abs(float64(want[i])))) {
			t.Fatalf("%v: c[%d] (row %d col %d) = %g, want %g", tc, i, i/ldc, i%ldc, c[i], want[i])
		}
	}
}

// forEachVariant runs f once with each micro-kernel this CPU supports
// forced, so that the AVX2 kernel is tested on AVX-512 machines too.
func forEachVariant(t *testing.T, f func(t *testing.T)) {
	if len(gemmVariants) == 0 {
		t.Skip("no GEMM micro-kernel on this CPU")
	}
	for _, name := range GemmVariants() {
		t.Run(name, func(t *testing.T) {
			restore, err := UseGemmVariant(name)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			f(t)
		})
	}
}

func TestSgemmMatchesReference(t *testing.T) {
	forEachVariant(t, func(t *testing.T) {
		v := gemmActive
		r := rand.New(rand.NewPCG(5, 6))
		// Sizes around the register and cache blocks of the variant:
		// one less and one more than MR, NR, KC, MC and NC, primes, 1.
		shapes := [][3]int{
			{1, 1, 1}, {v.mr, v.nr, 1}, {v.mr - 1, v.nr + 1, 7}, {v.mr + 1, v.nr - 1, v.kc + 1},
			{2*v.mr + 3, 3*v.nr + 5, v.kc - 1}, {37, 61, 2*v.kc + 3}, {v.mc + 5, 19, 13},
			{23, v.nc + v.nr + 3, 17}, {3, 2*v.nc + 1, 5}, {97, 5, 301},
		}
		for _, s := range shapes {
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for _, ab := range [][2]float32{{1, 0}, {0.5, 1}, {-2, 0.25}} {
						gemmCase{tA, tB, s[0], s[1], s[2], 3, ab[0], ab[1]}.check(t, r)
					}
				}
			}
		}
	})
}

func TestSgemmEdgeCases(t *testing.T) {
	forEachVariant(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(7, 8))
		for _, tc := range []gemmCase{
			{m: 0, n: 5, k: 3, alpha: 1, beta: 0},
			{m: 5, n: 0, k: 3, alpha: 1, beta: 0},
			{m: 4, n: 6, k: 0, pad: 2, alpha: 1, beta: 0},   // C = 0, not read
			{m: 4, n: 6, k: 0, pad: 2, alpha: 1, beta: 0.5}, // C = beta·C
			{m: 9, n: 40, k: 11, pad: 1, alpha: 0, beta: 2}, // alpha = 0
			{m: 9, n: 40, k: 11, pad: 1, alpha: 0, beta: 0}, // alpha = beta = 0
			{m: 300, n: 257, k: 129, pad: 0, alpha: 1, beta: 1},
			{transA: true, transB: true, m: 130, n: 700, k: 520, pad: 4, alpha: 0.75, beta: 0},
		} {
			tc.check(t, r)
		}
	})
}

// TestSgemmParallelSplits runs products big enough to be split across
// goroutines, by rows (more row tiles) and by columns (more column tiles).
func TestSgemmParallelSplits(t *testing.T) {
	forEachVariant(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(9, 10))
		for _, tc := range []gemmCase{
			{m: 515, n: 70, k: 300, pad: 1, alpha: 1, beta: 0},
			{transB: true, m: 33, n: 1500, k: 250, pad: 2, alpha: 1, beta: 0.5},
			{transA: true, m: 700, n: 900, k: 40, pad: 0, alpha: -1, beta: 1},
			// Deep and narrow.
			{m: 30, n: 40, k: 2001, pad: 1, alpha: 1, beta: 0},
			{transA: true, transB: true, m: 7, n: 75, k: 4000, pad: 3, alpha: 0.5, beta: -1},
		} {
			if 2*tc.m*tc.n*tc.k < gemmParallelFlops {
				t.Fatalf("%v is below the parallel threshold", tc)
			}
			tc.check(t, r)
		}
	})
}

func TestSgemmRefusesShortSlices(t *testing.T) {
	forEachVariant(t, func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("Sgemm accepted a C shorter than m×n")
			}
		}()
		a, b, c := make([]float32, 12), make([]float32, 12), make([]float32, 8)
		Sgemm(false, false, 3, 3, 4, 1, a, 4, b, 3, 0, c, 3)
	})
}

func TestUseGemmVariantRefusesUnknown(t *testing.T) {
	if _, err := UseGemmVariant("SSE1"); err == nil {
		t.Fatal("UseGemmVariant accepted an unknown kernel")
	}
}

// FuzzSgemm checks random shapes, transposes, paddings and scalars against
// the reference on every variant.
func FuzzSgemm(f *testing.F) {
	f.Add(uint8(13), uint8(33), uint16(257), uint8(3), uint8(1), uint8(0))
	f.Add(uint8(1), uint8(1), uint16(1), uint8(0), uint8(0), uint8(2))
	f.Add(uint8(200), uint8(70), uint16(600), uint8(5), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, m, n uint8, k uint16, pad, trans, scalars uint8) {
		if len(gemmVariants) == 0 {
			t.Skip("no GEMM micro-kernel on this CPU")
		}
		ab := [][2]float32{{1, 0}, {0.5, 1}, {-1.5, 0.25}, {0, 3}}[scalars%4]
		tc := gemmCase{trans&1 != 0, trans&2 != 0, int(m), int(n), int(k % 1100), int(pad % 9), ab[0], ab[1]}
		for _, name := range GemmVariants() {
			restore, err := UseGemmVariant(name)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, rand.New(rand.NewPCG(uint64(m), uint64(k))))
			restore()
		}
	})
}

func BenchmarkSgemm(b *testing.B) {
	for _, name := range GemmVariants() {
		for _, n := range []int{512, 1024} {
			b.Run(fmt.Sprintf("%s/%d", name, n), func(b *testing.B) {
				restore, err := UseGemmVariant(name)
				if err != nil {
					b.Fatal(err)
				}
				defer restore()
				x, y, z := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
				for i := range x {
					x[i], y[i] = float32(i%7), float32(i%5)
				}
				for b.Loop() {
					Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
				}
				b.ReportMetric(2*float64(n*n*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkSgemmShapes times the products of a stories15M training step
// (2048 tokens; the language-model head in chunks of 524 rows).
func BenchmarkSgemmShapes(b *testing.B) {
	for _, s := range []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"head-logits", false, true, 524, 32000, 288},
		{"head-dh", false, false, 524, 288, 32000},
		{"ffn-up", false, true, 2048, 768, 288},
		{"ffn-down-dx", false, false, 2048, 288, 768},
	} {
		b.Run(s.name, func(b *testing.B) {
			a, w, c := make([]float32, s.m*s.k), make([]float32, s.k*s.n), make([]float32, s.m*s.n)
			for i := range a {
				a[i] = float32(i%7) - 3
			}
			for i := range w {
				w[i] = float32(i%5) - 2
			}
			lda, ldb := s.k, s.n
			if s.tA {
				lda = s.m
			}
			if s.tB {
				ldb = s.k
			}
			Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, w, ldb, 0, c, s.n)
			cpu0 := benchutil.CPUSeconds()
			b.ResetTimer()
			for b.Loop() {
				Sgemm(s.tA, s.tB, s.m, s.n, s.k, 1, a, lda, w, ldb, 0, c, s.n)
			}
			flops := 2 * float64(s.m*s.n*s.k) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			// Per CPU-second (both cores together): what the kernel
			// does with the time it gets on a shared machine.
			b.ReportMetric(flops/(benchutil.CPUSeconds()-cpu0)/1e9, "GFLOP/cpu-s")
		})
	}
}

// TestTransposeInto checks the packing's transpose, vector blocks and
// remainders, against the plain loop on strided operands: every value
// lands where the definition puts it, and nothing outside the columns it
// owns is written.
func TestTransposeInto(t *testing.T) {
	for _, rows := range []int{1, 3, 4, 7, 8, 9, 12, 16, 17, 32} {
		for _, n := range []int{1, 5, 8, 9, 16, 23, 64} {
			lds, ld := n+3, rows+5
			src := make([]float32, rows*lds)
			for i := range src {
				src[i] = float32(i + 1)
			}
			got := make([]float32, n*ld)
			for i := range got {
				got[i] = -1
			}
			want := slices.Clone(got)
			transposeInto(got, ld, src, lds, rows, n)
			for i := range rows {
				for p := range n {
					want[p*ld+i] = src[i*lds+p]
				}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("rows=%d n=%d: got %v, want %v", rows, n, got, want)
			}
		}
	}
}
