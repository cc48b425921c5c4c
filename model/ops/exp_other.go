//go:build !amd64 || purego

package ops

// haveVec is false where there is no vector exp kernel.
const haveVec = false

// expShiftSumsVec is never called without a vector kernel.
func expShiftSumsVec(z []float32, m float32) (se, sez float32) {
	panic("ops: no vector exp kernel in this build")
}

// maxSumVec is never called without a vector kernel.
func maxSumVec(z []float32) (m, s float32) {
	panic("ops: no vector max kernel in this build")
}
