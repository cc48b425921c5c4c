//go:build amd64 && !purego

package q8

import "golang.org/x/sys/cpu"

// hasDequantize reports whether dequantizeAVX2 can run.
var hasDequantize = cpu.X86.HasAVX2

// dequantizeAVX2 writes the values of the n blocks at src into dst (32·n
// values), eight at a time: each int8 sign-extended, converted and
// multiplied by its block's scale — the one rounding of Dequantize's
// D·float32(Q[i]). Implemented in dequant_amd64.s.
//
//go:noescape
func dequantizeAVX2(dst *float32, src *Block, n int)
