// Package f16 is the IEEE 754 half-precision (binary16) number format in
// one place: 1 sign, 5 exponent bits with bias 15, 10 fraction bits.
// Widening is exact; narrowing rounds to nearest, ties to even, as torch's
// .to(torch.float16) does. The checkpoint codecs (safetensors, GGUF) and
// the Q8_0 blocks' scales (internal/q8) convert through it.
//
// May import: the other internal helpers (internal/...); nothing of the
// module's upper layers.
package f16

import "math"

// ToFloat32 widens an IEEE half-precision value exactly.
func ToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f: // infinity or NaN, payload kept
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant × 2⁻²⁴
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// FromFloat32 narrows to half precision, rounding to nearest even; values
// beyond the half range become ±Inf and NaN stays NaN.
func FromFloat32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00 | uint16(mant>>13) // quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15 // half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half: value = m × 2⁻²⁴ with m = significand >> (14 − e).
		shift := uint(14 - e)
		if shift > 24 {
			return sign // below half the smallest subnormal
		}
		sig := mant | 0x800000
		m := sig >> shift
		rem := sig & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && m&1 == 1) {
			m++ // may carry into the smallest normal, which is correct
		}
		return sign | uint16(m)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is correct, up to Inf
	}
	return sign | uint16(h)
}
