package lora

import (
	"fmt"
	"hash"
	"hash/fnv"
	"unsafe"

	"github.com/chewxy/hm"
	gblas "gonum.org/v1/gonum/blas"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/model/ops"
)

// hostMaskOp multiplies its input elementwise by a mask held on the host
// (inverted dropout: entries 0 or 1/(1−p)), redrawn by the trainer before
// each step. gorgonia's own Dropout gives wrong results, hence this op.
type hostMaskOp struct {
	ops.Output // never an input's memory
	mask       *[]float32
}

func (op *hostMaskOp) Arity() int { return 1 }
func (op *hostMaskOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op *hostMaskOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op *hostMaskOp) Do(in ...G.Value) (G.Value, error) {
	t, ok := in[0].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("lora dropout: want a tensor, got %T", in[0])
	}
	mask := *op.mask
	if len(mask) != t.Shape().TotalSize() {
		return nil, fmt.Errorf("lora dropout: mask has %d entries, input %v", len(mask), t.Shape())
	}
	out := op.Get(t.Dtype(), t.Shape()...)
	switch d := out.Data().(type) {
	case []float32:
		for i, v := range t.Data().([]float32) {
			d[i] = v * mask[i]
		}
	case []float64:
		for i, v := range t.Data().([]float64) {
			d[i] = v * float64(mask[i])
		}
	default:
		return nil, fmt.Errorf("lora dropout: unsupported dtype %v", t.Dtype())
	}
	return out, nil
}
func (op *hostMaskOp) ReturnsPtr() bool     { return false }
func (op *hostMaskOp) CallsExtern() bool    { return false }
func (op *hostMaskOp) OverwritesInput() int { return -1 }
func (op *hostMaskOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "lora.hostMask(%p)", unsafe.Pointer(op.mask))
}
func (op *hostMaskOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op *hostMaskOp) String() string       { return "loraDropout" }
func (op *hostMaskOp) DiffWRT(n int) []bool { return []bool{true} }
func (op *hostMaskOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(&hostMaskOp{mask: op.mask}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}

// lowRankAddOp is the adapter's term added onto the base output in one
// pass: out = y + s·(xa·Bᵀ), with xa = x·Aᵀ (N, r), B (out, r) and s the
// host scale. Fusing the product, the scaling and the sum writes one
// (N, out) tensor per module instead of three, and its backward needs only
// (N, r) and (out, r) buffers besides the incoming gradient, which passes
// to y unchanged:
//
//	∂L/∂y = G,   ∂L/∂xa = s·G·B,   ∂L/∂B = s·Gᵀ·xa.
type lowRankAddOp struct {
	ops.Output // never an input's memory
	scale      *float64
}

func (op *lowRankAddOp) Arity() int { return 3 }
func (op *lowRankAddOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a, a)
}
func (op *lowRankAddOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	y, xa, b := in[0].(tensor.Shape), in[1].(tensor.Shape), in[2].(tensor.Shape)
	if len(y) != 2 || len(xa) != 2 || len(b) != 2 || xa[0] != y[0] || b[0] != y[1] || b[1] != xa[1] {
		return nil, fmt.Errorf("lora: y %v, xa %v and B %v do not fit y + xa·Bᵀ", y, xa, b)
	}
	return y.Clone(), nil
}
func (op *lowRankAddOp) Do(in ...G.Value) (G.Value, error) {
	y, xa, b, err := denses3(in, "lora")
	if err != nil {
		return nil, err
	}
	res := op.Get(y.Dtype(), y.Shape()...)
	N, out, r := y.Shape()[0], y.Shape()[1], xa.Shape()[1]
	s := *op.scale
	switch d := res.Data().(type) {
	case []float32:
		copy(d, y.Data().([]float32))
		if s != 0 { // a disabled adapter leaves the base output exactly as it is
			blas.Gemm(false, true, N, out, r, float32(s), xa.Data().([]float32), b.Data().([]float32), 1, d)
		}
	case []float64:
		copy(d, y.Data().([]float64))
		if s != 0 {
			gemm64(false, true, N, out, r, s, xa.Data().([]float64), b.Data().([]float64), 1, d)
		}
	}
	return res, nil
}
func (op *lowRankAddOp) ReturnsPtr() bool     { return false }
func (op *lowRankAddOp) CallsExtern() bool    { return false }
func (op *lowRankAddOp) OverwritesInput() int { return -1 }
func (op *lowRankAddOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "lora.lowRankAdd(%p)", op.scale)
}
func (op *lowRankAddOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op *lowRankAddOp) String() string       { return "loraAdd" }
func (op *lowRankAddOp) DiffWRT(n int) []bool { return []bool{true, true, true} }
func (op *lowRankAddOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	dxa, err := G.ApplyOp(&lowRankGradOp{scale: op.scale, wrtB: false}, grad, in[2])
	if err != nil {
		return nil, err
	}
	db, err := G.ApplyOp(&lowRankGradOp{scale: op.scale, wrtB: true}, grad, in[1])
	if err != nil {
		return nil, err
	}
	return G.Nodes{grad, dxa, db}, nil
}

