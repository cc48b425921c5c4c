//go:build amd64 && !purego

package kernel

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gotune/gotune/internal/q8"
	"golang.org/x/sys/cpu"
)

// randomBlocks quantizes n·32 normal values into Q8_0 blocks.
func randomBlocks(r *rand.Rand, n int) []q8.Block {
	x := make([]float32, n*q8.BlockLen)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	w := make([]q8.Block, n)
	q8.QuantizeRow(w, x)
	return w
}

// TestDot4x1Q8Variants checks each of Dot4x1Q8's kernels that this CPU
// can run against float64 sums over the dequantized rows, on 1 to 152
// blocks with strided rows; y's fifth value is left alone.
func TestDot4x1Q8Variants(t *testing.T) {
	if !Available {
		t.Skip("no AVX2+FMA on this CPU")
	}
	variants := map[string]func(w *q8.Block, ldb int, x *float32, nb int, y *float32){"AVX2": dot4x1Q8AVX2}
	if cpu.X86.HasAVX512F {
		variants["AVX-512"] = dot4x1Q8AVX512
	} else {
		t.Log("no AVX-512 here: its kernel is not checked")
	}
	r := rand.New(rand.NewPCG(9, 10))
	for name, dot := range variants {
		for _, nb := range []int{1, 2, 3, 5, 28, 152} {
			ldb := nb + nb%3
			w := randomBlocks(r, 3*ldb+nb)
			x := make([]float32, nb*q8.BlockLen)
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			y := []float32{99, 99, 99, 99, 99}
			dot(&w[0], ldb, &x[0], nb, &y[0])
			for j := range 4 {
				var want, mag float64
				for b := range nb {
					blk := w[j*ldb+b]
					for i, q := range blk.Q {
						v := float64(blk.D) * float64(q) * float64(x[b*q8.BlockLen+i])
						want += v
						mag += math.Abs(v)
					}
				}
				if got := float64(y[j]); math.Abs(got-want) > 1e-6*mag+1e-6 {
					t.Errorf("%s, %d blocks: y[%d] = %g, want %g", name, nb, j, got, want)
				}
			}
			if y[4] != 99 {
				t.Errorf("%s wrote past its four outputs", name)
			}
		}
	}
}

// TestGemmNTQ8 checks the Q8_0 product against float64 sums over the
// dequantized weights, for one row of x and several, with row tails
// (out not a multiple of 4, and out < 4).
func TestGemmNTQ8(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, s := range []struct{ N, in, out int }{{1, 32, 4}, {1, 896, 130}, {2, 64, 9}, {3, 96, 13}, {5, 4864, 9}, {1, 0, 4}, {1, 32, 3}} {
		nb := s.in / q8.BlockLen
		w := randomBlocks(r, s.out*nb)
		x := make([]float32, s.N*s.in)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		y := make([]float32, s.N*s.out)
		for i := range y {
			y[i] = 99 // overwritten, not accumulated
		}
		if !GemmNTQ8(y, x, w, s.N, s.in, s.out) {
			t.Skip("no kernels on this CPU or build")
		}
		wf := make([]float32, s.out*s.in)
		q8.Dequantize(wf, w)
		for i := range s.N {
			for j := range s.out {
				var want, mag float64
				for k := range s.in {
					v := float64(x[i*s.in+k]) * float64(wf[j*s.in+k])
					want += v
					mag += math.Abs(v)
				}
				if got := float64(y[i*s.out+j]); math.Abs(got-want) > 1e-6*mag+1e-6 {
					t.Fatalf("shape %+v: y[%d,%d] = %g, want %g", s, i, j, got, want)
				}
			}
		}
	}
}
