package kernel

import (
	"runtime"
	"sync"
)

// GemmNT computes y = x·wᵀ for row-major x (N, in), w (out, in) and
// y (N, out) with the register-blocked kernels: blocks of four rows of w,
// split across the cores (SpinParallel: decoding calls it ~170 times a
// token), each read once from memory and applied to the rows of x two at a
// time while they sit in L1. It reports false, leaving
// y alone, when the kernels are not available on this CPU.
func GemmNT(y, x, w []float32, N, in, out int) bool {
	if !Available {
		return false
	}
	if len(x) < N*in || len(w) < out*in || len(y) < N*out {
		panic("kernel: GemmNT slice too short")
	}
	if in == 0 {
		clear(y[:N*out])
		return true
	}
	n8 := in &^ 7
	blocks := out / 4
	// Rows of x in chunks that stay in L2 while every block of w passes.
	chunk := max(2, (256<<10)/(4*in)) &^ 1
	for i0 := 0; i0 < N; i0 += chunk {
		i1 := min(N, i0+chunk)
		workers := WorkersFor(blocks, 2*(i1-i0)*in*out)
		SpinParallel(blocks, workers, func(_, lo, hi int) {
			for b := lo; b < hi; b++ {
				j := 4 * b
				wp := &w[j*in]
				i := i0
				if n8 > 0 {
					for ; i+1 < i1; i += 2 {
						Dot4x2(wp, in, &x[i*in], in, n8, &y[i*out+j], out)
					}
					if i < i1 {
						Dot4x1(wp, in, &x[i*in], n8, &y[i*out+j])
					}
				} else {
					for ; i < i1; i++ {
						clear(y[i*out+j : i*out+j+4])
					}
				}
			}
		})
	}
	tails(y, x, w, N, in, out, n8, blocks, func(v float32) float32 { return v })
	return true
}

// tails finishes a product y = x·wᵀ that the kernels ran on the first n8
// columns of the first 4·blocks rows of w: it adds the columns past n8 to
// those rows' outputs and computes the rows past them whole, reading w's
// values through value (float32 as it is, bfloat16 widened).
func tails[W uint16 | float32](y, x []float32, w []W, N, in, out, n8, blocks int, value func(W) float32) {
	for i := range N {
		xr := x[i*in : (i+1)*in]
		if n8 < in {
			for j := range blocks * 4 {
				wr := w[j*in : (j+1)*in]
				var s float32
				for k := n8; k < in; k++ {
					s += xr[k] * value(wr[k])
				}
				y[i*out+j] += s
			}
		}
		for j := blocks * 4; j < out; j++ {
			wr := w[j*in : (j+1)*in]
			var s float32
			for k := range in {
				s += xr[k] * value(wr[k])
			}
			y[i*out+j] = s
		}
	}
}

// WorkersFor is how many goroutines share work of the given size over
// items: one below about 10⁵ floating-point operations, else one per core.
func WorkersFor(items, flops int) int {
	if flops < 1<<17 {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), items))
}

// Parallel splits [0, n) into `workers` contiguous chunks and runs fn on
// each (worker numbers them from 0), the last one on the calling goroutine.
func Parallel(n, workers int, fn func(worker, lo, hi int)) {
	if workers <= 1 {
		fn(0, 0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers-1; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(w, w*n/workers, (w+1)*n/workers)
		}()
	}
	fn(workers-1, (workers-1)*n/workers, n)
	wg.Wait()
}
