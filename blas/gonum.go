//go:build !openblas

package blas

const backend = "gonum"

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	gonumSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Kernel names the kernels in use: gonum's pure-Go code.
func Kernel() string { return "pure Go" }

// PreferredEnv returns nil: the pure-Go kernels read no environment.
func PreferredEnv() []string { return nil }
