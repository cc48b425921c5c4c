package blas

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/internal/benchutil"
	"github.com/gotune/gotune/internal/kernel"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// naiveGemm is the textbook triple loop the fast kernels are checked against.
func naiveGemm(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, c []float32) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if transA {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if transB {
					bv = b[j*k+p]
				}
				s += float64(av) * float64(bv)
			}
			c[i*n+j] = alpha*float32(s) + beta*c[i*n+j]
		}
	}
}

func TestGemmMatchesNaive(t *testing.T) { checkGemm(t) }

// TestGemmEachKernel runs the same checks with each assembly micro-kernel
// the CPU supports forced (the AVX2 one on AVX-512 machines too), where
// the products run on them (an OpenBLAS build on OpenBLAS's kernels checks
// them in TestBothKernels).
func TestGemmEachKernel(t *testing.T) {
	if !strings.Contains(Kernel(), "assembly") || len(kernel.GemmVariants()) == 0 {
		t.Skipf("%s build, kernels %s: no assembly micro-kernel to force", Backend(), Kernel())
	}
	for _, name := range kernel.GemmVariants() {
		t.Run(name, func(t *testing.T) {
			restore, err := kernel.UseGemmVariant(name)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			if !strings.Contains(Kernel(), name) {
				t.Fatalf("Kernel() = %q with %s forced", Kernel(), name)
			}
			checkGemm(t)
			TestSgemmStrided(t)
		})
	}
}

func checkGemm(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = r.Float32()*2 - 1
		}
		return x
	}
	t.Logf("%s kernels %s", Backend(), Kernel())
	for _, tc := range []struct{ m, n, k int }{{1, 1, 1}, {3, 5, 7}, {17, 9, 33}, {64, 48, 80}, {300, 257, 129}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				a, b := fill(tc.m*tc.k), fill(tc.k*tc.n)
				c0 := fill(tc.m * tc.n)
				want := append([]float32(nil), c0...)
				got := append([]float32(nil), c0...)
				naiveGemm(ta, tb, tc.m, tc.n, tc.k, 0.5, a, b, 0.25, want)
				Gemm(ta, tb, tc.m, tc.n, tc.k, 0.5, a, b, 0.25, got)
				for i := range want {
					if math.Abs(float64(want[i]-got[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
						t.Fatalf("%s m=%d n=%d k=%d ta=%v tb=%v: c[%d]=%g want %g", Backend(), tc.m, tc.n, tc.k, ta, tb, i, got[i], want[i])
					}
				}
			}
		}
	}
}

func BenchmarkSgemm512(b *testing.B) {
	const n = 512
	x, y, z := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range x {
		x[i], y[i] = float32(i%7), float32(i%5)
	}
	b.SetBytes(0)
	for b.Loop() {
		Gemm(false, true, n, n, n, 1, x, y, 0, z)
	}
	b.ReportMetric(2*n*n*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// TestSgemmStrided checks Impl.Sgemm, the entry gorgonia calls, on operands
// with padded leading dimensions, against the triple loop; with beta = 0
// the NaNs in C must not be read, and the padding must stay untouched.
func TestSgemmStrided(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		m, n, k     int
		alpha, beta float32
	}{{40, 36, 24, 1, 0}, {33, 70, 41, 0.5, 0}, {64, 20, 96, 2, 0.75}, {9, 300, 17, 1, 1}} {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				ra, ca, rb, cb := tc.m, tc.k, tc.k, tc.n
				if ta {
					ra, ca = tc.k, tc.m
				}
				if tb {
					rb, cb = tc.n, tc.k
				}
				lda, ldb, ldc := ca+3, cb+5, tc.n+2
				a, b := make([]float32, ra*lda), make([]float32, rb*ldb)
				for i := range a {
					a[i] = r.Float32()*2 - 1
				}
				for i := range b {
					b[i] = r.Float32()*2 - 1
				}
				c := make([]float32, tc.m*ldc)
				for i := range c {
					c[i] = r.Float32()
					if tc.beta == 0 && i%ldc < tc.n {
						c[i] = float32(math.NaN())
					}
				}
				// The reference works on tight copies.
				ta1, tb1 := make([]float32, ra*ca), make([]float32, rb*cb)
				for i := range ra {
					copy(ta1[i*ca:(i+1)*ca], a[i*lda:])
				}
				for i := range rb {
					copy(tb1[i*cb:(i+1)*cb], b[i*ldb:])
				}
				want := make([]float32, tc.m*tc.n)
				for i := range tc.m {
					for j := range tc.n {
						if tc.beta != 0 {
							want[i*tc.n+j] = c[i*ldc+j]
						}
					}
				}
				naiveGemm(ta, tb, tc.m, tc.n, tc.k, tc.alpha, ta1, tb1, tc.beta, want)
				pad := append([]float32(nil), c...)
				Impl{}.Sgemm(toTrans(ta), toTrans(tb), tc.m, tc.n, tc.k, tc.alpha, a, lda, b, ldb, tc.beta, c, ldc)
				for i := range tc.m {
					for j := range ldc {
						got := c[i*ldc+j]
						if j >= tc.n {
							if got != pad[i*ldc+j] {
								t.Fatalf("%+v ta=%v tb=%v: padding c[%d][%d] changed", tc, ta, tb, i, j)
							}
							continue
						}
						w := want[i*tc.n+j]
						if math.IsNaN(float64(got)) || math.Abs(float64(got-w)) > 1e-4*(1+math.Abs(float64(w))) {
							t.Fatalf("%+v ta=%v tb=%v: c[%d][%d] = %g, want %g", tc, ta, tb, i, j, got, w)
						}
					}
				}
			}
		}
	}
}

