package generate

import (
	"fmt"
	"math"
	"sync"

	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/internal/kernel"
	"github.com/gotune/gotune/internal/q8"
	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
	"gorgonia.org/tensor"
)

// vec is gonum's float32 level-2 BLAS (assembly on amd64), used for the
// strided matrix-vector products of attention.
var vec gonum.Implementation

// gemv computes y = alpha·op(A)·x + beta·y for a row-major m×n matrix A with
// leading dimension lda; op(A) is A (y has m values) or Aᵀ (y has n).
func gemv(trans bool, m, n int, alpha float32, a []float32, lda int, x []float32, beta float32, y []float32) {
	t := gblas.NoTrans
	if trans {
		t = gblas.Trans
	}
	vec.Sgemv(t, m, n, alpha, a, lda, x, 1, beta, y, 1)
}

// matmulT computes y = x·wᵀ for x (N, in), w (out, in), y (N, out) on the
// register-blocked AVX2 kernel: decode steps (few rows) are memory-bound,
// and the kernel reads each weight row once for all rows of x. The engine
// keeps off OpenBLAS where it can: its threads spin after every call and
// would take a core from the decoding goroutines. Where the kernel cannot
// run, one row is the build's gemv and several a GEMM.
func matmulT(y, x, w []float32, N, in, out int) {
	if smallGemm(y, x, w, N, in, out) {
		return
	}
	if N == 1 {
		matvec(y, x, w, in, out)
		return
	}
	blas.Gemm(false, true, N, out, in, 1, x, w, 0, y)
}

// weightMulT computes y = x·wᵀ for x (N, in), y (N, out) and a weight
// w (out, in) held in float32, in bfloat16 (model.Weights.StoreBF16) or in
// Q8_0 (StoreQ8), whose values are widened exactly as they are read: half,
// or 9/32, of the bytes a decoding step streams. New refuses weights of
// any other type.
func weightMulT(y, x []float32, w *tensor.Dense, N, in, out int) {
	switch d := w.Data().(type) {
	case []float32:
		matmulT(y, x, d, N, in, out)
	case []uint16:
		matmulTBF16(y, x, d, N, in, out)
	case []q8.Block:
		matmulTQ8(y, x, d, N, in, out)
	default:
		panic(fmt.Sprintf("generate: a weight of %T passed New's checks", d))
	}
}

// widenRows is how many float32 values a prompt's product against a
// bfloat16 or Q8_0 weight widens at once (4 MiB, blockwiseMulT): each
// block's GEMM packs the prompt's rows again, so larger blocks pack them
// fewer times (1 MiB blocks prefilled the qwen05 shape at 210 tokens/s,
// 4 MiB at 289). A variable so that tests can force several blocks.
var widenRows = 1 << 20

// matmulTBF16 is matmulT with w in bfloat16: few rows on the widening
// dot-product kernels (kernel.GemmNTBF16); a prompt's rows, or any rows
// where those kernels cannot run, blockwise (blockwiseMulT).
func matmulTBF16(y, x []float32, w []uint16, N, in, out int) {
	if N < packedMinRows && kernel.GemmNTBF16(y, x, w, N, in, out) {
		return
	}
	blockwiseMulT(y, x, N, in, out, func(dst []float32, r0, r1 int) {
		bf16.Widen(dst, w[r0*in:r1*in])
	})
}

// matmulTQ8 is matmulT with w in Q8_0 blocks: few rows on the converting
// dot-product kernels (kernel.GemmNTQ8); a prompt's rows, or any rows
// where those kernels cannot run, blockwise (blockwiseMulT).
func matmulTQ8(y, x []float32, w []q8.Block, N, in, out int) {
	if N < packedMinRows && kernel.GemmNTQ8(y, x, w, N, in, out) {
		return
	}
	nb := in / q8.BlockLen
	blockwiseMulT(y, x, N, in, out, func(dst []float32, r0, r1 int) {
		q8.Dequantize(dst, w[r0*nb:r1*nb])
	})
}

// blockwiseMulT computes y = x·wᵀ (x (N, in), y (N, out)) for a w (out,
// in) held in another form: widenRows values of w at a time are widened
// to float32 (widen writes rows [r0, r1) into dst; the rows are split over
// the cores) into a pooled buffer, and each block's product lands in its
// columns of y (blockMulT).
func blockwiseMulT(y, x []float32, N, in, out int, widen func(dst []float32, r0, r1 int)) {
	if in == 0 {
		clear(y[:N*out])
		return
	}
	rows := max(1, min(out, widenRows/in))
	buf := widenPool.Get().(*[]float32)
	defer widenPool.Put(buf)
	*buf = grow(*buf, rows*in)
	var yb []float32
	for j0 := 0; j0 < out; j0 += rows {
		j1 := min(out, j0+rows)
		n := j1 - j0
		wb := (*buf)[:n*in]
		// kernel.Parallel, not the spinning team: the GEMM that follows
		// runs its own goroutines, which spinning workers would slow
		// (the spinning team here cost 4–5 % of a bfloat16 prefill).
		kernel.Parallel(n, workersFor(n, n*in), func(_, lo, hi int) {
			widen(wb[lo*in:hi*in], j0+lo, j0+hi)
		})
		blockMulT(y, x, wb, &yb, N, in, out, j0, j1)
	}
}

