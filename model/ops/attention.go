package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// AttentionShape fixes the layout of Attention's inputs.
type AttentionShape struct {
	B, T   int // sequences and positions; rows are N = B·T
	H, KVH int // query heads and key/value heads (KVH divides H)
	D      int // query/key head dimension
	// DV is the value (and output) head dimension; 0 means D. Multi-head
	// latent attention has DV = v_head_dim ≠ D = qk_nope + qk_rope.
	DV int
	// Scale multiplies the scores; 0 means 1/√D.
	Scale float64
	// Segments, when set, is a (B·T) host buffer read at every run that
	// splits each sequence into packed documents: a 1-based segment
	// number per position, each segment a contiguous run (padding, 0,
	// forms its own). Query i then attends only to keys j ≤ i of its own
	// segment (a block-diagonal causal mask), so documents packed into one
	// row see nothing of each other (padding-free packing).
	Segments []int32
}

// hashKey is the shape without the segments buffer (whose values change
// from run to run).
func (s AttentionShape) hashKey() string {
	return fmt.Sprintf("{B:%d T:%d H:%d KVH:%d D:%d DV:%d Scale:%v Segmented:%v}", s.B, s.T, s.H, s.KVH, s.D, s.DV, s.Scale, s.Segments != nil)
}

// dv is the value head dimension.
// inferQKV checks the shapes of an attention's queries (N, H·D), keys
// (N, KVH·D) and values (N, KVH·dv) and returns its output's, (N, H·dv).
func (s AttentionShape) inferQKV(ds []G.DimSizer, what string) (tensor.Shape, error) {
	sh, err := shapes(ds, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	N := s.B * s.T
	q, k, v := tensor.Shape{N, s.H * s.D}, tensor.Shape{N, s.KVH * s.D}, tensor.Shape{N, s.KVH * s.dv()}
	if !sh[0].Eq(q) || !sh[1].Eq(k) || !sh[2].Eq(v) {
		return nil, fmt.Errorf("%s: q %v, k %v, v %v; want %v, %v, %v", what, sh[0], sh[1], sh[2], q, k, v)
	}
	return tensor.Shape{N, s.H * s.dv()}, nil
}

func (s AttentionShape) dv() int {
	if s.DV > 0 {
		return s.DV
	}
	return s.D
}

// Attention is causal scaled dot-product attention (Vaswani et al. 2017,
// eq. 1) with grouped key/value heads (GQA; MQA when KVH = 1, MHA when
// KVH = H). q is (N, H·D), k and v are (N, KVH·D); query head h reads
// key/value head h / (H/KVH). For every sequence b and head h,
//
//	S = Q·Kᵀ·scale,  P = softmax(S masked to keys j ≤ i),  O = P·V
//
// with scale = 1/√D unless s.Scale is set, and the result is O, (N, H·DV)
// (v is (N, KVH·DV); DV = D unless set). Scores, softmax and the weighted
// sum run in one operation, one head at a time in a (T, T) work area, and
// P is not kept: the backward pass recomputes each head's S and P from q
// and k (the same products in the same order, so the same bits), as
// memory-efficient attention does (Rabe & Staats 2021; Dao et al. 2022,
// "FlashAttention", §3.1). The memory an attention holds between the
// passes is its inputs and output, not B·H·T² probabilities.
func Attention(q, k, v *G.Node, s AttentionShape) (*G.Node, error) {
	if s.B <= 0 || s.T <= 0 || s.H <= 0 || s.KVH <= 0 || s.D <= 0 || s.H%s.KVH != 0 || s.DV < 0 || s.Scale < 0 {
		return nil, fmt.Errorf("attention: bad shape %s", s.hashKey())
	}
	if s.Segments != nil && len(s.Segments) != s.B*s.T {
		return nil, fmt.Errorf("attention: %d segment numbers for %d×%d positions", len(s.Segments), s.B, s.T)
	}
	scale := s.Scale
	if scale == 0 {
		scale = 1 / math.Sqrt(float64(s.D))
	}
	return apply(&attentionOp{s: s, scale: scale}, q, k, v)
}

type attentionOp struct {
	pure
	s      AttentionShape
	scale  float64
	out    buffer
	grads  attentionGrads // filled by the backward pass
	starts []int          // (B·T) first key each query may see; nil without segments
}

// segmentStarts returns, for every position of a segmented shape, the first
// position of its segment within its sequence (nil without segments).
func segmentStarts(buf []int, s AttentionShape) []int {
	if s.Segments == nil {
		return nil
	}
	buf = growInts(buf, s.B*s.T)
	for b := range s.B {
		seg := s.Segments[b*s.T : (b+1)*s.T]
		start := 0
		for i := range seg {
			if i > 0 && seg[i] != seg[i-1] {
				start = i
			}
			buf[b*s.T+i] = start
		}
	}
	return buf
}

func (op *attentionOp) Arity() int { return 3 }
func (op *attentionOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(2))
}
func (op *attentionOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	return op.s.inferQKV(ds, "attention")
}
func (op *attentionOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.Attention{%s,%v}", op.s.hashKey(), op.scale)
}
func (op *attentionOp) Hashcode() uint32 { return hashOf(op) }
func (op *attentionOp) String() string   { return "Attention" }

