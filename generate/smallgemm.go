package generate

import "github.com/gotune/gotune/generate/internal/kernel"

// smallGemm computes y = x·wᵀ for x (N, in), w (out, in), y (N, out) with
// the register-blocked kernels: blocks of four weight rows, split across
// the cores, each read once from memory and applied to the x rows two at a
// time while they sit in L1. It reports false when the kernels are not
// available on this CPU.
func smallGemm(y, x, w []float32, N, in, out int) bool {
	if !kernel.Available {
		return false
	}
	if len(x) < N*in || len(w) < out*in || len(y) < N*out {
		panic("generate: smallGemm slice too short")
	}
	if in == 0 {
		clear(y[:N*out])
		return true
	}
	n8 := in &^ 7
	blocks := out / 4
	// Rows of x in chunks that stay in L2 while every weight block passes.
	chunk := max(2, (256<<10)/(4*in)) &^ 1
	for i0 := 0; i0 < N; i0 += chunk {
		i1 := min(N, i0+chunk)
		workers := workersFor(blocks, 2*(i1-i0)*in*out)
		parallel(blocks, workers, func(_, lo, hi int) {
			for b := lo; b < hi; b++ {
				j := 4 * b
				wp := &w[j*in]
				i := i0
				for ; i+1 < i1; i += 2 {
					kernel.Dot4x2(wp, in, &x[i*in], in, n8, &y[i*out+j], out)
				}
				if i < i1 {
					kernel.Dot4x1(wp, in, &x[i*in], n8, &y[i*out+j])
				}
			}
		})
	}
	// Columns past the last multiple of 8, and rows past the last block of 4.
	if n8 < in {
		for i := range N {
			xr := x[i*in : (i+1)*in]
			for j := range blocks * 4 {
				wr := w[j*in : (j+1)*in]
				var s float32
				for k := n8; k < in; k++ {
					s += xr[k] * wr[k]
				}
				y[i*out+j] += s
			}
		}
	}
	for i := range N {
		xr := x[i*in : (i+1)*in]
		for j := blocks * 4; j < out; j++ {
			wr := w[j*in : (j+1)*in]
			var s float32
			for k := range in {
				s += xr[k] * wr[k]
			}
			y[i*out+j] = s
		}
	}
	return true
}

// dotRows sets y[t] = Σ_{k<n} x[k]·w[t·ldw + k] for t < rows: a
// matrix-vector product over strided rows (attention scores over the key
// cache), on the AVX2 kernel when it is available.
func dotRows(y, x, w []float32, n, ldw, rows int) {
	if rows == 0 {
		return
	}
	if len(x) < n || len(y) < rows || len(w) < (rows-1)*ldw+n {
		panic("generate: dotRows slice too short")
	}
	if !kernel.Available || n < 8 {
		gemv(false, rows, n, 1, w, ldw, x, 0, y)
		return
	}
	n8 := n &^ 7
	t := 0
	for ; t+4 <= rows; t += 4 {
		kernel.Dot4x1(&w[t*ldw], ldw, &x[0], n8, &y[t])
	}
	for k := n8; k < n; k++ {
		for u := 0; u < t; u++ {
			y[u] += x[k] * w[u*ldw+k]
		}
	}
	for ; t < rows; t++ {
		var s float32
		wr := w[t*ldw : t*ldw+n]
		for k, v := range x[:n] {
			s += v * wr[k]
		}
		y[t] = s
	}
}
