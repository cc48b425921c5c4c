// Package generate decodes text from a LLaMA-architecture model with a
// key/value cache, in plain Go loops and BLAS calls over the same weight
// tensors the training graph uses. It never builds a gorgonia graph or a
// tape, so it is the fast path for sampling (self-instruct, PPO rollouts,
// the HTTP server) and reads adapters live through the LowRank interface.
//
// The forward pass follows Hugging Face's LlamaForCausalLM: RMSNorm (Zhang &
// Sennrich 2019), rotary position embeddings in the rotate-half layout (Su et
// al. 2021, eq. 34), grouped-query attention (Ainslie et al. 2023) and a
// SwiGLU MLP (Shazeer 2020); for Qwen3, queries and keys are RMS-normalised
// per head before RoPE (Qwen3Attention's q_norm and k_norm); for DeepSeek
// (V2, V3) attention is multi-head latent attention, computed in the latent
// space with a cache of latents and rope keys, and the feed-forward of MoE
// layers is routed experts plus shared experts (engine_deepseek.go); with
// gotune's linear-time attention (causal linear attention, Gated Attention
// Units) a sequence's state is a set of running sums of constant size
// instead of a cache (engine_linear.go).
// Dimension letters follow the model package:
// C hidden, F MLP hidden, V vocabulary, L layers, H heads, KVH key/value
// heads, D head dimension, N rows (tokens) in one forward call.
//
// May import: model/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never data/..., finetune, train, lora, a stage or an
// application.
package generate

import (
	"fmt"
	"math"
	"sync"

	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/internal/q8"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/ops"
	"gorgonia.org/tensor"
)

// LowRank supplies a low-rank update of a linear module while decoding:
// for input rows x the module's output gains scale·(x·aᵀ)·bᵀ, with a the
// (r, in) and b the (out, r) row-major factors (LoRA, Hu et al. 2021, eq. 3).
// ok is false when the module has no update. The factors are read on every
// forward call, so an adapter that is being trained is used as it stands.
type LowRank interface {
	LowRank(layer int, module string) (a, b []float32, r int, scale float32, ok bool)
}

// Engine runs the decoder forward pass with a key/value cache. Forward calls
// are serialised: one Engine can be shared by goroutines, which then take
// turns (the Scheduler batches them instead).
type Engine struct {
	w   *model.Weights
	tok Tokenizer

	C, F, V, L, H, KVH, D int // D is 0 under multi-head latent attention (see mla)
	eps                   float32
	maxPos                int // 0 when the config sets no limit

	invFreq []float64
	mla     *mlaDims   // DeepSeek's multi-head latent attention; nil otherwise
	linAttn bool       // causal linear attention (engine_linear.go)
	gau     *gauDims   // Gated Attention Unit layers; nil otherwise
	router  ops.Router // DeepSeek's mixture-of-experts gate (MoE layers)

	mu      sync.Mutex
	adapter LowRank
	cos     []float32 // (P, D/2) rotary tables for positions < P, grown on demand
	sin     []float32
	ws      workspace
	calls   uint64 // forward calls so far

	poolMu sync.Mutex
	pool   []*State // states given back, for reuse
}

