package ops

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/bf16"
)

// BF16Matrix is a frozen (Rows, Cols) matrix held in bfloat16: each element
// is the upper 16 bits of a float32 (sign, the 8-bit exponent, 7 bits of
// mantissa), half the memory of float32. It is a graph value of float32
// tensor type that only the products of this package read — Linear (as the
// weight), MatMul (as the untransposed right operand: Linear's input
// gradient), Embedding and the head (LogProbs, MeanNLL) — widening a block
// of rows to float32 at a time, so that every product runs in float32 on
// bfloat16-stored weights. It has no gradient: a frozen base.
type BF16Matrix struct {
	Rows, Cols int
	Bits       []uint16 // row-major, Rows·Cols
}

// NewBF16Matrix wraps bits (row-major, rows·cols) as a matrix.
func NewBF16Matrix(rows, cols int, bits []uint16) (*BF16Matrix, error) {
	if rows <= 0 || cols <= 0 || len(bits) != rows*cols {
		return nil, fmt.Errorf("bfloat16 matrix: %d values for %d×%d", len(bits), rows, cols)
	}
	return &BF16Matrix{Rows: rows, Cols: cols, Bits: bits}, nil
}

// Shape implements gorgonia.Value.
func (m *BF16Matrix) Shape() tensor.Shape { return tensor.Shape{m.Rows, m.Cols} }

// Size implements gorgonia.Value.
func (m *BF16Matrix) Size() int { return m.Rows * m.Cols }

// Data implements gorgonia.Value: the bits.
func (m *BF16Matrix) Data() any { return m.Bits }

// Dtype implements gorgonia.Value: float32, the type of the values the
// products compute with.
func (m *BF16Matrix) Dtype() tensor.Dtype { return tensor.Float32 }

// Type implements gorgonia's Typer: a float32 matrix.
func (m *BF16Matrix) Type() hm.Type { return G.TensorType{Dims: 2, Of: tensor.Float32} }

// Uintptr implements tensor.Memory.
func (m *BF16Matrix) Uintptr() uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(m.Bits))) }

// MemSize implements tensor.Memory.
func (m *BF16Matrix) MemSize() uintptr { return uintptr(2 * len(m.Bits)) }

// Format implements fmt.Formatter.
func (m *BF16Matrix) Format(s fmt.State, _ rune) { fmt.Fprintf(s, "bfloat16 %d×%d", m.Rows, m.Cols) }

// widen writes rows [r0, r1) of m into dst as float32.
func (m *BF16Matrix) widen(r0, r1 int, dst []float32) {
	src := m.Bits[r0*m.Cols : r1*m.Cols]
	parallelFor(len(src), 1<<15, func(lo, hi int) { bf16.Widen(dst[lo:hi], src[lo:hi]) })
}

// widenElems bounds the float32 values a product widens at once (4 MiB):
// rows enough for the GEMM to run at speed. With 1 MiB blocks (53 rows of
// qwen05's down_proj) gotune's own kernels, which split each call across
// the cores, ran the qwen05 bfloat16 LoRA step at 97–103 tokens/s against
// 120–129 with 4 MiB and 113–124 with 16 MiB (OpenBLAS's single-threaded
// calls: 120–126 against 124–128), at the same peak RSS. A variable so
// that tests can force several blocks on small shapes.
var widenElems = 1 << 20

// weight is a (rows, cols) matrix operand of a product: float values, or
// bfloat16 bits (bf, float32 products only).
type weight[T Float] struct {
	f          []T
	bf         *BF16Matrix
	rows, cols int
}

// weightOf reads an operation's weight input: a float tensor of the
// graph's element type T, or a BF16Matrix in a float32 graph.
func weightOf[T Float](v G.Value, what string) (weight[T], error) {
	if m, ok := v.(*BF16Matrix); ok {
		var zero T
		if _, ok := any(zero).(float32); !ok {
			return weight[T]{}, fmt.Errorf("%s: bfloat16 weights in a %T graph (float32 only)", what, zero)
		}
		return weight[T]{bf: m, rows: m.Rows, cols: m.Cols}, nil
	}
	d, err := dense(v, what)
	if err != nil {
		return weight[T]{}, err
	}
	f, ok := d.Data().([]T)
	if !ok || d.Dims() != 2 {
		return weight[T]{}, fmt.Errorf("%s: a %v matrix of %v, want %T", what, d.Shape(), d.Dtype(), f)
	}
	return weight[T]{f: f, rows: d.Shape()[0], cols: d.Shape()[1]}, nil
}