// lowRankGradOp is one gradient of lowRankAddOp from the incoming gradient
// G (N, out): with wrtB false, ∂L/∂xa = s·G·B from (G, B); with wrtB true,
// ∂L/∂B = s·Gᵀ·xa from (G, xa). Both are (·, r) and small.
type lowRankGradOp struct {
	ops.Output // never an input's memory
	scale      *float64
	wrtB       bool
}

func (op *lowRankGradOp) Arity() int { return 2 }
func (op *lowRankGradOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a, a)
}
func (op *lowRankGradOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	g, m := in[0].(tensor.Shape), in[1].(tensor.Shape)
	if len(g) != 2 || len(m) != 2 {
		return nil, fmt.Errorf("lora gradient: shapes %v and %v are not matrices", g, m)
	}
	if op.wrtB { // Gᵀ (out, N) · xa (N, r)
		return tensor.Shape{g[1], m[1]}, nil
	}
	return tensor.Shape{g[0], m[1]}, nil // G (N, out) · B (out, r)
}
func (op *lowRankGradOp) Do(in ...G.Value) (G.Value, error) {
	g, ok1 := in[0].(*tensor.Dense)
	m, ok2 := in[1].(*tensor.Dense)
	if !ok1 || !ok2 || g.Dtype() != m.Dtype() {
		return nil, fmt.Errorf("lora gradient: want two tensors of one dtype, got %T and %T", in[0], in[1])
	}
	N, out, r := g.Shape()[0], g.Shape()[1], m.Shape()[1]
	rows := N
	if op.wrtB {
		rows = out
	}
	res := op.Get(g.Dtype(), rows, r)
	s := *op.scale
	switch d := res.Data().(type) {
	case []float32:
		gd, md := g.Data().([]float32), m.Data().([]float32)
		if op.wrtB {
			blas.Gemm(true, false, out, r, N, float32(s), gd, md, 0, d)
		} else {
			blas.Gemm(false, false, N, r, out, float32(s), gd, md, 0, d)
		}
	case []float64:
		gd, md := g.Data().([]float64), m.Data().([]float64)
		if op.wrtB {
			gemm64(true, false, out, r, N, s, gd, md, 0, d)
		} else {
			gemm64(false, false, N, r, out, s, gd, md, 0, d)
		}
	default:
		return nil, fmt.Errorf("lora gradient: unsupported dtype %v", g.Dtype())
	}
	return res, nil
}
func (op *lowRankGradOp) ReturnsPtr() bool     { return false }
func (op *lowRankGradOp) CallsExtern() bool    { return false }
func (op *lowRankGradOp) OverwritesInput() int { return -1 }
func (op *lowRankGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "lora.lowRankGrad(%p,%v)", op.scale, op.wrtB)
}
func (op *lowRankGradOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op *lowRankGradOp) String() string       { return "loraAddGrad" }
func (op *lowRankGradOp) DiffWRT(n int) []bool { return make([]bool, n) }
func (op *lowRankGradOp) SymDiff(G.Nodes, *G.Node, *G.Node) (G.Nodes, error) {
	return nil, fmt.Errorf("lora: gradients of the adapter's gradient are not available")
}

// denses3 unpacks three tensors of one float dtype.
func denses3(in []G.Value, what string) (a, b, c *tensor.Dense, err error) {
	var ts [3]*tensor.Dense
	for i := range ts {
		t, ok := in[i].(*tensor.Dense)
		if !ok {
			return nil, nil, nil, fmt.Errorf("%s: input %d is %T, want a tensor", what, i, in[i])
		}
		if dt := t.Dtype(); dt != tensor.Float32 && dt != tensor.Float64 || (i > 0 && dt != ts[0].Dtype()) {
			return nil, nil, nil, fmt.Errorf("%s: input %d has dtype %v", what, i, dt)
		}
		ts[i] = t
	}
	return ts[0], ts[1], ts[2], nil
}

// gemm64 is blas.Gemm in float64 (the gradient checks' precision).
func gemm64(transA, transB bool, m, n, k int, alpha float64, a, b []float64, beta float64, c []float64) {
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	tr := func(t bool) gblas.Transpose {
		if t {
			return gblas.Trans
		}
		return gblas.NoTrans
	}
	blas.Impl{}.Dgemm(tr(transA), tr(transB), m, n, k, alpha, a, lda, b, ldb, beta, c, n)
}
