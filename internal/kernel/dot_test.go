//go:build amd64 && !purego

package kernel

import (
	"math"
	"math/rand/v2"
	"testing"
	"unsafe"

	"golang.org/x/sys/cpu"
)

// TestDot4x1Variants checks each of Dot4x1's and Dot4x1BF16's kernels
// that this CPU can run against float64 sums, on lengths that end in every
// way the kernels step (32 columns a step on AVX-512, 16 on AVX2, then 8),
// with strided rows.
func TestDot4x1Variants(t *testing.T) {
	if !Available {
		t.Skip("no AVX2+FMA on this CPU")
	}
	variants := map[string]func(w *float32, ldw int, x *float32, n int, y *float32){"AVX2": dot4x1AVX2}
	if cpu.X86.HasAVX512F {
		variants["AVX-512"] = dot4x1AVX512
	} else {
		t.Log("no AVX-512 here: its kernel is not checked")
	}
	r := rand.New(rand.NewPCG(5, 6))
	halfVariants := map[string]func(w *uint16, ldw int, x *float32, n int, y *float32){"AVX2": dot4x1BF16AVX2}
	if cpu.X86.HasAVX512F {
		halfVariants["AVX-512"] = dot4x1BF16AVX512
	}
	for name, half := range halfVariants {
		// The bfloat16 kernel: w rounded to bfloat16 through its upper
		// bits, run as its float32 twin.
		variants[name+" bfloat16"] = func(w *float32, ldw int, x *float32, n int, y *float32) {
			rows := unsafe.Slice(w, 3*ldw+n)
			bits := make([]uint16, len(rows))
			for i, v := range rows {
				bits[i] = uint16(math.Float32bits(v) >> 16)
				rows[i] = math.Float32frombits(uint32(bits[i]) << 16)
			}
			half(&bits[0], ldw, x, n, y)
		}
	}
	for name, dot := range variants {
		for _, n := range []int{8, 16, 24, 32, 40, 56, 64, 96, 120, 128, 136, 896, 4864} {
			ldw := n + 8*(n%3)
			w := make([]float32, 3*ldw+n)
			x := make([]float32, n)
			for i := range w {
				w[i] = float32(r.NormFloat64())
			}
			for i := range x {
				x[i] = float32(r.NormFloat64())
			}
			y := []float32{99, 99, 99, 99, 99}
			dot(&w[0], ldw, &x[0], n, &y[0])
			for j := range 4 {
				var want float64
				for k := range n {
					want += float64(x[k]) * float64(w[j*ldw+k])
				}
				if math.Abs(float64(y[j])-want) > 1e-4*(1+math.Abs(want)) {
					t.Errorf("%s n=%d row %d: %g, want %g", name, n, j, y[j], want)
				}
			}
			if y[4] != 99 {
				t.Errorf("%s n=%d wrote past its four outputs", name, n)
			}
		}
	}
}
