package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// GAUShape fixes the layout of GAU's inputs.
type GAUShape struct {
	B, T  int // sequences and positions; rows are N = B·T
	E     int // expansion width of U and V (e·d in the paper)
	S     int // shared width of Z, queries and keys (s in the paper)
	Chunk int // chunk length C of the mixed form
}

// GAU is the attention core of the Gated Attention Unit in its mixed
// chunked form (Hua et al. 2022, "Transformer Quality in Linear Time",
// §2 eq. 1–5 and §3.2, FLASH), between the layer's projections. From the
// pre-activations u, v (N, E) and z (N, S) and the per-dimension scales
// gamma and offsets beta (4·S: rows quad-query, quad-key, linear-query,
// linear-key), with φ = SiLU:
//
//	U = φ(u), V = φ(v), Z = φ(z),   Q_j = Z ⊙ γ_j + β_j   (j = 0…3)
//	q = RoPE(Q_0), k = RoPE(Q_1), q' = Q_2, k' = Q_3
//	A_t = Σ_{s ∈ chunk(t), s ≤ t} relu(q_t·k_s / C)² V_s  +  q'_tᵀ Σ_{s < start(chunk(t))} k'_s V_sᵀ / C
//	out = U ⊙ A
//
// Quadratic (ReLU² of the scaled scores) inside each chunk of C positions,
// linear (running sum of k' Vᵀ, the causal cumulative sum of the paper's
// code 8) across chunks, so time and memory grow linearly in T. The 1/n of
// the paper's relu²(QKᵀ/n) is the chunk length C, a constant, so that a
// position's output does not depend on how long the batch is (1/T would
// make causal training disagree with decoding). Rotary position embeddings
// (Su et al. 2021) rotate the quadratic part's queries and keys in the
// half-split layout; the linear part has none (positions reach it through
// causality and chunk order). When T ≤ C there is one chunk and GAU is the
// paper's quadratic GAU (FLASH-Quad) with the same scaling.
func GAU(u, v, z, gamma, beta *G.Node, s GAUShape, invFreq []float64) (*G.Node, error) {
	if s.B <= 0 || s.T <= 0 || s.E <= 0 || s.S <= 0 || s.S%2 != 0 || s.Chunk <= 0 || len(invFreq) != s.S/2 {
		return nil, fmt.Errorf("gau: bad shape %+v with %d inverse frequencies", s, len(invFreq))
	}
	return apply(&gauOp{s: s, invFreq: invFreq}, u, v, z, gamma, beta)
}

type gauOp struct {
	pure
	s       GAUShape
	invFreq []float64
	out     buffer
	grads   gauGrads
	st32    gauState[float32]
	st64    gauState[float64]
}

// gauState keeps a forward pass's activations for the backward pass.
type gauState[T Float] struct {
	u, v, z        []T // φ of the inputs: (N, E), (N, E), (N, S)
	qq, kq, ql, kl []T // (N, S) each; qq and kq rotated
	a              []T // (N, E) attention output before gating
	cos, sin       []T // (T, S/2)
	ok             bool

	dA, dqq, dkq, dql, dkl []T // backward scratch, reused across steps
}

func (op *gauOp) Arity() int { return 5 }
func (op *gauOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(1), tensorType(1), tensorType(2))
}
func (op *gauOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2, 2, 1, 1)
	if err != nil {
		return nil, err
	}
	N := op.s.B * op.s.T
	ue, zs, gb := tensor.Shape{N, op.s.E}, tensor.Shape{N, op.s.S}, tensor.Shape{4 * op.s.S}
	if !s[0].Eq(ue) || !s[1].Eq(ue) || !s[2].Eq(zs) || !s[3].Eq(gb) || !s[4].Eq(gb) {
		return nil, fmt.Errorf("gau: u %v, v %v, z %v, gamma %v, beta %v; want %v, %v, %v, %v, %v", s[0], s[1], s[2], s[3], s[4], ue, ue, zs, gb, gb)
	}
	return ue.Clone(), nil
}
func (op *gauOp) WriteHash(h hash.Hash) { fmt.Fprintf(h, "gotune.GAU{%+v,%v}", op.s, op.invFreq) }
func (op *gauOp) Hashcode() uint32      { return hashOf(op) }
func (op *gauOp) String() string        { return "GAU" }

func (op *gauOp) Do(in ...G.Value) (G.Value, error) {
	var ts [5]*tensor.Dense
	if err := denses(ts[:], in, "gau", "u", "v", "z", "gamma", "beta"); err != nil {
		return nil, err
	}
	out := op.out.get(ts[0].Dtype(), op.s.B*op.s.T, op.s.E)
	switch ts[0].Dtype() {
	case tensor.Float32:
		gauForward(floats[float32](ts[0], ts[1], ts[2], ts[3], ts[4], out), &op.st32, op.s, op.invFreq)
	default:
		gauForward(floats[float64](ts[0], ts[1], ts[2], ts[3], ts[4], out), &op.st64, op.s, op.invFreq)
	}
	return out, nil
}

