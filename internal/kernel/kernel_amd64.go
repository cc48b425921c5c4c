//go:build amd64 && !purego

// Package kernel holds AVX2+FMA dot-product micro-kernels (Go assembly,
// kept apart from cgo code) and the matrix product built on them, used by
// the generation engine and by the pure-Go BLAS.
//
// May import: the other internal helpers (internal/blas, internal/kernel,
// internal/benchutil); nothing of the module's upper layers.
package kernel

import "golang.org/x/sys/cpu"

// Available reports whether the kernels can run on this CPU.
var Available = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Dot4x2 sets y[i·ldy + j] = Σ_{k<n} x[i·ldx + k]·w[j·ldw + k] for i < 2,
// j < 4. n must be a multiple of 8 and the rows must hold n values.
//
//go:noescape
func Dot4x2(w *float32, ldw int, x *float32, ldx int, n int, y *float32, ldy int)

// Dot4x1 sets y[j] = Σ_{k<n} x[k]·w[j·ldw + k] for j < 4. n must be a
// multiple of 8 and the rows must hold n values.
//
//go:noescape
func Dot4x1(w *float32, ldw int, x *float32, n int, y *float32)
