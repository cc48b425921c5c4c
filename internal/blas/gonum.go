//go:build !openblas

package blas

import (
	"sync"

	"github.com/gotune/gotune/internal/kernel"
)

const backend = "gonum"

// kernelMinFlops is the smallest product (m·n·k) run on the AVX2 kernels;
// smaller ones are not worth the copies and go to gonum.
const kernelMinFlops = 1 << 15

func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if kernel.Available && k >= 8 && m*n*k >= kernelMinFlops {
		kernelSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	gonumSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Kernel names the kernels in use: the AVX2 micro-kernels where the CPU
// has them, else gonum's pure-Go code.
func Kernel() string {
	if kernel.Available {
		return "pure Go + AVX2 assembly"
	}
	return "pure Go"
}

// PreferredEnv returns nil: the pure-Go kernels read no environment.
func PreferredEnv() []string { return nil }

// scratch holds the packed operands and products of kernelSgemm between
// calls, so that a training step does not allocate (and fault in) them anew.
var scratch = sync.Pool{New: func() any { return new([]float32) }}

func getScratch(n int) *[]float32 {
	p := scratch.Get().(*[]float32)
	if cap(*p) < n {
		*p = make([]float32, n)
	}
	*p = (*p)[:n]
	return p
}

// kernelSgemm computes C = alpha·op(A)·op(B) + beta·C on the AVX2 kernels
// (kernel.GemmNT, which multiplies by a transposed right operand): op(A)
// is packed as m rows of k values and op(B)ᵀ as n rows of k values where
// they are not laid out so already. As in BLAS, C is not read when beta is
// 0.
func kernelSgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ra, ca, rb, cb := m, k, k, n
	if transA {
		ra, ca = k, m
	}
	if transB {
		rb, cb = n, k
	}
	if len(a) < (ra-1)*lda+ca || len(b) < (rb-1)*ldb+cb || len(c) < (m-1)*ldc+n {
		panic("blas: sgemm slice too short")
	}
	ap := a
	if transA || lda != k {
		buf := getScratch(m * k)
		defer scratch.Put(buf)
		pa := *buf
		if transA { // A is k×m: op(A)[i][p] = A[p][i]
			for p := range k {
				for i, v := range a[p*lda : p*lda+m] {
					pa[i*k+p] = v
				}
			}
		} else {
			for i := range m {
				copy(pa[i*k:(i+1)*k], a[i*lda:i*lda+k])
			}
		}
		ap = pa
	}
	bp := b
	if !transB || ldb != k {
		buf := getScratch(n * k)
		defer scratch.Put(buf)
		pb := *buf
		if !transB { // B is k×n: op(B)ᵀ[j][p] = B[p][j]
			for p := range k {
				for j, v := range b[p*ldb : p*ldb+n] {
					pb[j*k+p] = v
				}
			}
		} else {
			for j := range n {
				copy(pb[j*k:(j+1)*k], b[j*ldb:j*ldb+k])
			}
		}
		bp = pb
	}
	if alpha == 1 && beta == 0 && ldc == n {
		kernel.GemmNT(c[:m*n], ap, bp, m, k, n)
		return
	}
	buf := getScratch(m * n)
	defer scratch.Put(buf)
	t := *buf
	kernel.GemmNT(t, ap, bp, m, k, n)
	for i := range m {
		ci, ti := c[i*ldc:i*ldc+n], t[i*n:(i+1)*n]
		if beta == 0 {
			for j, v := range ti {
				ci[j] = alpha * v
			}
			continue
		}
		for j, v := range ti {
			ci[j] = alpha*v + beta*ci[j]
		}
	}
}
