package generate

import (
	"fmt"

	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/internal/q8"
	"github.com/gotune/gotune/model"
)

// mlaNormEps is the epsilon of MLA's q_a_layernorm and kv_a_layernorm (the
// RMSNorm default in DeepSeek's code, not rms_norm_eps).
const mlaNormEps = 1e-6

// mlaDims are the widths of multi-head latent attention: Rq q_lora_rank (0
// for a plain q_proj), R kv_lora_rank, Dn qk_nope, Dr qk_rope, Dv v_head_dim.
type mlaDims struct{ Rq, R, Dn, Dr, Dv int }

// mlaShapes lists the MLA tensors of one layer with their sizes.
func (e *Engine) mlaShapes(p string, l *model.Layer) []shape {
	m, C, H := e.mla, e.C, e.H
	dqk := m.Dn + m.Dr
	var out []shape
	if m.Rq == 0 {
		out = append(out, shape{p + "q_proj", l.Wq, H * dqk * C})
	} else {
		out = append(out, shape{p + "q_a_proj", l.QA, m.Rq * C}, shape{p + "q_a_layernorm", l.QANorm, m.Rq},
			shape{p + "q_b_proj", l.QB, H * dqk * m.Rq})
	}
	return append(out, shape{p + "kv_a_proj_with_mqa", l.KVA, (m.R + m.Dr) * C}, shape{p + "kv_a_layernorm", l.KVANorm, m.R},
		shape{p + "kv_b_proj", l.KVB, H * (m.Dn + m.Dv) * m.R}, shape{p + "o_proj", l.Wo, C * H * m.Dv})
}

// moeShapes lists the mixture-of-experts tensors of one layer.
func (e *Engine) moeShapes(p string, l *model.Layer) []shape {
	d := e.w.Config.DeepSeek
	C, E, Fm := e.C, d.NRoutedExperts, d.MoeIntermediateSize
	out := []shape{{p + "mlp.gate", l.Router, E * C}}
	if d.TopkMethod == model.TopkNoAuxTC {
		out = append(out, shape{p + "mlp.gate.e_score_correction_bias", l.RouterBias, E})
	}
	if len(l.Experts) != E {
		out = append(out, shape{fmt.Sprintf("%s%d experts of %d", p, len(l.Experts), E), nil, 0})
	}
	for i, x := range l.Experts {
		q := fmt.Sprintf("%smlp.experts.%d.", p, i)
		out = append(out, shape{q + "gate_proj", x.Gate, Fm * C}, shape{q + "up_proj", x.Up, Fm * C}, shape{q + "down_proj", x.Down, C * Fm})
	}
	if d.NSharedExperts > 0 {
		fs := d.NSharedExperts * Fm
		if l.Shared == nil {
			return append(out, shape{p + "mlp.shared_experts", nil, 0})
		}
		out = append(out, shape{p + "mlp.shared_experts.gate_proj", l.Shared.Gate, fs * C},
			shape{p + "mlp.shared_experts.up_proj", l.Shared.Up, fs * C}, shape{p + "mlp.shared_experts.down_proj", l.Shared.Down, C * fs})
	}
	return out
}

// CacheBytesPerToken is the size of one position's cache over all layers:
// 2·KVH·D float32 per layer for grouped-query attention, and
// kv_lora_rank + qk_rope_head_dim under multi-head latent attention, which
// caches the latent and the shared rope key instead of per-head keys and
// values; 0 under linear-time attention, whose state has a constant size
// (StateBytes).
func (e *Engine) CacheBytesPerToken() int {
	if e.recurrent() {
		return 0 // a constant-size state (StateBytes)
	}
	per := 2 * e.KVH * e.D
	if e.mla != nil {
		per = e.mla.R + e.mla.Dr
	}
	return 4 * e.L * per
}

