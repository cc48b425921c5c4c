//go:build !purego

package ops

import "golang.org/x/sys/cpu"

// haveVec reports whether expShiftSumsVec may run (AVX2 and FMA).
var haveVec = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// expShiftSumsVec replaces z by exp(z − m), eight lanes at a time, and
// returns Σ exp(z − m) and Σ exp(z − m)·z; len(z) must be a multiple of 8.
// Implemented in exp_amd64.s.
//
//go:noescape
func expShiftSumsVec(z []float32, m float32) (se, sez float32)

// maxSumVec returns the maximum and the sum of z; len(z) must be a
// positive multiple of 8. Implemented in exp_amd64.s.
//
//go:noescape
func maxSumVec(z []float32) (m, s float32)
