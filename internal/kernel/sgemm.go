package kernel

import (
	"fmt"
	"sync"
)

// gemmVariant is one register-blocked micro-kernel with the cache blocking
// it runs under: kernel computes an mr×nr tile of C over kc steps from an A
// panel packed as kc columns of mr values and a B panel packed as kc rows of
// nr values; mc and nc bound the packed blocks of A (mc×kc) and B (kc×nc),
// multiples of mr and nr.
type gemmVariant struct {
	name               string
	mr, nr, kc, mc, nc int
	kernel             func(k int, a, b, c *float32, ldc int, alpha float32, accumulate int)
	pool               sync.Pool // *gemmBufs, the packing buffers of one worker
}

// gemmBufs are one worker's packed blocks, kept between calls so that a
// training step neither allocates nor faults them in anew.
type gemmBufs struct{ a, b []float32 }

// maxTile bounds mr·nr of every variant (the edge tile lives on the stack).
const maxTile = 12 * 32

// gemmActive is the variant Sgemm runs: the fastest one this CPU supports,
// nil where there is none.
var gemmActive = firstVariant()

func firstVariant() *gemmVariant {
	if len(gemmVariants) == 0 {
		return nil
	}
	return gemmVariants[0]
}

// GemmAvailable reports whether Sgemm has a micro-kernel for this CPU
// (AVX-512F, or AVX2 with FMA, on amd64 outside the purego build).
func GemmAvailable() bool { return gemmActive != nil }

// GemmKernel names the micro-kernel Sgemm runs ("AVX-512", "AVX2"), or ""
// where there is none.
func GemmKernel() string {
	if gemmActive == nil {
		return ""
	}
	return gemmActive.name
}

// GemmVariants names the micro-kernels this CPU can run, fastest first.
func GemmVariants() []string {
	names := make([]string, len(gemmVariants))
	for i, v := range gemmVariants {
		names[i] = v.name
	}
	return names
}

// UseGemmVariant makes Sgemm run the named micro-kernel (one of
// GemmVariants) until restore is called, so that tests and benchmarks
// reach every kernel the CPU supports. It is not safe to call while
// products run.
func UseGemmVariant(name string) (restore func(), err error) {
	for _, v := range gemmVariants {
		if v.name == name {
			old := gemmActive
			gemmActive = v
			return func() { gemmActive = old }, nil
		}
	}
	return nil, fmt.Errorf("kernel: no GEMM micro-kernel %q on this CPU (have %v)", name, GemmVariants())
}

// gemmParallelFlops is the smallest product (2·m·n·k) split across the
// cores: below it, starting goroutines costs more than it saves.
const gemmParallelFlops = 1 << 21

// Sgemm computes C = alpha·op(A)·op(B) + beta·C for row-major matrices with
// leading dimensions lda, ldb, ldc, where op(X) is X or Xᵀ; op(A) is m×k,
// op(B) is k×n and C is m×n. As in BLAS, C is not read when beta is 0. The
// product is blocked for the caches and packed (Goto & van de Geijn 2008):
// for each block of kc steps and mc rows of A, that block of op(A) is
// packed into panels of mr rows, then for each block of nc columns of
// op(B) that block is packed into panels of nr columns, and the
// micro-kernel runs over every pair of panels. Large products are split
// across the cores by rows or columns of C, whichever has more tiles.
// Sgemm reports false, leaving C alone, when no micro-kernel runs on this
// CPU.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) bool {
	v := gemmActive
	if v == nil {
		return false
	}
	if m < 0 || n < 0 || k < 0 {
		panic(fmt.Sprintf("kernel: Sgemm negative size m=%d n=%d k=%d", m, n, k))
	}
	if m == 0 || n == 0 {
		return true
	}
	ra, ca, rb, cb := m, k, k, n
	if transA {
		ra, ca = k, m
	}
	if transB {
		rb, cb = n, k
	}
	if ldc < n || (k > 0 && (lda < max(1, ca) || ldb < max(1, cb))) {
		panic(fmt.Sprintf("kernel: Sgemm leading dimension too small: lda=%d ldb=%d ldc=%d for m=%d n=%d k=%d", lda, ldb, ldc, m, n, k))
	}
	if len(c) < (m-1)*ldc+n || (k > 0 && (len(a) < (ra-1)*lda+ca || len(b) < (rb-1)*ldb+cb)) {
		panic("kernel: Sgemm slice too short")
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return true
	}
	mt, nt := (m+v.mr-1)/v.mr, (n+v.nr-1)/v.nr
	workers := 1
	if 2*m*n*k >= gemmParallelFlops {
		workers = WorkersFor(max(mt, nt), 2*m*n*k)
	}
	if workers <= 1 {
		v.run(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return true
	}
	if mt >= nt {
		// Rows of C (and of op(A)) in whole panels of mr.
		Parallel(mt, workers, func(_, lo, hi int) {
			i0, i1 := lo*v.mr, min(hi*v.mr, m)
			if i1 <= i0 {
				return
			}
			ao := i0 * lda
			if transA {
				ao = i0
			}
			v.run(transA, transB, i1-i0, n, k, alpha, a[ao:], lda, b, ldb, beta, c[i0*ldc:], ldc)
		})
		return true
	}
	// Columns of C (and of op(B)) in whole panels of nr.
	Parallel(nt, workers, func(_, lo, hi int) {
		j0, j1 := lo*v.nr, min(hi*v.nr, n)
		if j1 <= j0 {
			return
		}
		bo := j0
		if transB {
			bo = j0 * ldb
		}
		v.run(transA, transB, m, j1-j0, k, alpha, a, lda, b[bo:], ldb, beta, c[j0:], ldc)
	})
	return true
}