// BenchmarkGEMM times square products C = A·B (no transposes, beta 0) at
// 512³, 1024³ and 2048³ on this build's kernels, named by the build
// (openblas, or purego with the micro-kernel it runs) so that `go tool
// task bench` can set the two builds' figures side by side.
func BenchmarkGEMM(b *testing.B) {
	for _, n := range []int{512, 1024, 2048} {
		b.Run(fmt.Sprintf("%s/%d", Backend(), n), func(b *testing.B) { benchSquare(b, n) })
	}
}

// benchSquare times C = A·B for n×n matrices on all cores, in GFLOP/s and
// GFLOP per CPU-second of both cores together (the figure that holds on a
// machine shared with other work).
func benchSquare(b *testing.B, n int) {
	x, y, z := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	for i := range x {
		x[i], y[i] = float32(i%7)-3, float32(i%5)-2
	}
	benchGemm(false, false, n, n, n, x, y, z) // warm-up: packing buffers, threads
	b.ResetTimer()
	cpu0 := benchutil.CPUSeconds()
	for b.Loop() {
		benchGemm(false, false, n, n, n, x, y, z)
	}
	flops := 2 * float64(n) * float64(n) * float64(n) * float64(b.N)
	b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	b.ReportMetric(flops/(benchutil.CPUSeconds()-cpu0)/1e9, "GFLOP/cpu-s")
}

// BenchmarkGEMMShapes times the products of a stories15M training step
// (2048 tokens; the language-model head in chunks of 524 rows), named by
// the build like BenchmarkGEMM.
func BenchmarkGEMMShapes(b *testing.B) {
	for _, s := range []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"head-logits", false, true, 524, 32000, 288},
		{"head-dh", false, false, 524, 288, 32000},
		{"ffn-up", false, true, 2048, 768, 288},
		{"ffn-down-dx", false, false, 2048, 288, 768},
		{"attn-scores", false, true, 256, 256, 48},
	} {
		b.Run(Backend()+"/"+s.name, func(b *testing.B) {
			a, w, c := make([]float32, s.m*s.k), make([]float32, s.k*s.n), make([]float32, s.m*s.n)
			for i := range a {
				a[i] = float32(i%7) - 3
			}
			for i := range w {
				w[i] = float32(i%5) - 2
			}
			benchGemm(s.tA, s.tB, s.m, s.n, s.k, a, w, c)
			b.ResetTimer()
			cpu0 := benchutil.CPUSeconds()
			for b.Loop() {
				benchGemm(s.tA, s.tB, s.m, s.n, s.k, a, w, c)
			}
			flops := 2 * float64(s.m*s.n*s.k) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			b.ReportMetric(flops/(benchutil.CPUSeconds()-cpu0)/1e9, "GFLOP/cpu-s")
		})
	}
}