// mlaAttention computes o_proj(MLA) of the normalised rows ws.xb into ws.o
// (N, C), caching each row's normalised latent c_KV and rotated rope key.
// It attends in the latent space (DeepSeek-V2 §2.1.2, the absorbed form):
// with kv_b_proj's per-head blocks W^UK_h (Dn, R) and W^UV_h (Dv, R),
//
//	score_t = (q^C_h·W^UK_h)·c_t + q^R_h·k^R_t,   o_h = W^UV_h·Σ_t p_t c_t
//
// which is the same sum as expanding every cached latent into per-head
// keys and values, at the cost of R + Dr floats per cached position.
func (e *Engine) mlaAttention(l int, ly *model.Layer) error {
	ws := &e.ws
	m, N, C, H := e.mla, len(ws.rows), e.C, e.H
	dqk, dkv := m.Dn+m.Dr, m.Dn+m.Dv
	ws.q = grow(ws.q, N*H*dqk)
	if m.Rq == 0 {
		if err := e.linear(ws.q, ws.xb, ly.Wq, nil, l, "q_proj", N, C, H*dqk); err != nil {
			return err
		}
	} else {
		ws.qa = grow(ws.qa, N*m.Rq)
		if err := e.linear(ws.qa, ws.xb, ly.QA, nil, l, "q_a_proj", N, C, m.Rq); err != nil {
			return err
		}
		rmsNorm(ws.qa, ws.qa, model.F32(ly.QANorm), N, m.Rq, mlaNormEps)
		if err := e.linear(ws.q, ws.qa, ly.QB, nil, l, "q_b_proj", N, m.Rq, H*dqk); err != nil {
			return err
		}
	}
	ws.kva = grow(ws.kva, N*(m.R+m.Dr))
	if err := e.linear(ws.kva, ws.xb, ly.KVA, nil, l, "kv_a_proj_with_mqa", N, C, m.R+m.Dr); err != nil {
		return err
	}
	norm := model.F32(ly.KVANorm)
	for r, rw := range ws.rows {
		for h := range H {
			e.ropeInterleaved(ws.q[(r*H+h)*dqk+m.Dn:(r*H+h+1)*dqk], rw.pos)
		}
		kva := ws.kva[r*(m.R+m.Dr) : (r+1)*(m.R+m.Dr)]
		c := rw.st.k[l][rw.pos*m.R : (rw.pos+1)*m.R]
		rmsNorm(c, kva[:m.R], norm, 1, m.R, mlaNormEps)
		kr := rw.st.v[l][rw.pos*m.Dr : (rw.pos+1)*m.Dr]
		copy(kr, kva[m.R:])
		e.ropeInterleaved(kr, rw.pos)
	}

	kvb, err := e.kvbWeight(l, ly)
	if err != nil {
		return err
	}
	scale := float32(e.w.Config.MLASoftmaxScale())
	maxT, work := 0, 0
	for _, rw := range ws.rows {
		maxT = max(maxT, rw.pos+1)
		work += (rw.pos + 1) * (m.R + m.Dr)
	}
	ws.att = grow(ws.att, N*H*m.Dv)
	workers := workersFor(N*H, work*H*4)
	per := maxT + 2*m.R // scores, absorbed query, latent sum
	if kvb == nil {
		per += dkv * m.R // a head's block of kv_b_proj, widened
	}
	ws.scores = grow(ws.scores, workers*per)
	parallel(N*H, workers, func(w, lo, hi int) {
		buf := ws.scores[w*per : (w+1)*per]
		block, widened := buf[maxT+2*m.R:], -1
		// Head-major order: a worker widens each head's block once for
		// all the rows it serves.
		for j := lo; j < hi; j++ {
			h, r := j/N, j%N
			var wh []float32 // W^UK_h then W^UV_h: (Dn + Dv, R)
			switch {
			case kvb != nil:
				wh = kvb[h*dkv*m.R : (h+1)*dkv*m.R]
			case widened == h:
				wh = block[:dkv*m.R]
			default:
				kvbRows(block, ly, h*dkv, (h+1)*dkv)
				wh, widened = block[:dkv*m.R], h
			}
			rw := ws.rows[r]
			T := rw.pos + 1
			q := ws.q[(r*H+h)*dqk : (r*H+h+1)*dqk]
			s, qc, cs := buf[:T], buf[maxT:maxT+m.R], buf[maxT+m.R:maxT+2*m.R]
			// qc (R) = W^UKᵀ_h·q^C_h
			gemv(true, m.Dn, m.R, 1, wh, m.R, q[:m.Dn], 0, qc)
			// s (T) = C·qc + K^R·q^R, scaled
			dotRows(s, qc, rw.st.k[l], m.R, m.R, T)
			for t := range s {
				var d float32
				kr := rw.st.v[l][t*m.Dr : (t+1)*m.Dr]
				for i, v := range q[m.Dn:] {
					d += v * kr[i]
				}
				s[t] = (s[t] + d) * scale
			}
			softmax(s)
			// cs (R) = Cᵀ·s;  o_h (Dv) = W^UV_h·cs
			gemv(true, T, m.R, 1, rw.st.k[l], m.R, s, 0, cs)
			gemv(false, m.Dv, m.R, 1, wh[m.Dn*m.R:], m.R, cs, 0, ws.att[(r*H+h)*m.Dv:(r*H+h+1)*m.Dv])
		}
	})
	return e.linear(ws.o, ws.att, ly.Wo, nil, l, "o_proj", N, H*m.Dv, C)
}

