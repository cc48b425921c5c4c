//go:build !openblas

package generate

// matvec computes y = w·x for w (out, in) in pure Go (gonum's assembly
// Sgemv), rows split across the cores.
func matvec(y, x, w []float32, in, out int) { matvecGo(y, x, w, in, out) }