// scaleC sets C = beta·C, writing zeros without reading C when beta is 0.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	if beta == 1 {
		return
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// run computes C = alpha·op(A)·op(B) + beta·C on one goroutine (k ≥ 1,
// alpha ≠ 0, shapes checked). With beta = 0 the first block of kc steps
// stores into C; otherwise C is scaled by beta first and every block adds.
func (v *gemmVariant) run(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if beta != 0 {
		scaleC(m, n, beta, c, ldc)
	}
	bufs, _ := v.pool.Get().(*gemmBufs)
	if bufs == nil {
		bufs = &gemmBufs{a: make([]float32, v.mc*v.kc), b: make([]float32, v.nc*v.kc)}
	}
	defer v.pool.Put(bufs)
	mr, nr := v.mr, v.nr
	var tile [maxTile]float32
	// Blocks of equal depth, none deeper than v.kc: a short last block
	// would cost a pass over C for few steps.
	kcb := (k + (k+v.kc-1)/v.kc - 1) / ((k + v.kc - 1) / v.kc)
	for pc := 0; pc < k; pc += kcb {
		kc := min(kcb, k-pc)
		accumulate := 0
		if pc > 0 || beta != 0 {
			accumulate = 1
		}
		for ic := 0; ic < m; ic += v.mc {
			mc := min(v.mc, m-ic)
			pa := bufs.a[:(mc+mr-1)/mr*mr*kc]
			packA(pa, mr, transA, a, lda, ic, pc, mc, kc)
			for jc := 0; jc < n; jc += v.nc {
				nc := min(v.nc, n-jc)
				pb := bufs.b[:(nc+nr-1)/nr*nr*kc]
				packB(pb, nr, transB, b, ldb, pc, jc, kc, nc)
				for ir := 0; ir < mc; ir += mr {
					ap := &pa[ir*kc]
					rows := min(mr, mc-ir)
					for jr := 0; jr < nc; jr += nr {
						bp := &pb[jr*kc]
						cols := min(nr, nc-jr)
						ci := (ic+ir)*ldc + jc + jr
						if rows == mr && cols == nr {
							v.kernel(kc, ap, bp, &c[ci], ldc, alpha, accumulate)
							continue
						}
						// An edge tile: the kernel writes a whole tile,
						// so it goes to the stack and the part inside C
						// is copied.
						v.kernel(kc, ap, bp, &tile[0], nr, alpha, 0)
						for i := range rows {
							dst := c[ci+i*ldc : ci+i*ldc+cols]
							src := tile[i*nr : i*nr+cols]
							if accumulate != 0 {
								for j, x := range src {
									dst[j] += x
								}
							} else {
								copy(dst, src)
							}
						}
					}
				}
			}
		}
	}
}