// kvbWeight is kv_b_proj's weight as attention reads it: the float32
// base, or with an adapter on kv_b_proj the merged W + s·B·A (in a
// scratch buffer, a bfloat16 or Q8_0 base widened into it first), since
// attention in the latent space uses the weight itself rather than the
// module's outputs. It returns nil for a bfloat16 or Q8_0 base without
// such an adapter: attention widens it a head at a time (kvbHead).
func (e *Engine) kvbWeight(l int, ly *model.Layer) ([]float32, error) {
	base, _ := ly.KVB.Data().([]float32)
	var a, b []float32
	var r int
	var scale float32
	ok := false
	if e.adapter != nil {
		a, b, r, scale, ok = e.adapter.LowRank(l, "kv_b_proj")
	}
	if !ok {
		return base, nil
	}
	out, in := model.MatrixShape(ly.KVB)
	if r <= 0 || len(a) != r*in || len(b) != out*r {
		return nil, fmt.Errorf("generate: adapter for layer %d kv_b_proj: rank %d with a of %d and b of %d values, want %d and %d",
			l, r, len(a), len(b), r*in, out*r)
	}
	e.ws.kvb = grow(e.ws.kvb, out*in)
	if base != nil {
		copy(e.ws.kvb, base)
	} else {
		kvbRows(e.ws.kvb, ly, 0, out)
	}
	blas.Gemm(false, false, out, in, r, scale, b, a, 1, e.ws.kvb) // (out, in) += s·(out, r)·(r, in)
	return e.ws.kvb, nil
}

// kvbRows widens rows [lo, hi) of a kv_b_proj held in bfloat16 or Q8_0
// into dst.
func kvbRows(dst []float32, ly *model.Layer, lo, hi int) {
	_, in := model.MatrixShape(ly.KVB)
	switch d := ly.KVB.Data().(type) {
	case []uint16:
		bf16.Widen(dst[:(hi-lo)*in], d[lo*in:hi*in])
	case []q8.Block:
		nb := in / q8.BlockLen
		q8.Dequantize(dst[:(hi-lo)*in], d[lo*nb:hi*nb])
	default:
		panic(fmt.Sprintf("generate: kv_b_proj of %T passed New's checks", d))
	}
}

// ropeInterleaved rotates the pairs (2i, 2i+1) of x (Dr values) by
// pos·θ_i: DeepSeek's layout of the rotary query and key parts.
func (e *Engine) ropeInterleaved(x []float32, pos int) {
	half := len(e.invFreq)
	cos, sin := e.cos[pos*half:(pos+1)*half], e.sin[pos*half:(pos+1)*half]
	for i := range half {
		a, b := x[2*i], x[2*i+1]
		x[2*i] = a*cos[i] - b*sin[i]
		x[2*i+1] = b*cos[i] + a*sin[i]
	}
}

