package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// LinearAttention is causal linear attention (Katharopoulos et al. 2020,
// "Transformers are RNNs", eq. 6 with the feature map of eq. 7,
// φ(x) = elu(x) + 1) with grouped key/value heads. q is (N, H·D), k and v
// are (N, KVH·D) (s.DV and s.Scale must be 0); query head h reads
// key/value head h / (H/KVH). For every sequence and head, at position i,
//
//	o_i = φ(q_i)ᵀ S_i / φ(q_i)ᵀ z_i,   S_i = Σ_{j≤i} φ(k_j) v_jᵀ,   z_i = Σ_{j≤i} φ(k_j)
//
// computed by running sums over positions (eq. 8–9), so the T×T matrix of
// the quadratic form never exists: time and memory grow linearly in T.
// φ > 0, so the denominator is positive. No positional encoding enters:
// positions reach the model only through causality. The result is
// (N, H·D).
func LinearAttention(q, k, v *G.Node, s AttentionShape) (*G.Node, error) {
	if s.B <= 0 || s.T <= 0 || s.H <= 0 || s.KVH <= 0 || s.D <= 0 || s.H%s.KVH != 0 || s.DV != 0 || s.Scale != 0 {
		return nil, fmt.Errorf("linear attention: bad shape %+v", s)
	}
	return apply(&linAttnOp{s: s}, q, k, v)
}

type linAttnOp struct {
	pure
	s     AttentionShape
	den32 []float32 // (B, H, T) denominators φ(q_i)ᵀ z_i of the last forward pass
	den64 []float64
	out   buffer
	grads attentionGrads
}

