package kernel

import "github.com/gotune/gotune/internal/q8"

// GemmNTQ8 is GemmNT with w in Q8_0 blocks: y = x·wᵀ for row-major x
// (N, in), w (out, in/32 blocks) and y (N, out); in must be a multiple of
// 32. Each block of four rows of w is read once and converted in registers
// (Dot4x1Q8), for every row of x while it is in L1. It reports false,
// leaving y alone, when the kernels are not available on this CPU.
func GemmNTQ8(y, x []float32, w []q8.Block, N, in, out int) bool {
	if !Available {
		return false
	}
	if in%q8.BlockLen != 0 {
		panic("kernel: GemmNTQ8 with rows that are not whole Q8_0 blocks")
	}
	nb := in / q8.BlockLen
	if len(x) < N*in || len(w) < out*nb || len(y) < N*out {
		panic("kernel: GemmNTQ8 slice too short")
	}
	if nb == 0 {
		clear(y[:N*out])
		return true
	}
	blocks := out / 4
	workers := WorkersFor(blocks, 2*N*in*out)
	SpinParallel(blocks, workers, func(_, lo, hi int) {
		for b := lo; b < hi; b++ {
			j := 4 * b
			for i := range N {
				Dot4x1Q8(&w[j*nb], nb, &x[i*in], nb, &y[i*out+j])
			}
		}
	})
	for j := blocks * 4; j < out; j++ {
		for i := range N {
			y[i*out+j] = dotQ8(w[j*nb:(j+1)*nb], x[i*in:(i+1)*in])
		}
	}
	return true
}

// dotQ8 is Σ_b w[b].D · Σ_i w[b].Q[i]·x[32b + i] in plain Go, block by
// block (the kernels' order within a block differs): the rows GemmNTQ8's
// blocks of four leave over.
func dotQ8(w []q8.Block, x []float32) float32 {
	x = x[:len(w)*q8.BlockLen]
	var s float32
	for b := range w {
		var t float32
		for i, q := range w[b].Q {
			t += float32(q) * x[b*q8.BlockLen+i]
		}
		s += w[b].D * t
	}
	return s
}