// siluT is x·σ(x).
func siluT[T Float](x T) T { return x / (1 + T(math.Exp(-float64(x)))) }

// siluGradT is σ(x)·(1 + x·(1 − σ(x))).
func siluGradT[T Float](x T) T {
	sg := 1 / (1 + T(math.Exp(-float64(x))))
	return sg * (1 + x*(1-sg))
}

// allChunks lists the row ranges [lo, hi) of every chunk of every sequence.
func (s GAUShape) allChunks() [][2]int {
	var out [][2]int
	for b := range s.B {
		s.chunks(b, func(_, lo, hi int) { out = append(out, [2]int{lo, hi}) })
	}
	return out
}

// chunks calls fn for each chunk [lo, hi) of sequence b's rows.
func (s GAUShape) chunks(b int, fn func(c, lo, hi int)) {
	for c, lo := 0, 0; lo < s.T; c, lo = c+1, lo+s.Chunk {
		fn(c, b*s.T+lo, b*s.T+min(lo+s.Chunk, s.T))
	}
}

// gauForward computes out and keeps the activations; t = {u, v, z, gamma,
// beta, out}.
func gauForward[T Float](t [][]T, st *gauState[T], s GAUShape, invFreq []float64) {
	u, v, z, gamma, beta, out := t[0], t[1], t[2], t[3], t[4], t[5]
	N, E, S, half := s.B*s.T, s.E, s.S, s.S/2
	st.u, st.v, st.a = grow(st.u, N*E), grow(st.v, N*E), grow(st.a, N*E)
	st.z, st.qq, st.kq = grow(st.z, N*S), grow(st.qq, N*S), grow(st.kq, N*S)
	st.ql, st.kl = grow(st.ql, N*S), grow(st.kl, N*S)
	st.cos, st.sin = grow(st.cos, s.T*half), grow(st.sin, s.T*half)
	for p := range s.T {
		for i, f := range invFreq {
			sn, cs := math.Sincos(float64(p) * f)
			st.cos[p*half+i], st.sin[p*half+i] = T(cs), T(sn)
		}
	}
	parallelFor(N, 64, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			for j := n * E; j < (n+1)*E; j++ {
				st.u[j], st.v[j] = siluT(u[j]), siluT(v[j])
			}
			zr := st.z[n*S : (n+1)*S]
			for d := range S {
				zr[d] = siluT(z[n*S+d])
			}
			for j, dst := range [][]T{st.qq, st.kq, st.ql, st.kl} {
				r := dst[n*S : (n+1)*S]
				for d, x := range zr {
					r[d] = x*gamma[j*S+d] + beta[j*S+d]
				}
			}
			p := n % s.T
			for _, r := range [][]T{st.qq[n*S : (n+1)*S], st.kq[n*S : (n+1)*S]} {
				ropeRow(r, st.cos[p*half:(p+1)*half], st.sin[p*half:(p+1)*half], false)
			}
		}
	})
	inv := 1 / T(s.Chunk)
	// Quadratic part, chunks in parallel: A = W·V, W = relu(q·kᵀ/C)²
	// causal inside the chunk.
	chunks := s.allChunks()
	parallelFor(len(chunks), 1, func(lo, hi int) {
		W := make([]T, s.Chunk*s.Chunk)
		for _, ch := range chunks[lo:hi] {
			r0, cl := ch[0], ch[1]-ch[0]
			gemm(false, true, cl, cl, S, inv, st.qq[r0*S:], S, st.kq[r0*S:], S, 0, W, cl)
			for i := range cl {
				row := W[i*cl : (i+1)*cl]
				for j := range row {
					if j > i || row[j] < 0 {
						row[j] = 0
					} else {
						row[j] *= row[j]
					}
				}
			}
			gemm(false, false, cl, E, cl, 1, W, cl, st.v[r0*E:], E, 0, st.a[r0*E:], E)
		}
	})
	// Linear part, chunks in order per sequence: A += q'·M/C, M += k'ᵀ·V.
	parallelFor(s.B, 1, func(lo, hi int) {
		M := make([]T, S*E)
		for b := lo; b < hi; b++ {
			clear(M)
			s.chunks(b, func(_, r0, r1 int) {
				cl := r1 - r0
				gemm(false, false, cl, E, S, inv, st.ql[r0*S:], S, M, E, 1, st.a[r0*E:], E)
				gemm(true, false, S, E, cl, 1, st.kl[r0*S:], S, st.v[r0*E:], E, 1, M, E)
			})
		}
	})
	for j := range out {
		out[j] = st.u[j] * st.a[j]
	}
	st.ok = true
}

