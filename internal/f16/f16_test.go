package f16

import (
	"math"
	"testing"
)

func TestConversions(t *testing.T) {
	// Hand-computed binary16 encodings (round to nearest, ties to even).
	cases := []struct {
		in   float32
		bits uint16
		back float32 // value the bits decode to
	}{
		{1, 0x3c00, 1},
		{-2, 0xc000, -2},
		{0, 0x0000, 0},
		{float32(math.Copysign(0, -1)), 0x8000, float32(math.Copysign(0, -1))},
		{65504, 0x7bff, 65504},                           // largest finite half
		{65519, 0x7bff, 65504},                           // just below the tie with 65536
		{65520, 0x7c00, float32(math.Inf(1))},            // tie, rounds to even = Inf
		{1.0 / 3, 0x3555, 0.333251953125},                // 1/3 rounds down
		{0.1, 0x2e66, 0.0999755859375},                   // 0.1
		{1 + 1.0/2048, 0x3c00, 1},                        // tie between 1 and 1+2⁻¹⁰: even is 1
		{1 + 3.0/2048, 0x3c02, 1 + 2.0/1024},             // tie: even is 1+2·2⁻¹⁰
		{1.0 / (1 << 24), 0x0001, 1.0 / (1 << 24)},       // smallest subnormal
		{1.0 / (1 << 25), 0x0000, 0},                     // half of it: tie to even 0
		{3.0 / (1 << 26), 0x0001, 1.0 / (1 << 24)},       // 0.75 of it rounds up
		{1.0 / (1 << 14), 0x0400, 1.0 / (1 << 14)},       // smallest normal
		{1023.0 / (1 << 24), 0x03ff, 1023.0 / (1 << 24)}, // largest subnormal
		{2047.0 / (1 << 25), 0x0400, 1.0 / (1 << 14)},    // rounds up into the normals
		{float32(math.Inf(-1)), 0xfc00, float32(math.Inf(-1))},
		{1e-10, 0x0000, 0},
		{1e10, 0x7c00, float32(math.Inf(1))},
	}
	for _, c := range cases {
		if got := FromFloat32(c.in); got != c.bits {
			t.Errorf("FromFloat32(%g) = %#04x, want %#04x", c.in, got, c.bits)
		}
		if got := ToFloat32(c.bits); got != c.back || math.Signbit(float64(got)) != math.Signbit(float64(c.back)) {
			t.Errorf("ToFloat32(%#04x) = %g, want %g", c.bits, got, c.back)
		}
	}
	if h := FromFloat32(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN became %#04x", h)
	}
	// Every half value survives a round trip through float32.
	for h := 0; h < 1<<16; h++ {
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN payloads are quietened
		}
		if got := FromFloat32(ToFloat32(uint16(h))); got != uint16(h) {
			t.Fatalf("round trip of %#04x gave %#04x", h, got)
		}
	}
}