// benchGemm computes C = op(A)·op(B) on all cores, as the model's
// operations do: the pure-Go kernel splits the product itself, while
// OpenBLAS runs one thread a call (OPENBLAS_NUM_THREADS=1, as `go tool task
// bench` sets it) and gets the rows of C split between goroutines.
func benchGemm(tA, tB bool, m, n, k int, a, b, c []float32) {
	parts := 1
	if Serial() {
		parts = min(runtime.GOMAXPROCS(0), m/32)
	}
	if parts <= 1 {
		Gemm(tA, tB, m, n, k, 1, a, b, 0, c)
		return
	}
	lda, ldb := k, n
	if tA {
		lda = m
	}
	if tB {
		ldb = k
	}
	var wg sync.WaitGroup
	rows := (m + parts - 1) / parts
	for lo := 0; lo < m; lo += rows {
		hi := min(lo+rows, m)
		wg.Go(func() {
			ao := lo * lda
			if tA {
				ao = lo
			}
			sgemm(tA, tB, hi-lo, n, k, 1, a[ao:], lda, b, ldb, 0, c[lo*n:], n)
		})
	}
	wg.Wait()
}

// TestKernelAdvice: advice only where OpenBLAS runs AVX2 kernels on a CPU
// with AVX-512, naming the setting that chose them and the faster ones.
func TestKernelAdvice(t *testing.T) {
	for _, c := range []struct {
		kernel, coretype string
		avx512, advice   bool
	}{
		{"Haswell", "Haswell", true, true},
		{"Zen", "", true, true},
		{"Haswell", "", false, false},
		{"SkylakeX", "SkylakeX", true, false},
		{"Cooperlake", "", true, false},
		{"Prescott", "", true, false}, // the SSE3 fallback: PreferredEnv's case
	} {
		a := kernelAdvice(c.kernel, c.coretype, c.avx512)
		if (a != "") != c.advice {
			t.Errorf("%+v: advice %q", c, a)
			continue
		}
		if a != "" && (!strings.Contains(a, "OPENBLAS_CORETYPE=SkylakeX") || !strings.Contains(a, "GOTUNE_GEMM=auto") || c.coretype != "" && !strings.Contains(a, "OPENBLAS_CORETYPE="+c.coretype+" selects")) {
			t.Errorf("%+v: advice %q lacks the settings", c, a)
		}
	}
}

// TestChooseOwn: left to choose, gotune's kernels replace OpenBLAS's only
// where theirs use wider vectors; the setting overrides, and a setting not
// known, or one the CPU cannot follow, is refused by name.
func TestChooseOwn(t *testing.T) {
	for _, c := range []struct {
		setting, openblas, own string
		want                   bool
		err                    string
	}{
		{"", "Haswell", "AVX-512", true, ""},
		{"auto", "Zen", "AVX-512", true, ""},
		{"", "SkylakeX", "AVX-512", false, ""},
		{"", "Cooperlake", "AVX-512", false, ""},
		{"", "Haswell", "AVX2", false, ""},        // the same width: OpenBLAS's
		{"", "Sandybridge", "AVX2", true, ""},     // AVX without FMA
		{"", "Prescott", "AVX-512", true, ""},     // the SSE3 fallback
		{"", "NewCore2030", "AVX-512", false, ""}, // unknown: OpenBLAS knows best
		{"", "Prescott", "", false, ""},           // no kernel of gotune's runs here
		{"openblas", "Haswell", "AVX-512", false, ""},
		{"gotune", "SkylakeX", "AVX-512", true, ""},
		{"gotune", "Prescott", "", false, "GOTUNE_GEMM=gotune"},
		{"fast", "Haswell", "AVX-512", false, `GOTUNE_GEMM="fast"`},
	} {
		got, err := chooseOwn(c.setting, c.openblas, c.own)
		if got != c.want || (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("chooseOwn(%q, %q, %q) = %v, %v; want %v, error with %q", c.setting, c.openblas, c.own, got, err, c.want, c.err)
		}
	}
}
