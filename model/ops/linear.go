package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Linear is a linear layer with the weight in Hugging Face layout:
// x (N, in), w (out, in), optional bias b (out) (nil for none):
//
//	y = x·Wᵀ + b   (N, out)
//
// computed by one GEMM with a transposed operand, so the weight is never
// copied.
func Linear(x, w, b *G.Node) (*G.Node, error) {
	if b == nil {
		return apply(&linearOp{}, x, w)
	}
	return apply(&linearOp{bias: true}, x, w, b)
}

type linearOp struct {
	pure
	bias bool
	out  buffer
}

func (op *linearOp) Arity() int {
	if op.bias {
		return 3
	}
	return 2
}
func (op *linearOp) Type() hm.Type {
	if op.bias {
		return hm.NewFnType(tensorType(2), tensorType(2), tensorType(1), tensorType(2))
	}
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2))
}
func (op *linearOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ranks := []int{2, 2}
	if op.bias {
		ranks = append(ranks, 1)
	}
	s, err := shapes(ds, ranks...)
	if err != nil {
		return nil, err
	}
	if s[0][1] != s[1][1] || (op.bias && s[2][0] != s[1][0]) {
		return nil, fmt.Errorf("linear: x %v, weight %v, bias %v disagree", s[0], s[1], s[len(s)-1])
	}
	return tensor.Shape{s[0][0], s[1][0]}, nil
}
func (op *linearOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.Linear{%v}", op.bias) }
func (op *linearOp) Hashcode() uint32      { return hashOf(op) }
func (op *linearOp) String() string        { return "Linear" }

func (op *linearOp) Do(in ...G.Value) (G.Value, error) {
	x, err := dense(in[0], "linear x")
	if err != nil {
		return nil, err
	}
	var b *tensor.Dense
	if op.bias {
		if b, err = dense(in[2], "linear bias"); err != nil {
			return nil, err
		}
	}
	N, K, M := x.Shape()[0], x.Shape()[1], in[1].Shape()[0]
	out := op.out.get(x.Dtype(), N, M)
	switch x.Dtype() {
	case tensor.Float32:
		w, err := weightOf[float32](in[1], "linear weight")
		if err != nil {
			return nil, err
		}
		linear(floats[float32](x, b, out), w, N, K, M)
	default:
		w, err := weightOf[float64](in[1], "linear weight")
		if err != nil {
			return nil, err
		}
		linear(floats[float64](x, b, out), w, N, K, M)
	}
	return out, nil
}

// linear computes y = x·Wᵀ (+ b); s = {x, b or nil, y}.
func linear[T Float](s [][]T, w weight[T], N, K, M int) {
	x, b, y := s[0], s[1], s[2]
	w.mulT(N, x, K, y, M)
	if b != nil {
		parallelFor(N, 64, func(lo, hi int) {
			for n := lo; n < hi; n++ {
				row := y[n*M : (n+1)*M]
				for j, v := range b {
					row[j] += v
				}
			}
		})
	}
}

func (op *linearOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = true
	}
	return d
}
func (op *linearOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	// dx = dy·W,  dW = dyᵀ·x,  db = Σ_rows dy
	dx, err := MatMul(grad, in[1], false, false)
	if err != nil {
		return nil, err
	}
	dw, err := MatMul(grad, in[0], true, false)
	if err != nil {
		return nil, err
	}
	if !op.bias {
		return G.Nodes{dx, dw}, nil
	}
	db, err := apply(&colSumOp{}, grad)
	return G.Nodes{dx, dw, db}, err
}

// MatMul is the matrix product op(a)·op(b) of two matrices, op(x) being x
// or xᵀ, computed by one GEMM with no transposed copies.
func MatMul(a, b *G.Node, transA, transB bool) (*G.Node, error) {
	return apply(&matmulOp{transA: transA, transB: transB}, a, b)
}

type matmulOp struct {
	pure
	transA, transB bool
	out            buffer
}

func (op *matmulOp) Arity() int { return 2 }
func (op *matmulOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2))
}

