package q8

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gotune/gotune/internal/f16"
)

// TestQuantizeRule checks ggml's rule on a hand-made block: the scale is
// max|x|/127 rounded to float16, the values round half away from zero
// after dividing by the unrounded scale, and a zero block has scale 0.
func TestQuantizeRule(t *testing.T) {
	x := make([]float32, BlockLen)
	x[0], x[1], x[2], x[3], x[4] = 2.54, -2.54, 0.01, -0.01, 0.03
	// d = 0.02: 0.01/d is a tie (0.5 after float32 rounding of 1/d·0.01
	// may not be exact, so the value is checked against round()).
	b := Quantize(x)
	d := float32(2.54) / 127
	if want := f16.ToFloat32(f16.FromFloat32(d)); b.D != want {
		t.Errorf("scale %g, want %g", b.D, want)
	}
	if b.Q[0] != 127 || b.Q[1] != -127 || b.Q[5] != 0 {
		t.Errorf("q = %v, want ±127 at the extremes and 0 for zeros", b.Q[:6])
	}
	for i := 2; i < 5; i++ {
		want := int8(math.Round(float64(x[i] * (1 / d))))
		if b.Q[i] != want {
			t.Errorf("q[%d] = %d, want %d", i, b.Q[i], want)
		}
	}
	if z := Quantize(make([]float32, BlockLen)); z.D != 0 || z.Q != [BlockLen]int8{} {
		t.Errorf("zero block quantized to %+v", z)
	}
	// Half away from zero: 2.5 and -2.5 steps of the scale.
	h := make([]float32, BlockLen)
	h[0], h[1], h[2] = 127, 2.5, -2.5
	if b := Quantize(h); b.Q[1] != 3 || b.Q[2] != -3 {
		t.Errorf("ties rounded to %d, %d; want 3, -3", b.Q[1], b.Q[2])
	}
}

// TestRoundTrip checks the error bound of a block (half a step, plus the
// scale's float16 rounding at the largest value) and that quantizing a
// dequantized block gives the block back, as loading a Q8_0 GGUF file and
// holding it in Q8_0 again must.
func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 64*BlockLen)
	for i := range x {
		x[i] = float32(r.NormFloat64() * math.Pow(10, float64(r.IntN(6)-4)))
	}
	blocks := make([]Block, 64)
	QuantizeRow(blocks, x)
	back := make([]float32, len(x))
	Dequantize(back, blocks)
	for b := range blocks {
		d := float64(blocks[b].D)
		for i := range BlockLen {
			k := b*BlockLen + i
			if err := math.Abs(float64(back[k] - x[k])); err > d*(0.5+127*0.001) {
				t.Fatalf("value %d: %g came back %g (scale %g)", k, x[k], back[k], d)
			}
		}
	}
	again := make([]Block, len(blocks))
	QuantizeRow(again, back)
	for b := range blocks {
		if again[b] != blocks[b] {
			t.Fatalf("block %d: requantized %+v, was %+v", b, again[b], blocks[b])
		}
	}
}

// TestQuantizeRowSplit: a row large enough to be split over the cores
// quantizes to the blocks of quantizing each block alone.
func TestQuantizeRowSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	n := 4*parallelBlocks + 7
	x := make([]float32, n*BlockLen)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	got := make([]Block, n)
	QuantizeRow(got, x)
	for b := range got {
		if want := Quantize(x[b*BlockLen : (b+1)*BlockLen]); got[b] != want {
			t.Fatalf("block %d of %d: %+v, want %+v", b, n, got[b], want)
		}
	}
}

// TestDequantizeVector: the vector dequantization gives the plain Go
// values bit for bit (the same single rounding of D·Q[i]), on 0 to 37
// blocks, and writes no further.
func TestDequantizeVector(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 2, 5, 37} {
		blocks := make([]Block, n)
		for b := range blocks {
			blocks[b].D = f16.ToFloat32(f16.FromFloat32(float32(r.NormFloat64() * 0.01)))
			for i := range blocks[b].Q {
				blocks[b].Q[i] = int8(r.IntN(256) - 128)
			}
		}
		got := make([]float32, n*BlockLen+1)
		got[n*BlockLen] = 99
		want := make([]float32, n*BlockLen)
		Dequantize(got, blocks)
		dequantizeGo(want, blocks)
		for i := range want {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("%d blocks: value %d is %g, want %g", n, i, got[i], want[i])
			}
		}
		if got[n*BlockLen] != 99 {
			t.Fatalf("%d blocks: wrote past the end", n)
		}
	}
}
