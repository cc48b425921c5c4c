package generate

import (
	"fmt"
	"math"

	"github.com/gotune/gotune/model"
)

// This file holds the decoders of gotune's linear-time attention options
// (model.Config.Attention): causal linear attention and the Gated
// Attention Unit. Their per-sequence state has a constant size, whatever
// the position, instead of a key/value cache that grows with it:
//
//   - linear attention (Katharopoulos et al. 2020, eq. 8–9, the RNN view):
//     per layer and key/value head S = Σ φ(k) vᵀ (D×D) and z = Σ φ(k) (D),
//     held in State.k[l] as KVH·D·D values then KVH·D;
//   - GAU (Hua et al. 2022, FLASH's mixed chunk form): per layer the
//     running sum over finished chunks M = Σ k' Vᵀ (s×E), then the current
//     chunk's rotated keys k (C×s) and linear keys k' (C×s) in State.k[l],
//     and its values V (C×E) in State.v[l]. When a chunk is complete, the
//     next position folds it into M.
//
// A row at position 0 clears its layer's state, so Reset and Truncate(0)
// need no work here; truncating to any other earlier position cannot undo
// a running sum and is refused (State.Truncate).

// recurrent reports a model whose state has a constant size.
func (e *Engine) recurrent() bool { return e.linAttn || e.gau != nil }

// gauDims are the Gated Attention Unit's widths.
type gauDims struct {
	E, S, Chunk int
	invFreq     []float64
}

// stateWidths are the sizes of one layer's constant state (k and v).
func (e *Engine) stateWidths() (kw, vw int) {
	if e.linAttn {
		return e.KVH * e.D * (e.D + 1), 0
	}
	g := e.gau
	return g.S*g.E + 2*g.Chunk*g.S, g.Chunk * g.E
}

// reserveRecurrent allocates a recurrent state's constant-size storage.
func (s *State) reserveRecurrent(kw, vw int) {
	for l := range s.k {
		if len(s.k[l]) != kw || len(s.v[l]) != vw {
			s.k[l], s.v[l] = make([]float32, kw), make([]float32, vw)
		}
	}
}

// segments returns the [lo, hi) row ranges of ws.rows that belong to one
// state each (rows of a state are consecutive, in position order).
func (e *Engine) segments() [][2]int {
	ws := &e.ws
	ws.segs = ws.segs[:0]
	for r := range ws.rows {
		if r == 0 || ws.rows[r].st != ws.rows[r-1].st {
			ws.segs = append(ws.segs, [2]int{r, r + 1})
		} else {
			ws.segs[len(ws.segs)-1][1] = r + 1
		}
	}
	return ws.segs
}

// phi is elu(x) + 1, the feature map of Katharopoulos et al. eq. 7.
func phi(x float32) float32 {
	if x > 0 {
		return x + 1
	}
	return float32(math.Exp(float64(x)))
}

// linearAttention computes o_proj(linear attention) of the normalised rows
// ws.xb into ws.o, updating each state's running sums: for every row in
// order, S += φ(k) vᵀ, z += φ(k), then o = Sᵀφ(q) / φ(q)ᵀz per query head.
// No RoPE: the training graph has none either.
func (e *Engine) linearAttention(l int, ly *model.Layer) error {
	ws := &e.ws
	N, C, H, KVH, D := len(ws.rows), e.C, e.H, e.KVH, e.D
	HD, KD := H*D, KVH*D
	if err := e.linear3(l, ly, N, C, HD, KD); err != nil {
		return err
	}
	group := H / KVH
	segs := e.segments()
	items := len(segs) * KVH
	parallel(items, workersFor(items, N*HD*D*4), func(_, lo, hi int) {
		a := make([]float32, D)
		for it := lo; it < hi; it++ {
			seg, kvh := segs[it/KVH], it%KVH
			for r := seg[0]; r < seg[1]; r++ {
				rw := ws.rows[r]
				st := rw.st.k[l]
				S, z := st[kvh*D*D:(kvh+1)*D*D], st[KVH*D*D+kvh*D:KVH*D*D+(kvh+1)*D]
				if rw.pos == 0 {
					clear(S)
					clear(z)
				}
				kr, vr := ws.k[r*KD+kvh*D:r*KD+(kvh+1)*D], ws.v[r*KD+kvh*D:r*KD+(kvh+1)*D]
				for d, x := range kr {
					f := phi(x)
					z[d] += f
					row := S[d*D : (d+1)*D]
					for j, v := range vr {
						row[j] += f * v
					}
				}
				for h := kvh * group; h < (kvh+1)*group; h++ {
					var den float32
					for d, x := range ws.q[r*HD+h*D : r*HD+(h+1)*D] {
						a[d] = phi(x)
						den += a[d] * z[d]
					}
					o := ws.att[r*HD+h*D : r*HD+(h+1)*D]
					gemv(true, D, D, 1/den, S, D, a, 0, o) // o = Sᵀa / den
				}
			}
		}
	})
	return e.linear(ws.o, ws.att, ly.Wo, nil, l, "o_proj", N, HD, C)
}