// ropeRow rotates one half-split row by the given angles (or back, by −θ).
func ropeRow[T Float](x, cos, sin []T, inverse bool) {
	half := len(cos)
	x1, x2 := x[:half], x[half:]
	for i := range half {
		c, sn := cos[i], sin[i]
		if inverse {
			sn = -sn
		}
		a, b := x1[i], x2[i]
		x1[i] = a*c - b*sn
		x2[i] = b*c + a*sn
	}
}

func (op *gauOp) DiffWRT(int) []bool { return []bool{true, true, true, true, true} }
func (op *gauOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	bwd, err := apply(&gauGradOp{fwd: op}, in[0], in[1], in[2], in[3], out, grad)
	if err != nil {
		return nil, err
	}
	grads := make(G.Nodes, 5)
	for i, name := range []string{"du", "dv", "dz", "dgamma", "dbeta"} {
		if grads[i], err = newPick(&op.grads, bwd, i, name, in[i].Shape()); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// gauGrads are the five gradients of one backward pass.
type gauGrads struct{ du, dv, dz, dgamma, dbeta buffer }

func (g *gauGrads) output(i int) *tensor.Dense {
	return [...]*tensor.Dense{g.du.t, g.dv.t, g.dz.t, g.dgamma.t, g.dbeta.t}[i]
}

// gauGradOp is GAU's backward pass from (u, v, z, gamma, out, dOut), using the forward
// pass's activations. With dA = dOut ⊙ U, per chunk (W = relu(X)², X the
// scaled scores, masked):
//
//	dU = dOut ⊙ A,   dV += Wᵀ dA,   dX = (dA Vᵀ) ⊙ 2 relu(X),
//	dq = dX k / C,   dk = dXᵀ q / C,   dq' = dA Mᵀ / C,
//	dk'_s = G V_s,   dV_s += Gᵀ k'_s,   G = Σ_{later chunks} q'ᵀ dA / C
//
// then the rotations are undone, and through Q_j = Z ⊙ γ_j + β_j and the
// SiLUs to the inputs.
type gauGradOp struct {
	pure
	terminal
	fwd         *gauOp
	placeholder buffer
}

func (op *gauGradOp) Arity() int { return 6 }
func (op *gauGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2), tensorType(1), tensorType(2), tensorType(2), tensorType(1))
}
func (op *gauGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{1}, nil
}
func (op *gauGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.GAUGrad{%+v,%v}", op.fwd.s, op.fwd.invFreq)
}
func (op *gauGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *gauGradOp) String() string   { return "GAUGrad" }

func (op *gauGradOp) Do(in ...G.Value) (G.Value, error) {
	var ts [6]*tensor.Dense
	if err := denses(ts[:], in, "gau gradient", "u", "v", "z", "gamma", "out", "dOut"); err != nil {
		return nil, err
	}
	s, dt := op.fwd.s, ts[0].Dtype()
	N := s.B * s.T
	g := &op.fwd.grads
	du, dv, dz := g.du.get(dt, N, s.E), g.dv.get(dt, N, s.E), g.dz.get(dt, N, s.S)
	dgamma, dbeta := g.dgamma.get(dt, 4*s.S), g.dbeta.get(dt, 4*s.S)
	switch dt {
	case tensor.Float32:
		if !op.fwd.st32.ok {
			return nil, fmt.Errorf("gau gradient: forward pass has not run")
		}
		gauBackward(floats[float32](ts[0], ts[1], ts[2], ts[3], ts[5], du, dv, dz, dgamma, dbeta), &op.fwd.st32, s)
	default:
		if !op.fwd.st64.ok {
			return nil, fmt.Errorf("gau gradient: forward pass has not run")
		}
		gauBackward(floats[float64](ts[0], ts[1], ts[2], ts[3], ts[5], du, dv, dz, dgamma, dbeta), &op.fwd.st64, s)
	}
	return placeholder(&op.placeholder, dt), nil
}

