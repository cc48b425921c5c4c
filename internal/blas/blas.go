// Package blas provides the single-precision matrix products the model and
// the generation engine run on. Without the `openblas` tag (the static
// CGO_ENABLED=0 build needs no system library) it runs the packed
// Go-assembly GEMM of internal/kernel on CPUs with AVX-512 or AVX2+FMA,
// and gonum's portable Go code on others, in the purego build, and for
// tiny products. Built with the tag it calls OpenBLAS's cblas_sgemm
// through cgo (Debian libopenblas-dev), except where OpenBLAS's kernels
// use a narrower vector instruction set than gotune's own (OpenBLAS's AVX2
// kernels on an AVX-512 CPU, as under OPENBLAS_CORETYPE=Haswell): there
// the products run on gotune's kernels, unless GOTUNE_GEMM says otherwise.
//
// May import: the other internal helpers (internal/blas, internal/kernel,
// internal/benchutil); nothing of the module's upper layers.
package blas

import (
	"fmt"
	"strings"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/gotune/gotune/internal/kernel"
)

// Impl is a complete gonum BLAS implementation (float32 and float64) whose
// Sgemm uses the fastest kernel available in this build. It can be handed to
// gorgonia.Use.
type Impl struct{ gonum.Implementation }

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices,
// where op(X) is X or Xᵀ; op(A) is m×k, op(B) is k×n and C is m×n.
func (Impl) Sgemm(tA, tB blas.Transpose, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	sgemm(tA != blas.NoTrans, tB != blas.NoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Gemm computes C = alpha·op(A)·op(B) + beta·C on row-major slices with
// leading dimensions taken from the shapes: A is m×k (k×m when transA),
// B is k×n (n×k when transB), C is m×n.
func Gemm(transA, transB bool, m, n, k int, alpha float32, a, b []float32, beta float32, c []float32) {
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, n)
}

// Backend names the build's matrix products: "openblas" (cgo) or "purego"
// (the packed assembly kernels where the CPU has AVX2, else gonum). What
// runs in an OpenBLAS build is Kernel's to say.
func Backend() string { return backend }

// GemmEnv is the environment variable that chooses the kernels of the
// products: "auto" (or unset) lets gotune choose, "openblas" keeps
// OpenBLAS's kernels whatever they are (the OpenBLAS build only),
// "gotune" runs gotune's own assembly kernels.
const GemmEnv = "GOTUNE_GEMM"

// ownSgemm is the product on gotune's own kernels: the packed,
// cache-blocked assembly GEMM (kernel.Sgemm: AVX-512 or AVX2 + FMA, chosen
// from the CPU's features at start-up, split across the cores by itself)
// and, on CPUs without AVX2, in the purego build, or for tiny products,
// gonum's pure-Go Sgemm.
func ownSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m*n*k >= kernelMinFlops && kernel.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
		return
	}
	gonumSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// kernelMinFlops is the smallest product (m·n·k) run on the packed
// assembly kernels; smaller ones are not worth packing and go to gonum.
const kernelMinFlops = 1 << 12

// ownKernelName names gotune's kernels as Kernel reports them.
func ownKernelName() string {
	if kernel.GemmAvailable() {
		return "pure Go + " + kernel.GemmKernel() + " assembly"
	}
	return "pure Go"
}

// Serial reports whether each product runs on one thread, so that callers
// split large products between goroutines themselves: OpenBLAS with one
// thread (OPENBLAS_NUM_THREADS=1, gotune's default), whose own worker
// threads would busy-wait between calls and compete with the Go code that
// runs between them. gotune's kernels split their products by themselves.
func Serial() bool { return serial() }

func toTrans(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

var pureGo gonum.Implementation

func gonumSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	pureGo.Sgemm(toTrans(transA), toTrans(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// kernelAdvice is the advice Advice gives, when OpenBLAS runs the
// products, for OpenBLAS's kernels kernel
// (chosen through OPENBLAS_CORETYPE=coretype, if set) on a CPU with
// AVX-512 or without: none unless AVX2 kernels run where AVX-512 ones could.
func kernelAdvice(kernel, coretype string, avx512 bool) string {
	if level, known := openblasLevels[strings.ToLower(kernel)]; !avx512 || !known || level != 1 {
		return ""
	}
	why := "OpenBLAS chose them"
	if coretype != "" {
		why = "OPENBLAS_CORETYPE=" + coretype + " selects them"
	}
	return fmt.Sprintf("OpenBLAS runs its AVX2 kernels (%s) on a CPU with AVX-512 (%s): OPENBLAS_CORETYPE=SkylakeX gives its AVX-512 kernels, and %s=auto (or unset) gotune's own AVX-512 GEMM (on a 2-core Zen 5 VM: 415 against 153 GFLOP/s at 2048³)", kernel, why, GemmEnv)
}

// openblasLevels ranks OpenBLAS's kernels (openblas_get_corename, in lower
// case) by the widest vector instructions they use: 2 for AVX-512, 1 for
// AVX2 + FMA, 0 for older ones.
var openblasLevels = map[string]int{
	"skylakex": 2, "cooperlake": 2, "sapphirerapids": 2,
	"haswell": 1, "zen": 1, "excavator": 1,
	"katmai": 0, "coppermine": 0, "northwood": 0, "prescott": 0, "banias": 0,
	"atom": 0, "core2": 0, "penryn": 0, "dunnington": 0, "nehalem": 0,
	"athlon": 0, "opteron": 0, "opteron_sse3": 0, "barcelona": 0, "nano": 0,
	"sandybridge": 0, "bobcat": 0, "bulldozer": 0, "piledriver": 0, "steamroller": 0,
}

// ownLevels ranks gotune's micro-kernels (kernel.GemmKernel) the same way.
var ownLevels = map[string]int{"AVX-512": 2, "AVX2": 1}

// chooseOwn decides, from the GOTUNE_GEMM setting, OpenBLAS's kernel
// name and gotune's own micro-kernel (own: "" when the CPU runs none),
// whether an OpenBLAS build runs its products on gotune's kernels. Left to
// choose ("" or "auto"), it does where OpenBLAS's kernels use narrower
// vectors than gotune's; an OpenBLAS kernel it does not know keeps
// OpenBLAS. A setting it does not know is an error naming it.
func chooseOwn(setting, openblas, own string) (bool, error) {
	switch setting {
	case "", "auto":
		level, known := openblasLevels[strings.ToLower(openblas)]
		ownLevel, ok := ownLevels[own]
		return known && ok && ownLevel > level, nil
	case "openblas":
		return false, nil
	case "gotune":
		if own == "" {
			return false, fmt.Errorf("%s=gotune: this CPU has neither AVX-512 nor AVX2+FMA for gotune's kernels; unset it to keep OpenBLAS's", GemmEnv)
		}
		return true, nil
	}
	return false, fmt.Errorf("%s=%q: want auto, openblas or gotune", GemmEnv, setting)
}