// linear3 computes the q, k, v projections of ws.xb.
func (e *Engine) linear3(l int, ly *model.Layer, N, C, HD, KD int) error {
	ws := &e.ws
	if err := e.linear(ws.q, ws.xb, ly.Wq, ly.Bq, l, "q_proj", N, C, HD); err != nil {
		return err
	}
	if err := e.linear(ws.k, ws.xb, ly.Wk, ly.Bk, l, "k_proj", N, C, KD); err != nil {
		return err
	}
	return e.linear(ws.v, ws.xb, ly.Wv, ly.Bv, l, "v_proj", N, C, KD)
}

// siluInPlace overwrites x with x·σ(x).
func siluInPlace(x []float32) {
	for i, v := range x {
		x[i] = v / (1 + expf(-v))
	}
}

// gauLayer computes one Gated Attention Unit of the normalised rows ws.xb
// into ws.o: U = silu(x Wu), V = silu(x Wv), Z = silu(x Wz), the four
// scaled and offset copies of Z (quad queries and keys rotated by RoPE),
// A = Σ_{chunk, ≤ t} relu(q·k/C)² V + q'·M / C, and o_proj(U ⊙ A).
func (e *Engine) gauLayer(l int, ly *model.Layer) error {
	ws := &e.ws
	g := e.gau
	N, C, E, S, Cc := len(ws.rows), e.C, g.E, g.S, g.Chunk
	half := S / 2
	ws.hb = grow(ws.hb, N*E)
	ws.hb2 = grow(ws.hb2, N*E)
	ws.gz = grow(ws.gz, N*S)
	ws.gqk = grow(ws.gqk, N*4*S)
	ws.att = grow(ws.att, N*E)
	u, v, z, qk := ws.hb, ws.hb2, ws.gz, ws.gqk
	if err := e.linear(u, ws.xb, ly.Wu, nil, l, "u_proj", N, C, E); err != nil {
		return err
	}
	if err := e.linear(v, ws.xb, ly.Wv, nil, l, "v_proj", N, C, E); err != nil {
		return err
	}
	if err := e.linear(z, ws.xb, ly.Wz, nil, l, "z_proj", N, C, S); err != nil {
		return err
	}
	siluInPlace(u[:N*E])
	siluInPlace(v[:N*E])
	siluInPlace(z[:N*S])
	gamma, beta := model.F32(ly.QKGamma), model.F32(ly.QKBeta)
	for r := range N {
		zr := z[r*S : (r+1)*S]
		for j := range 4 {
			out := qk[(r*4+j)*S : (r*4+j+1)*S]
			for d, x := range zr {
				out[d] = x*gamma[j*S+d] + beta[j*S+d]
			}
			if j < 2 {
				cs, sn := ws.gcos[r*half:(r+1)*half], ws.gsin[r*half:(r+1)*half]
				x1, x2 := out[:half], out[half:]
				for i := range half {
					a, b := x1[i], x2[i]
					x1[i] = a*cs[i] - b*sn[i]
					x2[i] = b*cs[i] + a*sn[i]
				}
			}
		}
	}
	inv := 1 / float32(Cc)
	segs := e.segments()
	parallel(len(segs), workersFor(len(segs), N*(Cc*(S+E)+S*E)*2), func(_, lo, hi int) {
		w := make([]float32, Cc)
		for sg := lo; sg < hi; sg++ {
			for r := segs[sg][0]; r < segs[sg][1]; r++ {
				rw := ws.rows[r]
				st, sv := rw.st.k[l], rw.st.v[l]
				M, kc, klc := st[:S*E], st[S*E:S*E+Cc*S], st[S*E+Cc*S:]
				c := rw.pos % Cc
				switch {
				case rw.pos == 0:
					clear(M)
				case c == 0:
					// The previous chunk is complete: M += k'ᵀ V over it.
					for j := range Cc {
						kl, vj := klc[j*S:(j+1)*S], sv[j*E:(j+1)*E]
						for d, x := range kl {
							row := M[d*E : (d+1)*E]
							for i, vv := range vj {
								row[i] += x * vv
							}
						}
					}
				}
				q := qk[(r*4)*S : (r*4+1)*S]
				copy(kc[c*S:(c+1)*S], qk[(r*4+1)*S:(r*4+2)*S])
				copy(klc[c*S:(c+1)*S], qk[(r*4+3)*S:(r*4+4)*S])
				copy(sv[c*E:(c+1)*E], v[r*E:(r+1)*E])
				// Quadratic part over the chunk so far, linear part from M.
				s := w[:c+1]
				dotRows(s, q, kc, S, S, c+1)
				for j, x := range s {
					x = max(x*inv, 0)
					s[j] = x * x
				}
				a := ws.att[r*E : (r+1)*E]
				gemv(true, c+1, E, 1, sv, E, s, 0, a)
				gemv(true, S, E, inv, M, E, qk[(r*4+2)*S:(r*4+3)*S], 1, a)
				for i := range a {
					a[i] *= u[r*E+i]
				}
			}
		}
	})
	return e.linear(ws.o, ws.att, ly.Wo, nil, l, "o_proj", N, E, C)
}