// dims returns m, k, n of op(a) (m×k) · op(b) (k×n).
func (op *matmulOp) dims(sa, sb tensor.Shape) (m, k, n int, err error) {
	m, k = sa[0], sa[1]
	if op.transA {
		m, k = k, m
	}
	kb, n := sb[0], sb[1]
	if op.transB {
		kb, n = n, kb
	}
	if k != kb {
		err = fmt.Errorf("matmul: %v and %v do not chain (transposed %v, %v)", sa, sb, op.transA, op.transB)
	}
	return
}
func (op *matmulOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2)
	if err != nil {
		return nil, err
	}
	m, _, n, err := op.dims(s[0], s[1])
	return tensor.Shape{m, n}, err
}
func (op *matmulOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.MatMul{%v,%v}", op.transA, op.transB)
}
func (op *matmulOp) Hashcode() uint32 { return hashOf(op) }
func (op *matmulOp) String() string   { return fmt.Sprintf("MatMul{%v,%v}", op.transA, op.transB) }

func (op *matmulOp) Do(in ...G.Value) (G.Value, error) {
	x, err := dense(in[0], "matmul a")
	if err != nil {
		return nil, err
	}
	m, k, n, err := op.dims(x.Shape(), in[1].Shape())
	if err != nil {
		return nil, err
	}
	if isBF16(in[1]) {
		// Linear's input gradient dy·W on a frozen bfloat16 weight.
		if op.transA || op.transB || x.Dtype() != tensor.Float32 {
			return nil, fmt.Errorf("matmul: a bfloat16 right operand takes float32 a·b only (transposed %v, %v; %v)", op.transA, op.transB, x.Dtype())
		}
		w, err := weightOf[float32](in[1], "matmul b")
		if err != nil {
			return nil, err
		}
		out := op.out.get(x.Dtype(), m, n)
		w.mul(m, x.Data().([]float32), k, out.Data().([]float32), n)
		return out, nil
	}
	y, err := dense(in[1], "matmul b")
	if err != nil {
		return nil, err
	}
	out := op.out.get(x.Dtype(), m, n)
	lda, ldb := x.Shape()[1], y.Shape()[1]
	switch x.Dtype() {
	case tensor.Float32:
		s := floats[float32](x, y, out)
		gemm(op.transA, op.transB, m, n, k, 1, s[0], lda, s[1], ldb, 0, s[2], n)
	default:
		s := floats[float64](x, y, out)
		gemm(op.transA, op.transB, m, n, k, 1, s[0], lda, s[1], ldb, 0, s[2], n)
	}
	return out, nil
}

func (op *matmulOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *matmulOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	a, b := in[0], in[1]
	type mm struct {
		x, y   *G.Node
		tx, ty bool
	}
	var da, db mm
	switch {
	case !op.transA && !op.transB: // C = A·B
		da, db = mm{grad, b, false, true}, mm{a, grad, true, false}
	case !op.transA && op.transB: // C = A·Bᵀ
		da, db = mm{grad, b, false, false}, mm{grad, a, true, false}
	case op.transA && !op.transB: // C = Aᵀ·B
		da, db = mm{b, grad, false, true}, mm{a, grad, false, false}
	default: // C = Aᵀ·Bᵀ
		da, db = mm{b, grad, true, true}, mm{grad, a, true, true}
	}
	ga, err := MatMul(da.x, da.y, da.tx, da.ty)
	if err != nil {
		return nil, err
	}
	gb, err := MatMul(db.x, db.y, db.tx, db.ty)
	return G.Nodes{ga, gb}, err
}

// colSumOp sums a matrix (N, M) over its rows, giving (M): a bias gradient.
type colSumOp struct {
	pure
	terminal
	out buffer
}

func (op *colSumOp) Arity() int    { return 1 }
func (op *colSumOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(1)) }
func (op *colSumOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0][1]}, nil
}
func (op *colSumOp) WriteHash(h hash.Hash) { fmt.Fprint(h, "gotune.ColSum") }
func (op *colSumOp) Hashcode() uint32      { return hashOf(op) }
func (op *colSumOp) String() string        { return "ColSum" }

func (op *colSumOp) Do(in ...G.Value) (G.Value, error) {
	x, err := dense(in[0], "column sum")
	if err != nil {
		return nil, err
	}
	N, M := x.Shape()[0], x.Shape()[1]
	out := op.out.get(x.Dtype(), M)
	switch x.Dtype() {
	case tensor.Float32:
		colSum(floats[float32](x, out), N, M)
	default:
		colSum(floats[float64](x, out), N, M)
	}
	return out, nil
}

// colSum accumulates in float64; s = {x, out}.
func colSum[T Float](s [][]T, N, M int) {
	x, out := s[0], s[1]
	acc := make([]float64, M)
	for n := range N {
		for j, v := range x[n*M : (n+1)*M] {
			acc[j] += float64(v)
		}
	}
	for j, v := range acc {
		out[j] = T(v)
	}
}