// packA packs rows [i0, i0+mc) and steps [p0, p0+kc) of op(A) into panels
// of mr rows, each kc columns of mr values: dst[q·mr·kc + p·mr + i] =
// op(A)[i0 + q·mr + i][p0 + p]. Rows past mc in the last panel are zero.
func packA(dst []float32, mr int, transA bool, a []float32, lda, i0, p0, mc, kc int) {
	for q := 0; q*mr < mc; q++ {
		panel := dst[q*mr*kc : (q+1)*mr*kc]
		rows := min(mr, mc-q*mr)
		r0 := i0 + q*mr
		if transA {
			// op(A)[r][p] = A[p][r]: each step's mr values are
			// contiguous in A.
			for p := range kc {
				src := a[(p0+p)*lda+r0 : (p0+p)*lda+r0+rows]
				d := panel[p*mr : p*mr+mr]
				copy(d, src)
				clear(d[rows:])
			}
			continue
		}
		transposeInto(panel, mr, a[r0*lda+p0:], lda, rows, kc)
		if rows < mr {
			for p := range kc {
				clear(panel[p*mr+rows : p*mr+mr])
			}
		}
	}
}

// packB packs steps [p0, p0+kc) and columns [j0, j0+nc) of op(B) into
// panels of nr columns, each kc rows of nr values: dst[q·nr·kc + p·nr + j]
// = op(B)[p0 + p][j0 + q·nr + j]. Columns past nc in the last panel are
// zero.
func packB(dst []float32, nr int, transB bool, b []float32, ldb, p0, j0, kc, nc int) {
	for q := 0; q*nr < nc; q++ {
		panel := dst[q*nr*kc : (q+1)*nr*kc]
		cols := min(nr, nc-q*nr)
		c0 := j0 + q*nr
		if !transB {
			for p := range kc {
				src := b[(p0+p)*ldb+c0 : (p0+p)*ldb+c0+cols]
				d := panel[p*nr : p*nr+nr]
				copy(d, src)
				clear(d[cols:])
			}
			continue
		}
		// op(B)[p][j] = B[j][p]: each column of op(B) is a row of B.
		transposeInto(panel, nr, b[c0*ldb+p0:], ldb, cols, kc)
		if cols < nr {
			for p := range kc {
				clear(panel[p*nr+cols : p*nr+nr])
			}
		}
	}
}

// transposeInto sets dst[p·ld + i] = src[i·lds + p] for i < rows, p < n:
// rows of src become columns of dst. Eight rows go together in 8×8 blocks
// of vector registers where the CPU has AVX (transpose8Rows: a fifth of
// the qwen05 LoRA step's GEMM time went to this function as scalar code,
// most of it packing the 151936-row head for each chunk of rows), the
// rest four rows at a time so that each step writes four neighbouring
// values.
func transposeInto(dst []float32, ld int, src []float32, lds, rows, n int) {
	i := 0
	if haveTranspose8 && n >= 8 {
		blocks := n / 8
		for ; i+8 <= rows; i += 8 {
			// The last value each block reads and writes, checked here
			// because the assembly does not.
			_ = src[(i+7)*lds+blocks*8-1]
			_ = dst[(blocks*8-1)*ld+i+7]
			transpose8Rows(&dst[i], ld, &src[i*lds], lds, blocks)
			for p := blocks * 8; p < n; p++ {
				d := dst[p*ld+i : p*ld+i+8 : p*ld+i+8]
				for r := range d {
					d[r] = src[(i+r)*lds+p]
				}
			}
		}
	}
	for ; i+4 <= rows; i += 4 {
		s0 := src[i*lds : i*lds+n]
		s1 := src[(i+1)*lds : (i+1)*lds+n]
		s2 := src[(i+2)*lds : (i+2)*lds+n]
		s3 := src[(i+3)*lds : (i+3)*lds+n]
		d := dst[i:]
		for p := range s0 {
			o := d[p*ld : p*ld+4 : p*ld+4]
			o[0], o[1], o[2], o[3] = s0[p], s1[p], s2[p], s3[p]
		}
	}
	for ; i < rows; i++ {
		d := dst[i:]
		for p, x := range src[i*lds : i*lds+n] {
			d[p*ld] = x
		}
	}
}