// gauRope fills the rotation tables of GAU's shared width for every row.
func (e *Engine) gauRope() {
	ws := &e.ws
	half := e.gau.S / 2
	N := len(ws.rows)
	ws.gcos = grow(ws.gcos, N*half)
	ws.gsin = grow(ws.gsin, N*half)
	for r, rw := range ws.rows {
		for i, f := range e.gau.invFreq {
			sn, cs := math.Sincos(float64(rw.pos) * f)
			ws.gcos[r*half+i], ws.gsin[r*half+i] = float32(cs), float32(sn)
		}
	}
}

// gauShapes lists a GAU layer's weights and their sizes.
func (e *Engine) gauShapes(p string, l *model.Layer) []shape {
	C, E, S := e.C, e.gau.E, e.gau.S
	return []shape{{p + "input_layernorm", l.AttnNorm, C}, {p + "u_proj", l.Wu, E * C}, {p + "v_proj", l.Wv, E * C},
		{p + "z_proj", l.Wz, S * C}, {p + "qk_gamma", l.QKGamma, 4 * S}, {p + "qk_beta", l.QKBeta, 4 * S},
		{p + "o_proj", l.Wo, C * E}}
}

// errTruncate is the refusal of a truncation a running sum cannot undo.
func errTruncate(n, to int) string {
	return fmt.Sprintf("generate: a linear-time attention state of length %d holds running sums and cannot be truncated to %d (only to 0 or its length)", n, to)
}

// StateBytes is the size of one sequence's constant state under
// linear-time attention (0 for a key/value cache, which grows by
// CacheBytesPerToken instead).
func (e *Engine) StateBytes() int {
	if !e.recurrent() {
		return 0
	}
	kw, vw := e.stateWidths()
	return 4 * e.L * (kw + vw)
}
