package kernel

import (
	"sync"

	"github.com/gotune/gotune/internal/bf16"
)

// GemmNTBF16 is GemmNT with w in bfloat16: y = x·wᵀ for row-major x
// (N, in), w (out, in) and y (N, out). For one row of x (a decoding step)
// each block of four rows of w is read once and widened in registers
// (Dot4x1BF16: half the bytes of a float32 weight); for more rows each
// block is first widened into a small per-worker buffer that then serves
// every row of x from L1. It reports false, leaving y alone, when the
// kernels are not available on this CPU.
func GemmNTBF16(y, x []float32, w []uint16, N, in, out int) bool {
	if !Available {
		return false
	}
	if len(x) < N*in || len(w) < out*in || len(y) < N*out {
		panic("kernel: GemmNTBF16 slice too short")
	}
	if in == 0 {
		clear(y[:N*out])
		return true
	}
	n8 := in &^ 7
	blocks := out / 4
	workers := WorkersFor(blocks, 2*N*in*out)
	if N == 1 {
		SpinParallel(blocks, workers, func(_, lo, hi int) {
			for b := lo; b < hi; b++ {
				if n8 > 0 {
					Dot4x1BF16(&w[4*b*in], in, &x[0], n8, &y[4*b])
				} else {
					clear(y[4*b : 4*b+4])
				}
			}
		})
	} else {
		SpinParallel(blocks, workers, func(_, lo, hi int) {
			buf := widenPool.Get().(*[]float32)
			if cap(*buf) < 4*in {
				*buf = make([]float32, 4*in)
			}
			wb := (*buf)[:4*in]
			for b := lo; b < hi; b++ {
				j := 4 * b
				bf16.Widen(wb, w[j*in:(j+4)*in])
				i := 0
				if n8 > 0 {
					for ; i+1 < N; i += 2 {
						Dot4x2(&wb[0], in, &x[i*in], in, n8, &y[i*out+j], out)
					}
					if i < N {
						Dot4x1(&wb[0], in, &x[i*in], n8, &y[i*out+j])
					}
				} else {
					for ; i < N; i++ {
						clear(y[i*out+j : i*out+j+4])
					}
				}
			}
			widenPool.Put(buf)
		})
	}
	tails(y, x, w, N, in, out, n8, blocks, bf16.ToFloat32)
	return true
}

// widenPool holds GemmNTBF16's per-worker buffers of four widened rows.
var widenPool = sync.Pool{New: func() any { return new([]float32) }}