func (op *attentionOp) Do(in ...G.Value) (G.Value, error) {
	var ts [3]*tensor.Dense
	if err := denses(ts[:], in, "attention", "q", "k", "v"); err != nil {
		return nil, err
	}
	s := op.s
	out := op.out.get(ts[0].Dtype(), s.B*s.T, s.H*s.dv())
	op.starts = segmentStarts(op.starts, s)
	switch ts[0].Dtype() {
	case tensor.Float32:
		p := areas32.get(s.T * s.T)
		attentionForward(floats[float32](ts[0], ts[1], ts[2], out), *p, s, op.starts, float32(op.scale))
		areas32.put(p)
	default:
		p := areas64.get(s.T * s.T)
		attentionForward(floats[float64](ts[0], ts[1], ts[2], out), *p, s, op.starts, op.scale)
		areas64.put(p)
	}
	return out, nil
}

// headLayout locates sequence b, query head h in q and o and its
// key/value head in k and v, with the row strides (leading dimensions).
type headLayout struct {
	qo, ko, vo, oo     int // offsets in q, k, v, o
	ldq, ldk, ldv, ldo int
}

func headOffsets(s AttentionShape, b, h int) headLayout {
	dv := s.dv()
	l := headLayout{ldq: s.H * s.D, ldk: s.KVH * s.D, ldv: s.KVH * dv, ldo: s.H * dv}
	kvh := h / (s.H / s.KVH)
	l.qo, l.ko = b*s.T*l.ldq+h*s.D, b*s.T*l.ldk+kvh*s.D
	l.vo, l.oo = b*s.T*l.ldv+kvh*dv, b*s.T*l.ldo+h*dv
	return l
}

// attentionForward computes o; t = {q, k, v, o}, p a (T, T) work area.
// With starts (segmented attention), row i of sequence b attends to keys
// starts[b·T+i]..i only.
func attentionForward[T Float](t [][]T, p []T, s AttentionShape, starts []int, scale T) {
	q, k, v, o := t[0], t[1], t[2], t[3]
	for b := range s.B {
		for h := range s.H {
			hl := headOffsets(s, b, h)
			headProbabilities(q, k, p, s, hl, b, starts, scale)
			// O = P·V   (T, DV)
			gemm(false, false, s.T, s.dv(), s.T, 1, p, s.T, v[hl.vo:], hl.ldv, 0, o[hl.oo:], hl.ldo)
		}
	}
}

// headProbabilities writes P of sequence b and the head at hl into the
// (T, T) area p: S = Q·Kᵀ·scale, then the masked softmax of each row. Row
// i may attend to keys 0..i only (from its segment's first key on when
// segmented); P is 0 elsewhere, which the backward pass relies on. Both
// passes call it, so the backward's P is the forward's, bit for bit.
func headProbabilities[T Float](q, k, p []T, s AttentionShape, hl headLayout, b int, starts []int, scale T) {
	gemm(false, true, s.T, s.T, s.D, scale, q[hl.qo:], hl.ldq, k[hl.ko:], hl.ldk, 0, p, s.T)
	parallelFor(s.T, 32, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			from := 0
			if starts != nil {
				from = starts[b*s.T+i]
				clear(p[i*s.T : i*s.T+from])
			}
			softmaxRow(p[i*s.T+from:(i+1)*s.T], i+1-from)
		}
	})
}