// widenPool holds blockwiseMulT's buffers of widened rows.
var widenPool = sync.Pool{New: func() any { return new([]float32) }}

// blockMulT computes columns j0..j1 of y = x·wᵀ (x (N, in), y (N, out))
// from wb, rows j0..j1 of w in float32: on the packed GEMM, else through
// yb (grown as needed) and copied into place.
func blockMulT(y, x, wb []float32, yb *[]float32, N, in, out, j0, j1 int) {
	n := j1 - j0
	if kernel.Sgemm(false, true, N, n, in, 1, x, in, wb, in, 0, y[j0:], out) {
		return
	}
	*yb = grow(*yb, N*n)
	matmulT(*yb, x, wb, N, in, n)
	for i := range N {
		copy(y[i*out+j0:i*out+j1], (*yb)[i*n:(i+1)*n])
	}
}

// gemmAcc computes y += alpha·t·bᵀ for t (N, r), b (out, r), y (N, out),
// through tmp (N·out values) on the kernel, else BLAS.
func gemmAcc(y, t, b, tmp []float32, N, r, out int, alpha float32) {
	if smallGemm(tmp[:N*out], t, b, N, r, out) {
		for i, v := range tmp[:N*out] {
			y[i] += alpha * v
		}
		return
	}
	blas.Gemm(false, true, N, out, r, alpha, t, b, 1, y)
}

// matvecGo computes y = w·x for w (out, in) with gonum's assembly Sgemv,
// splitting the rows across the available cores.
func matvecGo(y, x, w []float32, in, out int) {
	workers := workersFor(out, 2*in*out)
	parallel(out, workers, func(_, lo, hi int) {
		if hi > lo {
			vec.Sgemv(gblas.NoTrans, hi-lo, in, 1, w[lo*in:hi*in], in, x, 1, 0, y[lo:hi], 1)
		}
	})
}

// workersFor and parallel are the shared helpers of package kernel; the
// engine's parallel work comes in many short calls, so it runs on the
// spinning team.
var (
	workersFor = kernel.WorkersFor
	parallel   = kernel.SpinParallel
)

// rmsNorm computes y = x / √(mean(x²) + ε) ⊙ g for each of the N rows of
// width C (Zhang & Sennrich 2019, eq. 4). y may alias x.
func rmsNorm(y, x, g []float32, N, C int, eps float32) {
	for r := range N {
		xr, yr := x[r*C:(r+1)*C], y[r*C:(r+1)*C]
		var ss float32
		for _, v := range xr {
			ss += v * v
		}
		inv := float32(1 / math.Sqrt(float64(ss/float32(C)+eps)))
		for i, v := range xr {
			yr[i] = v * inv * g[i]
		}
	}
}

// addTo adds b to a element-wise.
func addTo(a, b []float32) {
	b = b[:len(a)]
	for i := range a {
		a[i] += b[i]
	}
}

// swiglu overwrites gate with silu(gate) ⊙ up, silu(z) = z·σ(z)
// (Shazeer 2020, eq. 6).
func swiglu(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = g / (1 + expf(-g)) * up[i]
	}
}

// softmax normalises s in place: s_i ← exp(s_i − max s) / Σ_j exp(s_j − max s).
func softmax(s []float32) {
	m := float32(math.Inf(-1))
	for _, v := range s {
		m = max(m, v)
	}
	var sum float32
	for i, v := range s {
		e := expf(v - m)
		s[i] = e
		sum += e
	}
	inv := 1 / sum
	for i := range s {
		s[i] *= inv
	}
}

// expf is e^x in float32 by Cephes' expf: x = n·ln2 + r with |r| ≤ ln2/2,
// e^r from a degree-6 minimax polynomial, scaled by 2ⁿ through the exponent
// bits. Relative error ≤ 2 ulp on the normal range; underflows to 0.
func expf(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375
		c2    = -2.12194440e-4
	)
	switch {
	case x > 88.72:
		return float32(math.Inf(1))
	case x < -87.33:
		return 0
	case x != x:
		return x
	}
	n := float32(math.Floor(float64(x*log2e + 0.5)))
	r := x - n*c1 - n*c2
	p := float32(1.9875691500e-4)
	p = p*r + 1.3981999507e-3
	p = p*r + 8.3334519073e-3
	p = p*r + 4.1665795894e-2
	p = p*r + 1.6666665459e-1
	p = p*r + 5.0000001201e-1
	p = p*r*r + r + 1
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}
