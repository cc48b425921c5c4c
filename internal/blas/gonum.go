//go:build !openblas

package blas

import "github.com/gotune/gotune/internal/kernel"

const backend = "purego"

// kernelMinFlops is the smallest product (m·n·k) run on the packed
// assembly kernels; smaller ones are not worth packing and go to gonum.
const kernelMinFlops = 1 << 12

// sgemm runs the packed, cache-blocked assembly GEMM (kernel.Sgemm: AVX-512
// or AVX2 + FMA, chosen from the CPU's features at start-up) and, on CPUs
// without AVX2, in the purego build, or for tiny products, gonum's pure-Go
// Sgemm.
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m*n*k >= kernelMinFlops && kernel.Sgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) {
		return
	}
	gonumSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Kernel names the kernels in use: the AVX-512 or AVX2 micro-kernels
// where the CPU has them, else gonum's pure-Go code.
func Kernel() string {
	if kernel.GemmAvailable() {
		return "pure Go + " + kernel.GemmKernel() + " assembly"
	}
	return "pure Go"
}

// PreferredEnv returns nil: the pure-Go kernels read no environment.
func PreferredEnv() []string { return nil }

// Advice returns "": the pure-Go build runs its own kernels.
func Advice() string { return "" }