func (op *attentionOp) DiffWRT(int) []bool { return []bool{true, true, true} }
func (op *attentionOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	bwd, err := apply(&attentionGradOp{fwd: op}, in[0], in[1], in[2], grad)
	if err != nil {
		return nil, err
	}
	grads := make(G.Nodes, 3)
	for i, name := range []string{"dq", "dk", "dv"} {
		if grads[i], err = newPick(&op.grads, bwd, i, name, in[i].Shape()); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// attentionGrads are the three gradients of one backward pass.
type attentionGrads struct{ dq, dk, dv buffer }

func (g *attentionGrads) output(i int) *tensor.Dense {
	return [...]*tensor.Dense{g.dq.t, g.dk.t, g.dv.t}[i]
}

// attentionGradOp is the backward pass of Attention from (q, k, v, dO),
// recomputing each head's P from q and k. Per sequence and head, with dS
// the gradient of the scores:
//
//	dV += Pᵀ·dO,   dP = dO·Vᵀ,   dS = P ⊙ (dP − rowsum(P ⊙ dP)),
//	dQ = dS·K·scale,  dK += dSᵀ·Q·scale
//
// (sums over the query heads sharing a key/value head). Its value is a
// placeholder; dq, dk and dv are handed out by pick nodes.
type attentionGradOp struct {
	pure
	terminal
	fwd         *attentionOp
	placeholder buffer
}

func (op *attentionGradOp) Arity() int { return 4 }
func (op *attentionGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(2), tensorType(1))
}
func (op *attentionGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{1}, nil
}
func (op *attentionGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.AttentionGrad{%s,%v}", op.fwd.s.hashKey(), op.fwd.scale)
}
func (op *attentionGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *attentionGradOp) String() string   { return "AttentionGrad" }

func (op *attentionGradOp) Do(in ...G.Value) (G.Value, error) {
	var ts [4]*tensor.Dense
	if err := denses(ts[:], in, "attention gradient", "q", "k", "v", "dO"); err != nil {
		return nil, err
	}
	s, dt := op.fwd.s, ts[0].Dtype()
	g := &op.fwd.grads
	dq := g.dq.get(dt, s.B*s.T, s.H*s.D)
	dk := g.dk.get(dt, s.B*s.T, s.KVH*s.D)
	dv := g.dv.get(dt, s.B*s.T, s.KVH*s.dv())
	// The segments buffer holds this run's values in both passes.
	op.fwd.starts = segmentStarts(op.fwd.starts, s)
	switch dt {
	case tensor.Float32:
		p, dp := areas32.get(s.T*s.T), areas32.get(s.T*s.T)
		attentionBackward(floats[float32](ts[0], ts[1], ts[2], ts[3], dq, dk, dv), *p, *dp, s, op.fwd.starts, float32(op.fwd.scale))
		areas32.put(p)
		areas32.put(dp)
	default:
		p, dp := areas64.get(s.T*s.T), areas64.get(s.T*s.T)
		attentionBackward(floats[float64](ts[0], ts[1], ts[2], ts[3], dq, dk, dv), *p, *dp, s, op.fwd.starts, op.fwd.scale)
		areas64.put(p)
		areas64.put(dp)
	}
	return placeholder(&op.placeholder, dt), nil
}

// attentionBackward fills dq, dk, dv; t = {q, k, v, dO, dq, dk, dv}, p and
// dp (T, T) work areas.
func attentionBackward[T Float](t [][]T, ph, dp []T, s AttentionShape, starts []int, scale T) {
	q, k, v, do, dq, dk, dv := t[0], t[1], t[2], t[3], t[4], t[5], t[6]
	clear(dk)
	clear(dv)
	for b := range s.B {
		for h := range s.H {
			hl := headOffsets(s, b, h)
			headProbabilities(q, k, ph, s, hl, b, starts, scale)
			// dV += Pᵀ·dO   (T, DV)
			gemm(true, false, s.T, s.dv(), s.T, 1, ph, s.T, do[hl.oo:], hl.ldo, 1, dv[hl.vo:], hl.ldv)
			// dP = dO·Vᵀ   (T, T)
			gemm(false, true, s.T, s.T, s.dv(), 1, do[hl.oo:], hl.ldo, v[hl.vo:], hl.ldv, 0, dp, s.T)
			// dS = P ⊙ (dP − rowsum(P ⊙ dP)); P is 0 above the diagonal
			// (and before a segment's start), so is dS.
			parallelFor(s.T, 32, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					pr, dr := ph[i*s.T:i*s.T+i+1], dp[i*s.T:(i+1)*s.T]
					var dot T
					for j, pv := range pr {
						dot += pv * dr[j]
					}
					for j, pv := range pr {
						dr[j] = pv * (dr[j] - dot)
					}
					clear(dr[i+1:])
				}
			})
			// dQ = dS·K·scale,  dK += dSᵀ·Q·scale   (T, D)
			gemm(false, false, s.T, s.D, s.T, scale, dp, s.T, k[hl.ko:], hl.ldk, 0, dq[hl.qo:], hl.ldq)
			gemm(true, false, s.T, s.D, s.T, scale, dp, s.T, q[hl.qo:], hl.ldq, 1, dk[hl.ko:], hl.ldk)
		}
	}
}
