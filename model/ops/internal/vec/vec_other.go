//go:build !amd64 || purego

package vec

// Available is false where there are no vector kernels.
const Available = false

// ExpShiftSums is never called without vector kernels.
func ExpShiftSums(z []float32, m float32) (se, sez float32) {
	panic("vec: no vector kernels in this build")
}

// MaxSum is never called without vector kernels.
func MaxSum(z []float32) (m, s float32) {
	panic("vec: no vector kernels in this build")
}

// SwiGLU is never called without vector kernels.
func SwiGLU(out, g, u []float32) {
	panic("vec: no vector kernels in this build")
}

// SwiGLUBackward is never called without vector kernels.
func SwiGLUBackward(dg, du, g, u, dm []float32) {
	panic("vec: no vector kernels in this build")
}