// New returns an engine over w. tok may be nil, in which case generation
// works on token ids only (no stop strings, no streamed text).
func New(w *model.Weights, tok Tokenizer) (*Engine, error) {
	c := w.Config
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if len(w.Layers) != c.NumHiddenLayers {
		return nil, fmt.Errorf("generate: weights have %d layers, config says %d", len(w.Layers), c.NumHiddenLayers)
	}
	e := &Engine{
		w: w, tok: tok,
		C: c.HiddenSize, F: c.IntermediateSize, V: c.VocabSize, L: c.NumHiddenLayers,
		H: c.NumAttentionHeads, KVH: c.KVHeads(), D: c.HeadDim(),
		eps: float32(c.RMSNormEps), maxPos: c.MaxPositionEmbeddings,
		invFreq: c.InvFreq(), router: c.Router(),
	}
	if c.MLA() {
		d := c.DeepSeek
		e.mla = &mlaDims{R: d.KVLoraRank, Dn: d.QKNopeHeadDim, Dr: d.QKRopeHeadDim, Dv: d.VHeadDim}
		if d.QLoraRank != nil {
			e.mla.Rq = *d.QLoraRank
		}
		e.D = 0 // no plain heads
	}
	e.linAttn = c.LinearAttention()
	if c.GAU() {
		e.gau = &gauDims{E: c.IntermediateSize, S: c.GAUSharedDim, Chunk: c.GAUChunk, invFreq: c.GAUInvFreq()}
	}
	if err := e.checkShapes(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	return e, nil
}

// shape is a weight and the number of values it must hold.
type shape struct {
	name string
	t    *tensor.Dense
	n    int
}

func (e *Engine) checkShapes() error {
	C, F, V, HD, KD := e.C, e.F, e.V, e.H*e.D, e.KVH*e.D
	w := e.w
	checks := []shape{{"embed_tokens", w.Embed, V * C}, {"lm_head", w.LMHead, V * C}, {"norm", w.Norm, C}}
	for i, l := range w.Layers {
		p := fmt.Sprintf("layer %d ", i)
		if e.gau != nil {
			checks = append(checks, e.gauShapes(p, &l)...)
			continue
		}
		checks = append(checks,
			shape{p + "input_layernorm", l.AttnNorm, C}, shape{p + "post_attention_layernorm", l.MLPNorm, C})
		if e.mla != nil {
			checks = append(checks, e.mlaShapes(p, &l)...)
		} else {
			checks = append(checks,
				shape{p + "q_proj", l.Wq, HD * C}, shape{p + "k_proj", l.Wk, KD * C}, shape{p + "v_proj", l.Wv, KD * C},
				shape{p + "o_proj", l.Wo, C * HD})
		}
		if w.Config.IsMoELayer(i) {
			checks = append(checks, e.moeShapes(p, &l)...)
		} else {
			checks = append(checks, shape{p + "gate_proj", l.Gate, F * C}, shape{p + "up_proj", l.Up, F * C},
				shape{p + "down_proj", l.Down, C * F})
		}
		if w.Config.AttentionBias {
			checks = append(checks, shape{p + "q_proj.bias", l.Bq, HD}, shape{p + "k_proj.bias", l.Bk, KD}, shape{p + "v_proj.bias", l.Bv, KD})
		}
		if w.Config.QKNorm() {
			checks = append(checks, shape{p + "q_norm", l.QNorm, e.D}, shape{p + "k_norm", l.KNorm, e.D})
		} else if l.QNorm != nil || l.KNorm != nil {
			return fmt.Errorf("%sq_norm/k_norm present, but model_type %q does not use them", p, w.Config.ModelType)
		}
	}
	// The matrices read through weightMulT, the embedding's rows and
	// kv_b_proj (kvbWeight) may be held in bfloat16 or Q8_0 (model.Weights.
	// StoreBF16, StoreQ8); everything else is read as float32.
	widened := map[*tensor.Dense]bool{w.Embed: true, w.LMHead: true}
	for _, l := range w.Layers {
		for _, t := range []*tensor.Dense{l.Wq, l.Wk, l.Wv, l.Wo, l.Wu, l.Wz, l.QA, l.QB, l.KVA, l.KVB, l.Gate, l.Up, l.Down} {
			widened[t] = true
		}
		if l.Shared != nil {
			widened[l.Shared.Gate], widened[l.Shared.Up], widened[l.Shared.Down] = true, true, true
		}
	}
	for _, c := range checks {
		if c.t == nil {
			return fmt.Errorf("%s is missing", c.name)
		}
		n := 0
		switch d := c.t.Data().(type) {
		case []float32:
			n = len(d)
		case []uint16:
			if !widened[c.t] {
				return fmt.Errorf("%s is held in bfloat16, which the engine reads only for embeddings and linear modules' weights", c.name)
			}
			n = len(d)
		case []q8.Block:
			if !widened[c.t] {
				return fmt.Errorf("%s is held in Q8_0, which the engine reads only for embeddings and linear modules' weights", c.name)
			}
			n = len(d) * q8.BlockLen
		default:
			return fmt.Errorf("%s is %v, not float32, bfloat16 or Q8_0", c.name, c.t.Dtype())
		}
		if n != c.n {
			return fmt.Errorf("%s has %d values, want %d", c.name, n, c.n)
		}
	}
	return nil
}

// Config is the architecture the engine runs.
func (e *Engine) Config() model.Config { return e.w.Config }

// Weights are the base weights the engine reads (not a copy).
func (e *Engine) Weights() *model.Weights { return e.w }

// Tokenizer is the tokenizer given to New (possibly nil).
func (e *Engine) Tokenizer() Tokenizer { return e.tok }

// SetAdapter makes every later forward call add a's low-rank updates
// (nil removes them).
func (e *Engine) SetAdapter(a LowRank) {
	e.mu.Lock()
	e.adapter = a
	e.mu.Unlock()
}

// MaxPositions is the longest sequence the model accepts
// (max_position_embeddings; 0 when unlimited).
func (e *Engine) MaxPositions() int { return e.maxPos }

// State is the key/value cache of one sequence: the keys and values of
// every position fed so far, per layer. Under multi-head latent attention
// k holds the normalised latent c_KV (n, kv_lora_rank) and v the rotated
// rope key (n, qk_rope_head_dim): the per-head keys and values are never
// stored (DeepSeek-V2 §2.1.2).
type State struct {
	k, v      [][]float32 // per layer (n, KVH·D), capacity grown on demand
	n         int
	recurrent bool   // constant-size running sums (engine_linear.go), not a cache
	mark      uint64 // the forward call that last fed it, to catch a state fed twice
}

// NewState returns an empty sequence state.
func (e *Engine) NewState() *State {
	return &State{k: make([][]float32, e.L), v: make([][]float32, e.L), recurrent: e.recurrent()}
}

// Len is the number of positions held.
func (s *State) Len() int { return s.n }

// Reset empties the state, keeping its memory for reuse.
func (s *State) Reset() { s.n = 0 }

// Truncate drops positions from n on (n ≤ Len), e.g. to rewind a shared
// prompt prefix. The constant-size state of linear-time attention
// (engine_linear.go) can only be truncated to 0 or its length.
func (s *State) Truncate(n int) {
	if n < 0 || n > s.n {
		panic(fmt.Sprintf("generate: truncate state of length %d to %d", s.n, n))
	}
	if s.recurrent && n != 0 && n != s.n {
		panic(errTruncate(s.n, n))
	}
	s.n = n
}

// reserve makes room for positions up to total (keys of width kd, values
// of width vd).
func (s *State) reserve(total, kd, vd int) {
	for l := range s.k {
		if cap(s.k[l]) < total*kd || cap(s.v[l]) < total*vd {
			c := max(total, 2*cap(s.k[l])/kd)
			nk, nv := make([]float32, c*kd), make([]float32, c*vd)
			copy(nk, s.k[l][:s.n*kd])
			copy(nv, s.v[l][:s.n*vd])
			s.k[l], s.v[l] = nk, nv
		}
		s.k[l] = s.k[l][:total*kd]
		s.v[l] = s.v[l][:total*vd]
	}
}

// ropeTables grows the rotary cos/sin tables to cover positions < p:
// angle(pos, i) = pos·θ_i with θ_i the (possibly Llama-3-rescaled) inverse
// frequency of pair i (RoFormer, Su et al. 2021, eq. 15).
func (e *Engine) ropeTables(p int) {
	half := len(e.invFreq)
	have := len(e.cos) / half
	if have >= p {
		return
	}
	p = max(p, 2*have, 64)
	if e.maxPos > 0 {
		p = max(min(p, e.maxPos), have)
	}
	cos, sin := make([]float32, p*half), make([]float32, p*half)
	copy(cos, e.cos)
	copy(sin, e.sin)
	m := e.w.Config.RopeMagnitude() // YaRN scales both; 1 otherwise
	for pos := have; pos < p; pos++ {
		for i, f := range e.invFreq {
			a := float64(pos) * f
			cos[pos*half+i] = float32(m * math.Cos(a))
			sin[pos*half+i] = float32(m * math.Sin(a))
		}
	}
	e.cos, e.sin = cos, sin
}

// workspace holds the activations of one forward call, reused across calls
// so decoding allocates nothing per token once warm.
type workspace struct {
	rows                   []row
	x, xb, q, k, v, att, o []float32
	hb, hb2, lr, lrOut     []float32
	scores                 []float32 // per worker (maxT)
	hn, logits             []float32
	outRows                []int
	qa, kva, kvb           []float32 // MLA: compressed queries, kv_a output, kv_b with its adapter merged
	logitsE, ex, eo        []float32 // MoE: router logits, an expert's rows in and out
	moe                    moeScratch
	segs                   [][2]int  // linear-time attention: each state's rows
	gz, gqk, gcos, gsin    []float32 // GAU: Z, its four scaled copies, rotation tables
}

// moeScratch is the routing state of one MoE layer's forward, reused by
// the next so that decoding allocates nothing per token.
type moeScratch struct {
	z, s, bias, wts []float64 // a row's router logits and scores, the correction bias, the chosen weights
	idx             []int     // chosen experts, (N·K)
	rows            [][]int   // per expert: the n·K + j slots routed to it
	route           ops.RouteScratch
	names           [][3]string // per expert: its adapter module names
}

type row struct {
	st  *State
	pos int
}

func grow(b []float32, n int) []float32 {
	if cap(b) < n {
		return make([]float32, n)
	}
	return b[:n]
}

// Forward appends feeds[i] to states[i] and returns, for every state fed at
// least one token, the logits (V) after its last fed token; logits[i] is nil
// where feeds[i] is empty. Prefill (many tokens of one sequence), decoding
// (one token each of many) and any mix run as one batch of rows. The
// returned slices are reused by the next Forward call.
func (e *Engine) Forward(states []*State, feeds [][]int) ([][]float32, error) {
	if len(states) != len(feeds) {
		return nil, fmt.Errorf("generate: %d states but %d feeds", len(states), len(feeds))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.forward(states, feeds, false)
}

// ForwardAll is Forward returning logits for every fed token: out[i] holds
// len(feeds[i]) rows of V logits, row-major.
func (e *Engine) ForwardAll(states []*State, feeds [][]int) ([][]float32, error) {
	if len(states) != len(feeds) {
		return nil, fmt.Errorf("generate: %d states but %d feeds", len(states), len(feeds))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.forward(states, feeds, true)
}

func (e *Engine) forward(states []*State, feeds [][]int, all bool) ([][]float32, error) {
	C, F, H, KVH, D, V := e.C, e.F, e.H, e.KVH, e.D, e.V
	HD, KD := H*D, KVH*D
	ws := &e.ws

	// Lay out the rows: every fed token of every state, in order.
	ws.rows = ws.rows[:0]
	ws.outRows = ws.outRows[:0]
	e.calls++
	maxEnd := 0
	for i, f := range feeds {
		if len(f) == 0 {
			continue
		}
		st := states[i]
		if st == nil || len(st.k) != e.L {
			return nil, fmt.Errorf("generate: state %d does not belong to this engine", i)
		}
		if st.mark == e.calls {
			return nil, fmt.Errorf("generate: state %d is fed twice in one call", i)
		}
		st.mark = e.calls
		end := st.n + len(f)
		if e.maxPos > 0 && end > e.maxPos {
			return nil, fmt.Errorf("generate: sequence %d would reach %d positions, the model allows %d", i, end, e.maxPos)
		}
		for j, t := range f {
			if t < 0 || t >= V {
				return nil, fmt.Errorf("generate: sequence %d token %d: id %d outside vocabulary [0, %d)", i, j, t, V)
			}
			ws.rows = append(ws.rows, row{st, st.n + j})
			if all || j == len(f)-1 {
				ws.outRows = append(ws.outRows, len(ws.rows)-1)
			}
		}
		maxEnd = max(maxEnd, end)
	}
	out := make([][]float32, len(feeds))
	N := len(ws.rows)
	if N == 0 {
		return out, nil
	}
	e.ropeTables(maxEnd)
	kw, vw := KD, KD
	if e.mla != nil {
		kw, vw = e.mla.R, e.mla.Dr
	}
	if e.recurrent() {
		kw, vw = e.stateWidths()
	}
	for i, f := range feeds {
		if len(f) == 0 {
			continue
		}
		if e.recurrent() {
			states[i].reserveRecurrent(kw, vw)
		} else {
			states[i].reserve(states[i].n+len(f), kw, vw)
		}
	}
	if e.gau != nil {
		e.gauRope()
	}

	ws.x = grow(ws.x, N*C)
	ws.xb = grow(ws.xb, N*C)
	ws.q = grow(ws.q, N*HD)
	ws.k = grow(ws.k, N*KD)
	ws.v = grow(ws.v, N*KD)
	ws.att = grow(ws.att, N*HD)
	ws.o = grow(ws.o, N*C)
	ws.hb = grow(ws.hb, N*F)
	ws.hb2 = grow(ws.hb2, N*F)
	x, xb := ws.x, ws.xb

	// Token embeddings. (N, C)
	n := 0
	for _, f := range feeds {
		for _, t := range f {
			switch emb := e.w.Embed.Data().(type) {
			case []float32:
				copy(x[n*C:(n+1)*C], emb[t*C:(t+1)*C])
			case []uint16:
				bf16.Widen(x[n*C:(n+1)*C], emb[t*C:(t+1)*C])
			case []q8.Block:
				nb := C / q8.BlockLen
				q8.Dequantize(x[n*C:(n+1)*C], emb[t*nb:(t+1)*nb])
			}
			n++
		}
	}

	for l := range e.w.Layers {
		ly := &e.w.Layers[l]
		// Attention block: x += o_proj(attn(rope(q), rope(k), v)).
		rmsNorm(xb, x, model.F32(ly.AttnNorm), N, C, e.eps)
		if e.gau != nil {
			// One Gated Attention Unit replaces attention and MLP.
			if err := e.gauLayer(l, ly); err != nil {
				return nil, err
			}
			addTo(x, ws.o)
			continue
		}
		attend := e.gqaAttention
		switch {
		case e.mla != nil:
			attend = e.mlaAttention
		case e.linAttn:
			attend = e.linearAttention
		}
		if err := attend(l, ly); err != nil {
			return nil, err
		}
		addTo(x, ws.o)

		// MLP block: x += down(silu(gate(x̂)) ⊙ up(x̂)), or the mixture of
		// experts.
		rmsNorm(xb, x, model.F32(ly.MLPNorm), N, C, e.eps)
		feed := e.mlp
		if ly.Router != nil {
			feed = e.moe
		}
		if err := feed(l, ly); err != nil {
			return nil, err
		}
		addTo(x, ws.o)
	}
	// Positions become visible only once the whole call has succeeded.
	for i, f := range feeds {
		if len(f) > 0 {
			states[i].n += len(f)
		}
	}

	// Final norm and lm_head, only on rows whose logits are wanted. (M, V)
	M := len(ws.outRows)
	ws.hn = grow(ws.hn, M*C)
	for m, r := range ws.outRows {
		copy(ws.hn[m*C:(m+1)*C], x[r*C:(r+1)*C])
	}
	rmsNorm(ws.hn, ws.hn, model.F32(e.w.Norm), M, C, e.eps)
	ws.logits = grow(ws.logits, M*V)
	weightMulT(ws.logits, ws.hn, e.w.LMHead, M, C, V)

	m := 0
	for i, f := range feeds {
		if len(f) == 0 {
			continue
		}
		k := 1
		if all {
			k = len(f)
		}
		out[i] = ws.logits[m*V : (m+k)*V : (m+k)*V]
		m += k
	}
	return out, nil
}

// gqaAttention computes o_proj(attention) of the normalised rows ws.xb
// into ws.o (N, C), caching keys and values: grouped-query attention with
// RoPE on full heads, and Qwen3's per-head q/k norms.
func (e *Engine) gqaAttention(l int, ly *model.Layer) error {
	ws := &e.ws
	N, C, H, KVH, D := len(ws.rows), e.C, e.H, e.KVH, e.D
	HD, KD := H*D, KVH*D
	xb := ws.xb
	if err := e.linear(ws.q, xb, ly.Wq, ly.Bq, l, "q_proj", N, C, HD); err != nil {
		return err
	}
	if err := e.linear(ws.k, xb, ly.Wk, ly.Bk, l, "k_proj", N, C, KD); err != nil {
		return err
	}
	if err := e.linear(ws.v, xb, ly.Wv, ly.Bv, l, "v_proj", N, C, KD); err != nil {
		return err
	}
	if ly.QNorm != nil {
		// Qwen3: RMSNorm over each query and key head, before RoPE.
		rmsNorm(ws.q, ws.q, model.F32(ly.QNorm), N*H, D, e.eps)
		rmsNorm(ws.k, ws.k, model.F32(ly.KNorm), N*KVH, D, e.eps)
	}
	for r, rw := range ws.rows {
		e.rope(ws.q[r*HD:(r+1)*HD], rw.pos, H)
		e.rope(ws.k[r*KD:(r+1)*KD], rw.pos, KVH)
		copy(rw.st.k[l][rw.pos*KD:(rw.pos+1)*KD], ws.k[r*KD:(r+1)*KD])
		copy(rw.st.v[l][rw.pos*KD:(rw.pos+1)*KD], ws.v[r*KD:(r+1)*KD])
	}
	e.attention(l)
	return e.linear(ws.o, ws.att, ly.Wo, nil, l, "o_proj", N, HD, C)
}

// mlp computes the SwiGLU MLP of the normalised rows ws.xb into ws.o.
func (e *Engine) mlp(l int, ly *model.Layer) error {
	ws := &e.ws
	N, C, F := len(ws.rows), e.C, e.F
	ws.hb = grow(ws.hb, N*F)
	ws.hb2 = grow(ws.hb2, N*F)
	if err := e.linear(ws.hb, ws.xb, ly.Gate, nil, l, "gate_proj", N, C, F); err != nil {
		return err
	}
	if err := e.linear(ws.hb2, ws.xb, ly.Up, nil, l, "up_proj", N, C, F); err != nil {
		return err
	}
	swiglu(ws.hb, ws.hb2)
	return e.linear(ws.o, ws.hb, ly.Down, nil, l, "down_proj", N, F, C)
}

// linear computes y = x·Wᵀ (+ bias) (+ scale·(x·aᵀ)·bᵀ from the adapter)
// for N rows: x (N, in), W (out, in), y (N, out).
func (e *Engine) linear(y, x []float32, w, bias *tensor.Dense, layer int, module string, N, in, out int) error {
	weightMulT(y[:N*out], x[:N*in], w, N, in, out)
	if bias != nil {
		b := model.F32(bias)
		for r := range N {
			addTo(y[r*out:(r+1)*out], b)
		}
	}
	return e.lowRank(y, x, layer, module, N, in, out)
}

// lowRank adds the adapter's update of (layer, module), if any, to y
// (N, out) from the module's input x (N, in).
func (e *Engine) lowRank(y, x []float32, layer int, module string, N, in, out int) error {
	if e.adapter == nil {
		return nil
	}
	a, b, r, scale, ok := e.adapter.LowRank(layer, module)
	if !ok {
		return nil
	}
	if r <= 0 || len(a) != r*in || len(b) != out*r {
		return fmt.Errorf("generate: adapter for layer %d %s: rank %d with a of %d and b of %d values, want %d and %d",
			layer, module, r, len(a), len(b), r*in, out*r)
	}
	e.ws.lr = grow(e.ws.lr, N*r)
	e.ws.lrOut = grow(e.ws.lrOut, N*out)
	t := e.ws.lr
	matmulT(t, x[:N*in], a, N, in, r)                      // (N, r) = x·aᵀ
	gemmAcc(y[:N*out], t, b, e.ws.lrOut, N, r, out, scale) // y += scale·t·bᵀ
	return nil
}

// rope rotates each of the n heads of v (n·D values) by the angles of
// position pos, pairing dimension i with i + D/2 as Hugging Face's
// rotate_half does: (x₁, x₂) → (x₁cos − x₂sin, x₂cos + x₁sin).
func (e *Engine) rope(v []float32, pos, n int) {
	half := e.D / 2
	cos, sin := e.cos[pos*half:(pos+1)*half], e.sin[pos*half:(pos+1)*half]
	for h := range n {
		x := v[h*e.D : (h+1)*e.D]
		x1, x2 := x[:half], x[half:]
		for i := range half {
			a, b := x1[i], x2[i]
			x1[i] = a*cos[i] - b*sin[i]
			x2[i] = b*cos[i] + a*sin[i]
		}
	}
}

// attention computes, for every row and head, softmax(q·Kᵀ/√D)·V over the
// row's own sequence up to and including its position (causal). Heads that
// share a key/value head under GQA read the same cache columns.
func (e *Engine) attention(l int) {
	ws := &e.ws
	H, KVH, D := e.H, e.KVH, e.D
	HD, KD := H*D, KVH*D
	group := H / KVH
	scale := float32(1 / math.Sqrt(float64(D)))
	N := len(ws.rows)
	maxT := 0
	work := 0
	for _, rw := range ws.rows {
		maxT = max(maxT, rw.pos+1)
		work += (rw.pos + 1) * HD
	}
	workers := workersFor(N*H, work*4)
	ws.scores = grow(ws.scores, workers*maxT)
	parallel(N*H, workers, func(w, lo, hi int) {
		sc := ws.scores[w*maxT : (w+1)*maxT]
		for j := lo; j < hi; j++ {
			r, h := j/H, j%H
			rw := ws.rows[r]
			T := rw.pos + 1
			kv := (h / group) * D
			q := ws.q[r*HD+h*D : r*HD+(h+1)*D]
			K, Vc := rw.st.k[l], rw.st.v[l]
			s := sc[:T]
			// scores (T) = K[:, kv:kv+D]·q / √D
			dotRows(s, q, K[kv:], D, KD, T)
			for t := range s {
				s[t] *= scale
			}
			softmax(s)
			// out (D) = V[:, kv:kv+D]ᵀ·s
			gemv(true, T, D, 1, Vc[kv:], KD, s, 0, ws.att[r*HD+h*D:r*HD+(h+1)*D])
		}
	})
}
