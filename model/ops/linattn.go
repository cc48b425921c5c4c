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
	return op.s.inferQKV(ds, "linear attention")
}
func (op *linAttnOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.LinearAttention{%+v}", op.s) }
func (op *linAttnOp) Hashcode() uint32      { return hashOf(op) }
func (op *linAttnOp) String() string        { return "LinearAttention" }

func (op *linAttnOp) Do(in ...G.Value) (G.Value, error) {
	var ts [3]*tensor.Dense
	if err := denses(ts[:], in, "linear attention", "q", "k", "v"); err != nil {
		return nil, err
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

// linChunk is the block length of the chunked kernels: inside a block the
// masked (L×L) products run as matrix products, across blocks the running
// sums carry the past (the same sums as position by position).
const linChunk = 64

// phiRows writes φ of rows [r0, r0+n) of x's head block (width D at
// column off, row stride ld) into dst (n×D), and φ′ into grad when given.
func phiRows[T Float](dst, grad, x []T, r0, n, off, ld, D int) {
	for i := range n {
		row := x[(r0+i)*ld+off : (r0+i)*ld+off+D]
		for d, v := range row {
			dst[i*D+d] = eluPlus1(v)
			if grad != nil {
				grad[i*D+d] = eluPlus1Grad(v)
			}
		}
	}
}

// linAttnForward computes o and the denominators; t = {q, k, v, o}. Work
// is split over (sequence, key/value head) pairs, each with its own
// running state S (D×D) and z (D), in blocks of linChunk positions: with
// A = φ(Q), B = φ(K) of the block and P = A Bᵀ masked to j ≤ i,
//
//	num = P V + A S,   den = rowsum(P) + A z,   then S += Bᵀ V, z += colsum(B).
func linAttnForward[T Float](t [][]T, den []T, s AttentionShape) {
	q, k, v, o := t[0], t[1], t[2], t[3]
	D, group := s.D, s.H/s.KVH
	ldq, ldk := s.H*D, s.KVH*D
	parallelFor(s.B*s.KVH, 1, func(lo, hi int) {
		L := linChunk
		S, z := make([]T, D*D), make([]T, D)
		A, Bk, P := make([]T, L*D), make([]T, L*D), make([]T, L*L)
		for bk := lo; bk < hi; bk++ {
			b, kvh := bk/s.KVH, bk%s.KVH
			clear(S)
			clear(z)
			for c0 := 0; c0 < s.T; c0 += L {
				n, r0 := min(L, s.T-c0), b*s.T+c0
				phiRows(Bk, nil, k, r0, n, kvh*D, ldk, D)
				vb := v[r0*ldk+kvh*D:]
				for h := kvh * group; h < (kvh+1)*group; h++ {
					phiRows(A, nil, q, r0, n, h*D, ldq, D)
					gemm(false, true, n, n, D, 1, A, D, Bk, D, 0, P, n)
					ob := o[r0*ldq+h*D:]
					for i := range n {
						clear(P[i*n+i+1 : (i+1)*n])
						var dn T
						for _, p := range P[i*n : i*n+i+1] {
							dn += p
						}
						for d, a := range A[i*D : (i+1)*D] {
							dn += a * z[d]
						}
						den[(b*s.H+h)*s.T+c0+i] = dn
					}
					gemm(false, false, n, D, n, 1, P, n, vb, ldk, 0, ob, ldq)
					gemm(false, false, n, D, D, 1, A, D, S, D, 1, ob, ldq)
					for i := range n {
						inv := 1 / den[(b*s.H+h)*s.T+c0+i]
						row := ob[i*ldq : i*ldq+D]
						for e := range row {
							row[e] *= inv
						}
					}
				}
				gemm(true, false, D, D, n, 1, Bk, D, vb, ldk, 1, S, D)
				for i := range n {
					for d, f := range Bk[i*D : (i+1)*D] {
						z[d] += f
					}
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
	if err := denses(ts[:], in, "linear attention gradient", "q", "k", "v", "o", "dO"); err != nil {
		return nil, err
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

// linAttnBackward fills dq, dk, dv; t = {q, k, v, o, dO, dq, dk, dv}. In
// blocks as the forward pass, with dN = dO / den and dd = −rowsum(dO ⊙ O)
// / den per row, dP = (dN Vᵀ + dd 1ᵀ) masked to j ≤ i:
//
//	forward over blocks:   dA = dP B + dN Sᵀ + dd zᵀ
//	backward over blocks:  dB = dPᵀ A + V Rᵀ + 1 rᵀ,   dV = Pᵀ dN + B R,
//	                       then R += Aᵀ dN, r += Aᵀ dd
//
// (R, r the running sums of later blocks), and dq = dA ⊙ φ′(q),
// dk = dB ⊙ φ′(k).
func linAttnBackward[T Float](t [][]T, den []T, s AttentionShape) {
	q, k, v, o, do, dq, dk, dv := t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]
	D, group := s.D, s.H/s.KVH
	ldq, ldk := s.H*D, s.KVH*D
	parallelFor(s.B*s.KVH, 1, func(lo, hi int) {
		L := linChunk
		S, z := make([]T, D*D), make([]T, D)
		A, Ag, Bk, Bg := make([]T, L*D), make([]T, L*D), make([]T, L*D), make([]T, L*D)
		P, dP, dN, dd := make([]T, L*L), make([]T, L*L), make([]T, L*D), make([]T, L)
		dA, dB := make([]T, L*D), make([]T, L*D)
		// grads fills dN, dd and dP (masked) of head h for the block at
		// rows r0.. (n rows), and A, Ag (φ and φ′ of its queries).
		grads := func(b, h, c0, r0, n int, vb []T) {
			phiRows(A, Ag, q, r0, n, h*D, ldq, D)
			for i := range n {
				dnm := den[(b*s.H+h)*s.T+c0+i]
				gr, or := do[(r0+i)*ldq+h*D:(r0+i)*ldq+(h+1)*D], o[(r0+i)*ldq+h*D:(r0+i)*ldq+(h+1)*D]
				var g T
				for e, x := range gr {
					dN[i*D+e] = x / dnm
					g += x * or[e]
				}
				dd[i] = -g / dnm
			}
			gemm(false, true, n, n, D, 1, dN, D, vb, ldk, 0, dP, n)
			for i := range n {
				row := dP[i*n : (i+1)*n]
				for j := range i + 1 {
					row[j] += dd[i]
				}
				clear(row[i+1:])
			}
		}
		for bk := lo; bk < hi; bk++ {
			b, kvh := bk/s.KVH, bk%s.KVH
			// Forward over blocks: dq.
			clear(S)
			clear(z)
			for c0 := 0; c0 < s.T; c0 += L {
				n, r0 := min(L, s.T-c0), b*s.T+c0
				phiRows(Bk, nil, k, r0, n, kvh*D, ldk, D)
				vb := v[r0*ldk+kvh*D:]
				for h := kvh * group; h < (kvh+1)*group; h++ {
					grads(b, h, c0, r0, n, vb)
					gemm(false, false, n, D, n, 1, dP, n, Bk, D, 0, dA, D)
					gemm(false, true, n, D, D, 1, dN, D, S, D, 1, dA, D)
					for i := range n {
						dqr := dq[(r0+i)*ldq+h*D : (r0+i)*ldq+(h+1)*D]
						for d := range D {
							dqr[d] = (dA[i*D+d] + dd[i]*z[d]) * Ag[i*D+d]
						}
					}
				}
				gemm(true, false, D, D, n, 1, Bk, D, vb, ldk, 1, S, D)
				for i := range n {
					for d, f := range Bk[i*D : (i+1)*D] {
						z[d] += f
					}
				}
			}
			// Backward over blocks: dk, dv, with R, r in S, z's place.
			R, r := S, z
			clear(R)
			clear(r)
			last := (s.T - 1) / L * L
			for c0 := last; c0 >= 0; c0 -= L {
				n, r0 := min(L, s.T-c0), b*s.T+c0
				phiRows(Bk, Bg, k, r0, n, kvh*D, ldk, D)
				vb := v[r0*ldk+kvh*D:]
				dkb, dvb := dk[r0*ldk+kvh*D:], dv[r0*ldk+kvh*D:]
				// Terms of later blocks: dB = V Rᵀ + 1 rᵀ, dV = B R.
				gemm(false, true, n, D, D, 1, vb, ldk, R, D, 0, dB, D)
				for i := range n {
					for d := range D {
						dB[i*D+d] += r[d]
					}
				}
				gemm(false, false, n, D, D, 1, Bk, D, R, D, 0, dvb, ldk)
				for h := kvh * group; h < (kvh+1)*group; h++ {
					grads(b, h, c0, r0, n, vb)
					gemm(false, true, n, n, D, 1, A, D, Bk, D, 0, P, n)
					for i := range n {
						clear(P[i*n+i+1 : (i+1)*n])
					}
					gemm(true, false, n, D, n, 1, dP, n, A, D, 1, dB, D)
					gemm(true, false, n, D, n, 1, P, n, dN, D, 1, dvb, ldk)
					gemm(true, false, D, D, n, 1, A, D, dN, D, 1, R, D)
					for i := range n {
						for d, a := range A[i*D : (i+1)*D] {
							r[d] += a * dd[i]
						}
					}
				}
				for i := range n {
					dkr := dkb[i*ldk : i*ldk+D]
					for d := range D {
						dkr[d] = dB[i*D+d] * Bg[i*D+d]
					}
				}
			}
		}
	})
}
