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
