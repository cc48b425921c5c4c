package generate

import "github.com/gotune/gotune/internal/kernel"

// packedMinRows is the smallest N that smallGemm runs on the packed GEMM
// (kernel.Sgemm): below it, packing w costs more than the packed
// micro-kernel saves over the dot-product kernels, which read each row of
// w once for all rows of x (decoding, short prompts).
const packedMinRows = 128

// smallGemm computes y = x·wᵀ for x (N, in), w (out, in), y (N, out) with
// the assembly kernels: the register-blocked dot products (kernel.GemmNT)
// for few rows, the packed, cache-blocked GEMM (kernel.Sgemm: AVX-512 or
// AVX2) for prompts of packedMinRows tokens or more. It reports false when
// the kernels are not available on this CPU.
func smallGemm(y, x, w []float32, N, in, out int) bool {
	if N >= packedMinRows && in > 0 && kernel.Sgemm(false, true, N, out, in, 1, x, in, w, in, 0, y, out) {
		return true
	}
	return kernel.GemmNT(y, x, w, N, in, out)
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
