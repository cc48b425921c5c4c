//go:build !purego

package vec

import "golang.org/x/sys/cpu"

// Available reports whether the kernels may run (AVX2 and FMA).
var Available = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// ExpShiftSums replaces z by exp(z − m), eight lanes at a time, and
// returns Σ exp(z − m) and Σ exp(z − m)·z (z read before overwriting);
// len(z) must be a multiple of 8 and arguments are clamped to
// [−87.33654, 88]. Implemented in vec_amd64.s.
//
//go:noescape
func ExpShiftSums(z []float32, m float32) (se, sez float32)

// MaxSum returns the maximum and the sum of z; len(z) must be a positive
// multiple of 8. Implemented in vec_amd64.s.
//
//go:noescape
func MaxSum(z []float32) (m, s float32)

// SwiGLU sets out[i] = g[i]·σ(g[i])·u[i] for len(g) a multiple of 8 (out
// and u at least as long), bit for bit the scalar code of package ops
// with exp32's vector form. Implemented in vec_amd64.s.
//
//go:noescape
func SwiGLU(out, g, u []float32)

// SwiGLUBackward sets, with s = σ(g[i]), du[i] = dm[i]·g[i]·s and
// dg[i] = dm[i]·u[i]·s·(1 + g[i]·(1 − s)), for len(g) a multiple of 8
// (the others at least as long), bit for bit the scalar code of package
// ops. Implemented in vec_amd64.s.
//
//go:noescape
func SwiGLUBackward(dg, du, g, u, dm []float32)
