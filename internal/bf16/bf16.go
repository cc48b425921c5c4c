// Package bf16 is the bfloat16 number format in one place: the upper half
// of an IEEE float32 (1 sign, 8 exponent, 7 mantissa bits), so widening is
// exact and rounding drops the lower 16 bits to the nearest value, ties to
// even. Checkpoint codecs (safetensors, GGUF), weights held in bfloat16 and
// the kernels that read them all convert through it.
//
// May import: the other internal helpers (internal/...); nothing of the
// module's upper layers.
package bf16

import "math"

// FromFloat32 rounds x to bfloat16, to nearest with ties to even; a NaN
// stays a (quiet) NaN, ±Inf stays ±Inf.
func FromFloat32(x float32) uint16 {
	b := math.Float32bits(x)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16((b + 0x7fff + (b>>16)&1) >> 16)
}

// ToFloat32 widens a bfloat16 value to float32, exactly.
func ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Widen writes the bfloat16 values src as float32 into dst (exactly),
// eight at a time on AVX2; len(dst) ≥ len(src).
func Widen(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	if n8 := len(src) &^ 7; hasWiden && n8 > 0 {
		widen8(dst[:n8], src[:n8])
		dst, src = dst[n8:], src[n8:]
	}
	for i, h := range src {
		dst[i] = ToFloat32(h)
	}
}
