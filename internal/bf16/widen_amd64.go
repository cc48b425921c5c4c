//go:build amd64 && !purego

package bf16

import "golang.org/x/sys/cpu"

// hasWiden reports whether widen8 can run (AVX2).
var hasWiden = cpu.X86.HasAVX2

// widen8 writes the bfloat16 values src as float32 into dst, eight at a
// time; len(src) must be a positive multiple of 8 and len(dst) ≥
// len(src). Implemented in widen_amd64.s.
//
//go:noescape
func widen8(dst []float32, src []uint16)
