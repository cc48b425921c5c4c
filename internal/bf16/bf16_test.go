package bf16

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestFromFloat32 checks rounding to nearest, ties to even, on values
// built around each case, and that NaN and the infinities survive.
func TestFromFloat32(t *testing.T) {
	for _, c := range []struct {
		bits uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // halfway, even below: down
		{0x3f818000, 0x3f82}, // halfway, odd below: up
		{0x3f808001, 0x3f81}, // above halfway: up
		{0x3f807fff, 0x3f80}, // below halfway: down
		{0x7f7fffff, 0x7f80}, // the largest float32 rounds to +Inf
		{0x7f800000, 0x7f80}, // +Inf
		{0xff800000, 0xff80}, // -Inf
		{0x80000000, 0x8000}, // -0
		{0x7f800001, 0x7fc0}, // a signalling NaN becomes quiet
	} {
		if got := FromFloat32(math.Float32frombits(c.bits)); got != c.want {
			t.Errorf("FromFloat32(%#08x) = %#04x, want %#04x", c.bits, got, c.want)
		}
	}
	for _, nan := range []uint32{0x7fc00000, 0x7f800001, 0xffffffff} {
		if got := ToFloat32(FromFloat32(math.Float32frombits(nan))); !math.IsNaN(float64(got)) {
			t.Errorf("NaN %#08x became %v", nan, got)
		}
	}
}

// TestRoundTrip: every bfloat16 value except NaNs survives widening and
// rounding unchanged.
func TestRoundTrip(t *testing.T) {
	for h := range 1 << 16 {
		x := ToFloat32(uint16(h))
		if math.IsNaN(float64(x)) {
			continue
		}
		if got := FromFloat32(x); got != uint16(h) {
			t.Fatalf("%#04x → %v → %#04x", h, x, got)
		}
	}
}

// TestWiden checks the slice widening on lengths with and without a tail
// of fewer than eight values, against the bits shifted one at a time.
func TestWiden(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{0, 3, 8, 13, 64, 1001} {
		src := make([]uint16, n)
		for i := range src {
			src[i] = uint16(r.Uint32())
		}
		dst := make([]float32, n+1)
		dst[n] = 42
		Widen(dst, src)
		for i, h := range src {
			if math.Float32bits(dst[i]) != uint32(h)<<16 {
				t.Fatalf("n=%d: value %d has bits %#x, want %#x", n, i, math.Float32bits(dst[i]), uint32(h)<<16)
			}
		}
		if dst[n] != 42 {
			t.Fatalf("n=%d: wrote past len(src)", n)
		}
	}
}
