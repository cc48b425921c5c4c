//go:build amd64 && !purego

// Package kernel holds the Go-assembly matrix kernels (kept apart from cgo
// code): a packed, cache-blocked SGEMM on AVX-512 or AVX2+FMA
// micro-kernels chosen from the CPU's features at start-up (Sgemm, the
// pure-Go build's BLAS and the engine's prompt products), dot-product
// kernels (AVX-512 or AVX2+FMA) for the generation engine's few-row
// products on float32, bfloat16 and Q8_0 weights.
//
// May import: the other internal helpers (internal/blas, internal/kernel,
// internal/benchutil); nothing of the module's upper layers.
package kernel

import (
	"github.com/gotune/gotune/internal/q8"
	"golang.org/x/sys/cpu"
)

// Available reports whether the kernels can run on this CPU.
var Available = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// Dot4x2 sets y[i·ldy + j] = Σ_{k<n} x[i·ldx + k]·w[j·ldw + k] for i < 2,
// j < 4. n must be a multiple of 8 and the rows must hold n values.
//
//go:noescape
func Dot4x2(w *float32, ldw int, x *float32, ldx int, n int, y *float32, ldy int)

// Dot4x1 sets y[j] = Σ_{k<n} x[k]·w[j·ldw + k] for j < 4. n must be a
// multiple of 8 and the rows must hold n values. It runs on AVX-512 where
// the CPU has it, else on AVX2.
func Dot4x1(w *float32, ldw int, x *float32, n int, y *float32) {
	if hasAVX512 {
		dot4x1AVX512(w, ldw, x, n, y)
		return
	}
	dot4x1AVX2(w, ldw, x, n, y)
}

// hasAVX512 selects Dot4x1's AVX-512 kernel.
var hasAVX512 = cpu.X86.HasAVX512F

//go:noescape
func dot4x1AVX2(w *float32, ldw int, x *float32, n int, y *float32)

//go:noescape
func dot4x1AVX512(w *float32, ldw int, x *float32, n int, y *float32)

// Dot4x1BF16 is Dot4x1 with w in bfloat16 (each value the upper 16 bits
// of a float32), widened exactly as it is read: half the bytes of w for
// the same products. AVX-512 where the CPU has it, else AVX2.
func Dot4x1BF16(w *uint16, ldw int, x *float32, n int, y *float32) {
	if hasAVX512 {
		dot4x1BF16AVX512(w, ldw, x, n, y)
		return
	}
	dot4x1BF16AVX2(w, ldw, x, n, y)
}

//go:noescape
func dot4x1BF16AVX2(w *uint16, ldw int, x *float32, n int, y *float32)

//go:noescape
func dot4x1BF16AVX512(w *uint16, ldw int, x *float32, n int, y *float32)

// Dot4x1Q8 sets y[j] = Σ_{b<nb} w[j·ldb + b].D · Σ_{i<32} w[j·ldb + b].Q[i]
// · x[32b + i] for j < 4: four rows of Q8_0 blocks (ldb blocks apart, nb
// blocks each) against x, each int8 converted exactly as it is read —
// 1.125 bytes a weight. AVX-512 where the CPU has it, else AVX2.
func Dot4x1Q8(w *q8.Block, ldb int, x *float32, nb int, y *float32) {
	if hasAVX512 {
		dot4x1Q8AVX512(w, ldb, x, nb, y)
		return
	}
	dot4x1Q8AVX2(w, ldb, x, nb, y)
}

//go:noescape
func dot4x1Q8AVX2(w *q8.Block, ldb int, x *float32, nb int, y *float32)

//go:noescape
func dot4x1Q8AVX512(w *q8.Block, ldb int, x *float32, nb int, y *float32)