func (op *linAttnOp) Arity() int { return 3 }
func (op *linAttnOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(2))
}
func (op *linAttnOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2, 2)
	if err != nil {
		return nil, err
	}
	N := op.s.B * op.s.T
	q, kv := tensor.Shape{N, op.s.H * op.s.D}, tensor.Shape{N, op.s.KVH * op.s.D}
	if !s[0].Eq(q) || !s[1].Eq(kv) || !s[2].Eq(kv) {
		return nil, fmt.Errorf("linear attention: q %v, k %v, v %v; want %v, %v, %v", s[0], s[1], s[2], q, kv, kv)
	}
	return q.Clone(), nil
}
func (op *linAttnOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.LinearAttention{%+v}", op.s) }
func (op *linAttnOp) Hashcode() uint32      { return hashOf(op) }
func (op *linAttnOp) String() string        { return "LinearAttention" }

func (op *linAttnOp) Do(in ...G.Value) (G.Value, error) {
	var ts [3]*tensor.Dense
	for i, name := range []string{"q", "k", "v"} {
		t, err := dense(in[i], "linear attention "+name)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	s := op.s
	out := op.out.get(ts[0].Dtype(), s.B*s.T, s.H*s.D)
	switch ts[0].Dtype() {
	case tensor.Float32:
		op.den32 = grow(op.den32, s.B*s.H*s.T)
		linAttnForward(floats[float32](ts[0], ts[1], ts[2], out), op.den32, s)
	default:
		op.den64 = grow(op.den64, s.B*s.H*s.T)
		linAttnForward(floats[float64](ts[0], ts[1], ts[2], out), op.den64, s)
	}
	return out, nil
}

// eluPlus1 is φ(x) = elu(x) + 1 (x + 1 for x > 0, eˣ otherwise).
func eluPlus1[T Float](x T) T {
	if x > 0 {
		return x + 1
	}
	return T(math.Exp(float64(x)))
}

// eluPlus1Grad is φ′(x): 1 for x > 0, eˣ = φ(x) otherwise.
func eluPlus1Grad[T Float](x T) T {
	if x > 0 {
		return 1
	}
	return T(math.Exp(float64(x)))
}

// linAttnForward computes o and the denominators; t = {q, k, v, o}. Work
// is split over (sequence, key/value head) pairs, each with its own
// running state S (D×D) and z (D).
func linAttnForward[T Float](t [][]T, den []T, s AttentionShape) {
	q, k, v, o := t[0], t[1], t[2], t[3]
	D, group := s.D, s.H/s.KVH
	ldq, ldk := s.H*D, s.KVH*D
	parallelFor(s.B*s.KVH, 1, func(lo, hi int) {
		S, z, a := make([]T, D*D), make([]T, D), make([]T, D)
		for bk := lo; bk < hi; bk++ {
			b, kvh := bk/s.KVH, bk%s.KVH
			clear(S)
			clear(z)
			for i := range s.T {
				n := b*s.T + i
				kr, vr := k[n*ldk+kvh*D:n*ldk+(kvh+1)*D], v[n*ldk+kvh*D:n*ldk+(kvh+1)*D]
				// S += φ(k_i) v_iᵀ,  z += φ(k_i)
				for d, x := range kr {
					f := eluPlus1(x)
					z[d] += f
					row := S[d*D : (d+1)*D]
					for e, vv := range vr {
						row[e] += f * vv
					}
				}
				for h := kvh * group; h < (kvh+1)*group; h++ {
					qr, or := q[n*ldq+h*D:n*ldq+(h+1)*D], o[n*ldq+h*D:n*ldq+(h+1)*D]
					clear(or)
					var dn T
					for d, x := range qr {
						f := eluPlus1(x)
						a[d] = f
						dn += f * z[d]
					}
					for d, f := range a {
						row := S[d*D : (d+1)*D]
						for e, sv := range row {
							or[e] += f * sv
						}
					}
					for e := range or {
						or[e] /= dn
					}
					den[(b*s.H+h)*s.T+i] = dn
				}
			}
		}
	})
}

func (op *linAttnOp) DiffWRT(int) []bool { return []bool{true, true, true} }
func (op *linAttnOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	bwd, err := apply(&linAttnGradOp{fwd: op}, in[0], in[1], in[2], out, grad)
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

// linAttnGradOp is LinearAttention's backward pass from (q, k, v, o, dO).
// With a_i = φ(q_i), b_j = φ(k_j), n_i = S_iᵀ a_i and d_i = a_iᵀ z_i the
// numerator and denominator, and g_i = dO_i:
//
//	dn_i = g_i / d_i,   dd_i = −g_i·o_i / d_i,   da_i = S_i dn_i + z_i dd_i,
//	R_j = Σ_{i≥j} a_i dn_iᵀ,   r_j = Σ_{i≥j} a_i dd_i,
//	db_j = R_j v_j + r_j,   dv_j = R_jᵀ b_j
//
// (summed over the query heads sharing a key/value head): one forward
// sweep for dq and one backward sweep of the reversed running sums R, r
// for dk and dv, both linear in T. dq = da·φ′(q), dk = db·φ′(k).
type linAttnGradOp struct {
	pure
	terminal
	fwd         *linAttnOp
	placeholder buffer
}

func (op *linAttnGradOp) Arity() int { return 5 }
func (op *linAttnGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(2), tensorType(2), tensorType(1))
}
func (op *linAttnGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{1}, nil
}
func (op *linAttnGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.LinearAttentionGrad{%+v}", op.fwd.s)
}
func (op *linAttnGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *linAttnGradOp) String() string   { return "LinearAttentionGrad" }

func (op *linAttnGradOp) Do(in ...G.Value) (G.Value, error) {
	var ts [5]*tensor.Dense
	for i, name := range []string{"q", "k", "v", "o", "dO"} {
		t, err := dense(in[i], "linear attention gradient "+name)
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	s, dt := op.fwd.s, ts[0].Dtype()
	g := &op.fwd.grads
	dq := g.dq.get(dt, s.B*s.T, s.H*s.D)
	dk := g.dk.get(dt, s.B*s.T, s.KVH*s.D)
	dv := g.dv.get(dt, s.B*s.T, s.KVH*s.D)
	switch dt {
	case tensor.Float32:
		if len(op.fwd.den32) != s.B*s.H*s.T {
			return nil, fmt.Errorf("linear attention gradient: forward pass has not run")
		}
		linAttnBackward(floats[float32](ts[0], ts[1], ts[2], ts[3], ts[4], dq, dk, dv), op.fwd.den32, s)
	default:
		if len(op.fwd.den64) != s.B*s.H*s.T {
			return nil, fmt.Errorf("linear attention gradient: forward pass has not run")
		}
		linAttnBackward(floats[float64](ts[0], ts[1], ts[2], ts[3], ts[4], dq, dk, dv), op.fwd.den64, s)
	}
	return placeholder(&op.placeholder, dt), nil
}

// linAttnBackward fills dq, dk, dv; t = {q, k, v, o, dO, dq, dk, dv}.
func linAttnBackward[T Float](t [][]T, den []T, s AttentionShape) {
	q, k, v, o, do, dq, dk, dv := t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]
	D, group := s.D, s.H/s.KVH
	ldq, ldk := s.H*D, s.KVH*D
	parallelFor(s.B*s.KVH, 1, func(lo, hi int) {
		S, z, dn := make([]T, D*D), make([]T, D), make([]T, D)
		for bk := lo; bk < hi; bk++ {
			b, kvh := bk/s.KVH, bk%s.KVH
			// dn_i and dd_i of query head h at row n.
			grads := func(n, h int) T {
				i := n - b*s.T
				d := den[(b*s.H+h)*s.T+i]
				gr, or := do[n*ldq+h*D:n*ldq+(h+1)*D], o[n*ldq+h*D:n*ldq+(h+1)*D]
				var go_ T
				for e, g := range gr {
					dn[e] = g / d
					go_ += g * or[e]
				}
				return -go_ / d
			}
			// Forward sweep: dq.
			clear(S)
			clear(z)
			for i := range s.T {
				n := b*s.T + i
				kr, vr := k[n*ldk+kvh*D:n*ldk+(kvh+1)*D], v[n*ldk+kvh*D:n*ldk+(kvh+1)*D]
				for d, x := range kr {
					f := eluPlus1(x)
					z[d] += f
					row := S[d*D : (d+1)*D]
					for e, vv := range vr {
						row[e] += f * vv
					}
				}
				for h := kvh * group; h < (kvh+1)*group; h++ {
					dd := grads(n, h)
					qr, dqr := q[n*ldq+h*D:n*ldq+(h+1)*D], dq[n*ldq+h*D:n*ldq+(h+1)*D]
					for d, x := range qr {
						row := S[d*D : (d+1)*D]
						da := z[d] * dd
						for e, sv := range row {
							da += sv * dn[e]
						}
						dqr[d] = da * eluPlus1Grad(x)
					}
				}
			}
			// Backward sweep: dk, dv from R (reusing S) and r (reusing z).
			R, r := S, z
			clear(R)
			clear(r)
			for i := s.T - 1; i >= 0; i-- {
				n := b*s.T + i
				for h := kvh * group; h < (kvh+1)*group; h++ {
					dd := grads(n, h)
					qr := q[n*ldq+h*D : n*ldq+(h+1)*D]
					for d, x := range qr {
						a := eluPlus1(x)
						r[d] += a * dd
						row := R[d*D : (d+1)*D]
						for e, g := range dn {
							row[e] += a * g
						}
					}
				}
				kr, vr := k[n*ldk+kvh*D:n*ldk+(kvh+1)*D], v[n*ldk+kvh*D:n*ldk+(kvh+1)*D]
				dkr, dvr := dk[n*ldk+kvh*D:n*ldk+(kvh+1)*D], dv[n*ldk+kvh*D:n*ldk+(kvh+1)*D]
				clear(dvr)
				for d, x := range kr {
					f := eluPlus1(x)
					row := R[d*D : (d+1)*D]
					db := r[d]
					for e, rv := range row {
						db += rv * vr[e]
						dvr[e] += rv * f
					}
					dkr[d] = db * eluPlus1Grad(x)
				}
			}
		}
	})
}
