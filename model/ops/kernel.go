package ops

import (
	"math"
	"runtime"
	"sync"

	gblas "gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/model/ops/internal/vec"
)

// Float is the element type every kernel is written for: float32 for
// training, float64 for gradient checks.
type Float interface{ float32 | float64 }

var (
	sgemmImpl blas.Impl            // OpenBLAS with the openblas build tag, pure Go otherwise
	dgemmImpl gonum.Implementation // float64 is only used by gradient checks
)

func transpose(t bool) gblas.Transpose {
	if t {
		return gblas.Trans
	}
	return gblas.NoTrans
}

// gemm computes C = alpha·op(A)·op(B) + beta·C on row-major matrices with
// explicit leading dimensions; op(A) is m×k, op(B) is k×n, C is m×n.
func gemm[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		// C = beta·C; BLAS implementations differ on k = 0, so do it here.
		for i := range m {
			row := c[i*ldc : i*ldc+n]
			for j := range row {
				row[j] *= beta
			}
		}
		return
	}
	if _, f32 := any(a).([]float32); !f32 || !blas.Serial() {
		gemmCall(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	procs := runtime.GOMAXPROCS(0)
	if n > m {
		// op(B), a weight matrix for a short sequence, is the larger
		// operand: each call packs only its own columns of it.
		gemmSplitCols(min(procs, n/64), tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	gemmSplit(min(procs, m/32), tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmSplitCols runs gemm as parts calls on consecutive columns of C (and
// of op(B)), in whole groups of 32, concurrently.
func gemmSplitCols[T Float](parts int, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if parts <= 1 {
		gemmCall(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	cols := ((n+parts-1)/parts + 31) / 32 * 32
	var wg sync.WaitGroup
	for lo := cols; lo < n; lo += cols {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			boff := lo
			if tB {
				boff = lo * ldb
			}
			gemmCall(tA, tB, m, hi-lo, k, alpha, a, lda, b[boff:], ldb, beta, c[lo:], ldc)
		}(lo, min(lo+cols, n))
	}
	gemmCall(tA, tB, m, min(cols, n), k, alpha, a, lda, b, ldb, beta, c, ldc)
	wg.Wait()
}

// gemmSplit runs gemm as parts calls on consecutive rows of C (and of
// op(A)), concurrently.
func gemmSplit[T Float](parts int, tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	if parts <= 1 {
		gemmCall(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	rows := (m + parts - 1) / parts
	var wg sync.WaitGroup
	for lo := rows; lo < m; lo += rows {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			aoff := lo * lda
			if tA {
				aoff = lo
			}
			gemmCall(tA, tB, hi-lo, n, k, alpha, a[aoff:], lda, b, ldb, beta, c[lo*ldc:], ldc)
		}(lo, min(lo+rows, m))
	}
	gemmCall(tA, tB, rows, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
	wg.Wait()
}

// gemmCall is one BLAS call.
func gemmCall[T Float](tA, tB bool, m, n, k int, alpha T, a []T, lda int, b []T, ldb int, beta T, c []T, ldc int) {
	switch a := any(a).(type) {
	case []float32:
		sgemmImpl.Sgemm(transpose(tA), transpose(tB), m, n, k, float32(alpha), a, lda,
			any(b).([]float32), ldb, float32(beta), any(c).([]float32), ldc)
	case []float64:
		dgemmImpl.Dgemm(transpose(tA), transpose(tB), m, n, k, float64(alpha), a, lda,
			any(b).([]float64), ldb, float64(beta), any(c).([]float64), ldc)
	}
}

// parallelFor splits [0, n) into one contiguous range per processor (none
// shorter than grain) and runs fn on them concurrently.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if grain < 1 {
		grain = 1
	}
	if w := n / grain; w < workers {
		workers = w
	}
	if workers <= 1 {
		fn(0, n)
		return
	}
	chunk := (n + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := chunk; lo < n; lo += chunk {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			fn(lo, hi)
		}(lo, min(lo+chunk, n))
	}
	fn(0, min(chunk, n))
	wg.Wait()
}

// exp32 is a single-precision exp accurate to about 2 ulp (Cephes expf:
// range reduction x = n·ln2 + r with |r| ≤ ln2/2 and a degree-7 polynomial
// for e^r), several times faster than math.Exp. Results below the smallest
// normal float32 flush to zero.
func exp32(x float32) float32 {
	const (
		log2e = 1.44269504088896341
		c1    = 0.693359375 // ln2 split in two so n·c1 is exact
		c2    = -2.12194440e-4
	)
	if x < -87.33654 {
		return 0
	}
	if x > 88.0 {
		return float32(math.Exp(float64(x)))
	}
	// floor(x·log2e + 0.5), shifted positive so truncation is floor.
	n := int32(x*log2e+0.5+128) - 128
	fn := float32(n)
	r := x - fn*c1 - fn*c2
	p := ((((((1.9875691500e-4*r+1.3981999507e-3)*r+8.3334519073e-3)*r+4.1665795894e-2)*r+1.6666665459e-1)*r+5.0000001201e-1)*r*r + r) + 1
	return p * math.Float32frombits(uint32(n+127)<<23)
}

// softmaxRow replaces x by softmax(x) restricted to its first n entries
// (the rest are set to 0) and returns log Σ exp(x[:n]).
func softmaxRow[T Float](x []T, n int) T {
	m := x[0]
	for _, v := range x[1:n] {
		if v > m {
			m = v
		}
	}
	var sum float64
	switch xs := any(x[:n]).(type) {
	case []float32:
		sum, _ = expShiftSums32(xs, float32(m))
	case []float64:
		for i, v := range xs {
			xs[i] = math.Exp(v - float64(m))
			sum += xs[i]
		}
	}
	inv := T(1 / sum)
	for i := range x[:n] {
		x[i] *= inv
	}
	clear(x[n:])
	return m + T(math.Log(sum))
}

// expShiftSums32 replaces z by exp(z − m) and returns Σ exp(z − m) and
// Σ exp(z − m)·z (z read before overwriting), in float64. It runs the
// vector kernel where there is one; partial sums stay short (256 values)
// so float32 rounding does not grow with len(z).
func expShiftSums32(z []float32, m float32) (se, sez float64) {
	for len(z) > 0 {
		blk := z[:min(len(z), 256)]
		z = z[len(blk):]
		if n8 := len(blk) &^ 7; vec.Available && n8 > 0 {
			s, sz := vec.ExpShiftSums(blk[:n8], m)
			se += float64(s)
			sez += float64(sz)
			blk = blk[n8:]
		}
		var s, sz float32
		for j, v := range blk {
			e := exp32(v - m)
			s += e
			sz += e * v
			blk[j] = e
		}
		se += float64(s)
		sez += float64(sz)
	}
	return se, sez
}

// maxSum returns the maximum of z (len(z) > 0) and its sum in float64.
func maxSum[T Float](z []T) (m T, sum float64) {
	m = z[0]
	if zs, ok := any(z).([]float32); ok && vec.Available {
		m32 := zs[0]
		for len(zs) >= 8 {
			blk := zs[:min(len(zs), 256)&^7]
			zs = zs[len(blk):]
			bm, bs := vec.MaxSum(blk)
			m32 = max(m32, bm)
			sum += float64(bs)
		}
		for _, v := range zs {
			m32 = max(m32, v)
			sum += float64(v)
		}
		return T(m32), sum
	}
	for _, v := range z {
		m = max(m, v)
		sum += float64(v)
	}
	return m, sum
}