// isBF16 reports whether a value is a bfloat16 matrix.
func isBF16(v G.Value) bool { _, ok := v.(*BF16Matrix); return ok }

// mulT computes y = x·Wᵀ: x (n, cols) with row stride ldx, y (n, rows)
// with row stride ldy.
func (w weight[T]) mulT(n int, x []T, ldx int, y []T, ldy int) {
	if w.bf == nil {
		gemm(false, true, n, w.rows, w.cols, 1, x, ldx, w.f, w.cols, 0, y, ldy)
		return
	}
	x32, y32 := any(x).([]float32), any(y).([]float32)
	w.bf.blocks(func(r0, r1 int, wb []float32) {
		gemm(false, true, n, r1-r0, w.cols, 1, x32, ldx, wb, w.cols, 0, y32[r0:], ldy)
	})
}

// mul computes y = x·W: x (n, rows) with row stride ldx, y (n, cols) with
// row stride ldy.
func (w weight[T]) mul(n int, x []T, ldx int, y []T, ldy int) {
	if w.bf == nil {
		gemm(false, false, n, w.cols, w.rows, 1, x, ldx, w.f, w.cols, 0, y, ldy)
		return
	}
	x32, y32 := any(x).([]float32), any(y).([]float32)
	w.bf.blocks(func(r0, r1 int, wb []float32) {
		beta := float32(1)
		if r0 == 0 {
			beta = 0
		}
		gemm(false, false, n, w.cols, r1-r0, 1, x32[r0:], ldx, wb, w.cols, beta, y32, ldy)
	})
}

// blocks calls fn on each block of rows [r0, r1) of m, in order, widened
// to float32 in wb (lent from a pool), at most widenElems values (and at
// least one row) a block: a product against m runs one block at a time.
func (m *BF16Matrix) blocks(fn func(r0, r1 int, wb []float32)) {
	if m.Rows == 0 || m.Cols == 0 {
		return
	}
	rb := max(1, min(m.Rows, widenElems/m.Cols))
	blk := areas32.get(rb * m.Cols)
	defer areas32.put(blk)
	for r0 := 0; r0 < m.Rows; r0 += rb {
		r1 := min(m.Rows, r0+rb)
		wb := (*blk)[:(r1-r0)*m.Cols]
		m.widen(r0, r1, wb)
		fn(r0, r1, wb)
	}
}

// rowInto writes row i of W into dst (len cols), widened when bfloat16.
func (w weight[T]) rowInto(i int, dst []T) {
	if w.bf == nil {
		copy(dst, w.f[i*w.cols:(i+1)*w.cols])
		return
	}
	bf16.Widen(any(dst).([]float32), w.bf.Bits[i*w.cols:(i+1)*w.cols])
}

// scaleAddRow sets dst = k·dst + c·W[i] (len cols).
func (w weight[T]) scaleAddRow(i int, k, c T, dst []T) {
	if w.bf == nil {
		for j, v := range w.f[i*w.cols : (i+1)*w.cols] {
			dst[j] = k*dst[j] + c*v
		}
		return
	}
	for j, h := range w.bf.Bits[i*w.cols : (i+1)*w.cols] {
		dst[j] = k*dst[j] + c*T(bf16.ToFloat32(h))
	}
}

// workAreas lends scratch slices to operations, so that a program holds
// one per running operation, not one per operation of the graph.
type workAreas[T Float] struct{ pool sync.Pool }

var (
	areas32 workAreas[float32]
	areas64 workAreas[float64]
)

// get lends a slice of n elements (contents undefined).
func (a *workAreas[T]) get(n int) *[]T {
	if v, ok := a.pool.Get().(*[]T); ok && cap(*v) >= n {
		*v = (*v)[:n]
		return v
	}
	v := make([]T, n)
	return &v
}

// put returns a slice lent by get.
func (a *workAreas[T]) put(v *[]T) { a.pool.Put(v) }

// floatRows returns rows [r0, r1) of W as float values: a slice of W, or
// the bfloat16 rows widened into scratch (at least (r1−r0)·cols long), on
// all cores when parallel.
func (w weight[T]) floatRows(r0, r1 int, scratch []T, parallel bool) []T {
	if w.bf == nil {
		return w.f[r0*w.cols : r1*w.cols]
	}
	dst := any(scratch[:(r1-r0)*w.cols]).([]float32)
	if parallel {
		w.bf.widen(r0, r1, dst)
	} else {
		bf16.Widen(dst, w.bf.Bits[r0*w.cols:r1*w.cols])
	}
	return any(dst).([]T)
}
