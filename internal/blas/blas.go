// Package blas provides the single-precision matrix products the model and
// the generation engine run on. Built with the `openblas` tag it calls
// OpenBLAS's cblas_sgemm through cgo (Debian libopenblas-dev); without it
// (the static CGO_ENABLED=0 build needs no system library) it runs the
// packed Go-assembly GEMM of internal/kernel on CPUs with AVX-512 or
// AVX2+FMA, and gonum's portable Go code on others, in the purego build,
// and for tiny products.
//
// May import: the other internal helpers (internal/blas, internal/kernel,
// internal/benchutil); nothing of the module's upper layers.
package blas

import (
	"fmt"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"strings"
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
// (the packed assembly kernels where the CPU has AVX2, else gonum).
func Backend() string { return backend }

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

// avx2Kernels are OpenBLAS's kernel names that use AVX2 but not AVX-512.
var avx2Kernels = map[string]bool{"haswell": true, "zen": true, "excavator": true}

// kernelAdvice is the advice Advice gives for OpenBLAS's kernels kernel
// (chosen through OPENBLAS_CORETYPE=coretype, if set) on a CPU with
// AVX-512 or without: none unless AVX2 kernels run where AVX-512 ones could.
func kernelAdvice(kernel, coretype string, avx512 bool) string {
	if !avx512 || !avx2Kernels[strings.ToLower(kernel)] {
		return ""
	}
	why := "OpenBLAS chose them"
	if coretype != "" {
		why = "OPENBLAS_CORETYPE=" + coretype + " selects them"
	}
	return fmt.Sprintf("OpenBLAS runs its AVX2 kernels (%s) on a CPU with AVX-512 (%s): OPENBLAS_CORETYPE=SkylakeX gives its AVX-512 kernels, and a build without cgo (CGO_ENABLED=0) gotune's own AVX-512 GEMM (on a 2-core Zen 5 VM: 415 against 153 GFLOP/s at 2048³)", kernel, why)
}
