//go:build !amd64 || purego

// Package kernel holds the Go-assembly matrix kernels (a packed SGEMM on
// AVX-512 or AVX2+FMA micro-kernels, AVX2+FMA dot products); on this
// architecture, or in the purego build, there are none and callers fall
// back to gonum.
//
// May import: the other internal helpers (internal/blas, internal/kernel,
// internal/benchutil); nothing of the module's upper layers.
package kernel

import "github.com/gotune/gotune/internal/q8"

// Available is false: there are no kernels for this architecture.
const Available = false

// Dot4x2 is never called where Available is false.
func Dot4x2(w *float32, ldw int, x *float32, ldx int, n int, y *float32, ldy int) {
	panic("kernel: no Dot4x2 on this architecture")
}

// Dot4x1 is never called where Available is false.
func Dot4x1(w *float32, ldw int, x *float32, n int, y *float32) {
	panic("kernel: no Dot4x1 on this architecture")
}

// Dot4x1BF16 is never called where Available is false.
func Dot4x1BF16(w *uint16, ldw int, x *float32, n int, y *float32) {
	panic("kernel: no Dot4x1BF16 on this architecture")
}

// Dot4x1Q8 is never called where Available is false.
func Dot4x1Q8(w *q8.Block, ldb int, x *float32, nb int, y *float32) {
	panic("kernel: no Dot4x1Q8 on this architecture")
}