// moe computes DeepSeekMoE on the normalised rows ws.xb into ws.o: each
// row's router choice (ops.Router, in float64), each expert on the rows
// routed to it only, weighted, plus the shared experts; adapters apply to
// experts.E.gate_proj … and shared_experts.gate_proj ….
func (e *Engine) moe(l int, ly *model.Layer) error {
	ws := &e.ws
	rt := e.router
	N, C, E, K := len(ws.rows), e.C, rt.Experts, rt.TopK
	ws.logitsE = grow(ws.logitsE, N*E)
	matmulT(ws.logitsE, ws.xb, model.F32(ly.Router), N, C, E)
	m := &ws.moe
	var bias []float64
	if ly.RouterBias != nil {
		m.bias = grow64(m.bias, E)
		for i, v := range model.F32(ly.RouterBias) {
			m.bias[i] = float64(v)
		}
		bias = m.bias
	}
	m.z, m.s = grow64(m.z, E), grow64(m.s, E)
	m.wts = grow64(m.wts, N*K)
	if cap(m.idx) < N*K {
		m.idx = make([]int, N*K)
	}
	idx, wts := m.idx[:N*K], m.wts
	if len(m.rows) < E {
		m.rows = make([][]int, E)
	}
	rows := m.rows[:E]
	for ex := range rows {
		rows[ex] = rows[ex][:0]
	}
	for n := range N {
		for i, v := range ws.logitsE[n*E : (n+1)*E] {
			m.z[i] = float64(v)
		}
		rt.Route(m.z, bias, m.s, idx[n*K:(n+1)*K], wts[n*K:(n+1)*K], &m.route)
		for j, ex := range idx[n*K : (n+1)*K] {
			rows[ex] = append(rows[ex], n*K+j)
		}
	}
	for len(m.names) < E {
		q := fmt.Sprintf("experts.%d.", len(m.names))
		m.names = append(m.names, [3]string{q + "gate_proj", q + "up_proj", q + "down_proj"})
	}
	clear(ws.o[:N*C])
	for ex, slots := range rows {
		mr := len(slots)
		if mr == 0 {
			continue
		}
		xw := ly.Experts[ex]
		F := xw.Gate.Shape()[0]
		ws.ex = grow(ws.ex, mr*C)
		ws.hb = grow(ws.hb, mr*F)
		ws.hb2 = grow(ws.hb2, mr*F)
		ws.eo = grow(ws.eo, mr*C)
		for i, sl := range slots {
			n := sl / K
			copy(ws.ex[i*C:(i+1)*C], ws.xb[n*C:(n+1)*C])
		}
		names := m.names[ex]
		matmulT(ws.hb, ws.ex, model.F32(xw.Gate), mr, C, F)
		if err := e.lowRank(ws.hb, ws.ex, l, names[0], mr, C, F); err != nil {
			return err
		}
		matmulT(ws.hb2, ws.ex, model.F32(xw.Up), mr, C, F)
		if err := e.lowRank(ws.hb2, ws.ex, l, names[1], mr, C, F); err != nil {
			return err
		}
		swiglu(ws.hb, ws.hb2)
		matmulT(ws.eo, ws.hb, model.F32(xw.Down), mr, F, C)
		if err := e.lowRank(ws.eo, ws.hb, l, names[2], mr, F, C); err != nil {
			return err
		}
		for i, sl := range slots {
			n, w := sl/K, float32(wts[sl])
			o, src := ws.o[n*C:(n+1)*C], ws.eo[i*C:(i+1)*C]
			for c, v := range src {
				o[c] += w * v
			}
		}
	}
	if sh := ly.Shared; sh != nil {
		F := sh.Gate.Shape()[0]
		ws.hb = grow(ws.hb, N*F)
		ws.hb2 = grow(ws.hb2, N*F)
		ws.eo = grow(ws.eo, N*C)
		if err := e.linear(ws.hb, ws.xb, sh.Gate, nil, l, "shared_experts.gate_proj", N, C, F); err != nil {
			return err
		}
		if err := e.linear(ws.hb2, ws.xb, sh.Up, nil, l, "shared_experts.up_proj", N, C, F); err != nil {
			return err
		}
		swiglu(ws.hb, ws.hb2)
		if err := e.linear(ws.eo, ws.hb, sh.Down, nil, l, "shared_experts.down_proj", N, F, C); err != nil {
			return err
		}
		addTo(ws.o[:N*C], ws.eo)
	}
	return nil
}

// grow64 is grow for float64 buffers.
func grow64(b []float64, n int) []float64 {
	if cap(b) < n {
		return make([]float64, n)
	}
	return b[:n]
}