// gauBackward fills the gradients; t = {u, v, z, gamma, dOut, du, dv, dz,
// dgamma, dbeta}.
func gauBackward[T Float](t [][]T, st *gauState[T], s GAUShape) {
	rawU, rawV, rawZ, gamma := t[0], t[1], t[2], t[3]
	dOut, du, dv, dz, dgamma, dbeta := t[4], t[5], t[6], t[7], t[8], t[9]
	N, E, S, half := s.B*s.T, s.E, s.S, s.S/2
	inv := 1 / T(s.Chunk)
	st.dA, st.dqq, st.dkq = grow(st.dA, N*E), grow(st.dqq, N*S), grow(st.dkq, N*S)
	st.dql, st.dkl = grow(st.dql, N*S), grow(st.dkl, N*S)
	dA, dqq, dkq, dql, dkl := st.dA, st.dqq, st.dkq, st.dql, st.dkl
	for j := range dA {
		dA[j] = dOut[j] * st.u[j]
		du[j] = dOut[j] * st.a[j] // times φ′(u), applied below
	}
	// Quadratic part, chunks in parallel (each writes its own rows).
	chunks := s.allChunks()
	parallelFor(len(chunks), 1, func(lo, hi int) {
		X := make([]T, s.Chunk*s.Chunk)
		W := make([]T, s.Chunk*s.Chunk)
		for _, ch := range chunks[lo:hi] {
			r0, cl := ch[0], ch[1]-ch[0]
			gemm(false, true, cl, cl, S, inv, st.qq[r0*S:], S, st.kq[r0*S:], S, 0, X, cl)
			for i := range cl {
				for j := range cl {
					x := X[i*cl+j]
					if j > i || x < 0 {
						X[i*cl+j], W[i*cl+j] = 0, 0
					} else {
						W[i*cl+j] = x * x
					}
				}
			}
			// dV = Wᵀ dA;  dW = dA Vᵀ;  dX = dW ⊙ 2 relu(X) (in W's place).
			gemm(true, false, cl, E, cl, 1, W, cl, dA[r0*E:], E, 0, dv[r0*E:], E)
			gemm(false, true, cl, cl, E, 1, dA[r0*E:], E, st.v[r0*E:], E, 0, W, cl)
			for j := range cl * cl {
				W[j] *= 2 * X[j] // X is 0 where masked or negative
			}
			gemm(false, false, cl, S, cl, inv, W, cl, st.kq[r0*S:], S, 0, dqq[r0*S:], S)
			gemm(true, false, cl, S, cl, inv, W, cl, st.qq[r0*S:], S, 0, dkq[r0*S:], S)
		}
	})
	// Linear part, per sequence: forward over chunks for dq' = dA Mᵀ / C,
	// then backward over chunks with Gm = Σ_{later chunks} q'ᵀ dA / C.
	parallelFor(s.B, 1, func(lo, hi int) {
		M := make([]T, S*E)
		for b := lo; b < hi; b++ {
			clear(M)
			var starts [][2]int
			s.chunks(b, func(_, r0, r1 int) {
				starts = append(starts, [2]int{r0, r1})
				cl := r1 - r0
				gemm(false, true, cl, S, E, inv, dA[r0*E:], E, M, E, 0, dql[r0*S:], S)
				gemm(true, false, S, E, cl, 1, st.kl[r0*S:], S, st.v[r0*E:], E, 1, M, E)
			})
			Gm := M
			clear(Gm)
			for c := len(starts) - 1; c >= 0; c-- {
				r0, r1 := starts[c][0], starts[c][1]
				cl := r1 - r0
				gemm(false, true, cl, S, E, 1, st.v[r0*E:], E, Gm, E, 0, dkl[r0*S:], S)
				gemm(false, false, cl, E, S, 1, st.kl[r0*S:], S, Gm, E, 1, dv[r0*E:], E)
				gemm(true, false, S, E, cl, inv, st.ql[r0*S:], S, dA[r0*E:], E, 1, Gm, E)
			}
		}
	})
	// Undo the rotations, then through Q_j = Z ⊙ γ_j + β_j.
	clear(dgamma)
	clear(dbeta)
	for n := range N {
		p := n % s.T
		cs, sn := st.cos[p*half:(p+1)*half], st.sin[p*half:(p+1)*half]
		ropeRow(dqq[n*S:(n+1)*S], cs, sn, true)
		ropeRow(dkq[n*S:(n+1)*S], cs, sn, true)
		zr, dzr := st.z[n*S:(n+1)*S], dz[n*S:(n+1)*S]
		clear(dzr)
		for j, dp := range [][]T{dqq, dkq, dql, dkl} {
			r := dp[n*S : (n+1)*S]
			for d, x := range r {
				dgamma[j*S+d] += x * zr[d]
				dbeta[j*S+d] += x
				dzr[d] += x * gamma[j*S+d]
			}
		}
	}
	// Through the SiLUs: φ′ from the stored φ and the inputs.
	for j := range du {
		du[j] *= siluGradT(rawU[j])
		dv[j] *= siluGradT(rawV[j])
	}
	for j := range dz {
		dz[j] *= siluGradT(rawZ[j])
	}
}
