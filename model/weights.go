package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/internal/hugepage"
	"github.com/gotune/gotune/internal/q8"
)

// Layer holds one decoder block's parameters, linear weights in Hugging
// Face layout [out, in] (y = x·Wᵀ). Bq, Bk, Bv are nil without attention
// bias; QNorm, KNorm are nil unless the family normalises query and key
// heads (Config.QKNorm).
//
// Under multi-head latent attention (Config.MLA; dimension letters Rq
// q_lora_rank, Rkv kv_lora_rank, Dn qk_nope, Dr qk_rope, Dv v_head_dim,
// Dqk = Dn + Dr) Wk, Wv are nil, Wq is q_proj (H·Dqk, C) when q_lora_rank
// is null and nil otherwise, and the MLA fields are set. A mixture-of-
// experts layer (Config.IsMoELayer) has Router, Experts and possibly
// Shared instead of Gate, Up, Down.
type Layer struct {
	AttnNorm   *tensor.Dense // (C)
	Wq         *tensor.Dense // (H·D, C)
	Wk         *tensor.Dense // (KVH·D, C)
	Wv         *tensor.Dense // (KVH·D, C)
	Wo         *tensor.Dense // (C, H·D)
	Bq, Bk, Bv *tensor.Dense // (H·D), (KVH·D), (KVH·D)
	QNorm      *tensor.Dense // (D) RMSNorm weight of every query head
	KNorm      *tensor.Dense // (D) RMSNorm weight of every key head
	MLPNorm    *tensor.Dense // (C)
	Gate       *tensor.Dense // (F, C)
	Up         *tensor.Dense // (F, C)
	Down       *tensor.Dense // (C, F)

	// Gated Attention Unit (Config.GAU; Hua et al. 2022): Wv (E, C) and
	// Wo (C, E) with Wu, Wz, QKGamma and QKBeta; Wq, Wk, MLPNorm and the
	// MLP are nil.
	Wu      *tensor.Dense // self_attn.u_proj (E, C)
	Wz      *tensor.Dense // self_attn.z_proj (s, C)
	QKGamma *tensor.Dense // self_attn.qk_gamma (4·s): scales of the quad query, quad key, linear query, linear key
	QKBeta  *tensor.Dense // self_attn.qk_beta (4·s): their offsets

	// Multi-head latent attention (DeepSeek-V2 §2.1.2–2.1.3).
	QA      *tensor.Dense // q_a_proj (Rq, C)
	QANorm  *tensor.Dense // q_a_layernorm (Rq)
	QB      *tensor.Dense // q_b_proj (H·Dqk, Rq)
	KVA     *tensor.Dense // kv_a_proj_with_mqa (Rkv + Dr, C): the latent, then the shared rope key
	KVANorm *tensor.Dense // kv_a_layernorm (Rkv)
	KVB     *tensor.Dense // kv_b_proj (H·(Dn + Dv), Rkv): per head, the key's Dn then the value's Dv

	// Mixture of experts (DeepSeekMoE, DeepSeek-V2 §2.2).
	Router     *tensor.Dense // mlp.gate.weight (E, C)
	RouterBias *tensor.Dense // mlp.gate.e_score_correction_bias (E), noaux_tc only; selects, never weighs
	Experts    []Expert      // mlp.experts.e, (Fm) wide
	Shared     *Expert       // mlp.shared_experts, (S·Fm) wide; nil without shared experts
}

// Expert is one SwiGLU feed-forward of a mixture-of-experts layer.
type Expert struct {
	Gate, Up *tensor.Dense // (Fe, C)
	Down     *tensor.Dense // (C, Fe)
}

// Weights are all parameters of a model. When the config ties embeddings,
// LMHead is the same tensor as Embed.
type Weights struct {
	Config Config
	Embed  *tensor.Dense // (V, C)
	Layers []Layer
	Norm   *tensor.Dense // (C)
	LMHead *tensor.Dense // (V, C)
}

// Named is one parameter with its Hugging Face name.
type Named struct {
	Name   string
	Tensor *tensor.Dense
}

// F32 returns the float32 backing slice of a weight tensor.
func F32(t *tensor.Dense) []float32 { return t.Data().([]float32) }

// NewTensor allocates a zeroed float32 tensor of the given shape, a large
// one on huge pages (internal/hugepage: decoding streams every weight once
// a token).
func NewTensor(shape ...int) *tensor.Dense {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(hugepage.Make[float32](n)))
}

// Allocate returns zeroed weights of the configured shapes (norm weights 1).
func Allocate(c Config) (*Weights, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	C, F, V, D := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.HeadDim()
	H, KVH := c.NumAttentionHeads, c.KVHeads()
	ones := func(n int) *tensor.Dense {
		t := NewTensor(n)
		for i := range F32(t) {
			F32(t)[i] = 1
		}
		return t
	}
	w := &Weights{Config: c, Embed: NewTensor(V, C), Norm: ones(C)}
	expert := func(fe int) Expert { return Expert{NewTensor(fe, C), NewTensor(fe, C), NewTensor(C, fe)} }
	for i := range c.NumHiddenLayers {
		if c.GAU() {
			// Scales start at 1 and offsets at 0 (queries and keys equal
			// to Z), so that ReLU² attention is live from the first step.
			S := c.GAUSharedDim
			w.Layers = append(w.Layers, Layer{AttnNorm: ones(C), Wu: NewTensor(F, C), Wv: NewTensor(F, C),
				Wz: NewTensor(S, C), Wo: NewTensor(C, F), QKGamma: ones(4 * S), QKBeta: NewTensor(4 * S)})
			continue
		}
		l := Layer{AttnNorm: ones(C), MLPNorm: ones(C)}
		if c.MLA() {
			d := c.DeepSeek
			if d.QLoraRank == nil {
				l.Wq = NewTensor(H*c.QKHeadDim(), C)
			} else {
				l.QA, l.QANorm, l.QB = NewTensor(*d.QLoraRank, C), ones(*d.QLoraRank), NewTensor(H*c.QKHeadDim(), *d.QLoraRank)
			}
			l.KVA, l.KVANorm = NewTensor(d.KVLoraRank+d.QKRopeHeadDim, C), ones(d.KVLoraRank)
			l.KVB = NewTensor(H*(d.QKNopeHeadDim+d.VHeadDim), d.KVLoraRank)
			l.Wo = NewTensor(C, H*d.VHeadDim)
		} else {
			l.Wq, l.Wk, l.Wv, l.Wo = NewTensor(H*D, C), NewTensor(KVH*D, C), NewTensor(KVH*D, C), NewTensor(C, H*D)
		}
		if c.IsMoELayer(i) {
			d := c.DeepSeek
			l.Router = NewTensor(d.NRoutedExperts, C)
			if d.TopkMethod == TopkNoAuxTC {
				l.RouterBias = NewTensor(d.NRoutedExperts)
			}
			for range d.NRoutedExperts {
				l.Experts = append(l.Experts, expert(d.MoeIntermediateSize))
			}
			if d.NSharedExperts > 0 {
				s := expert(d.NSharedExperts * d.MoeIntermediateSize)
				l.Shared = &s
			}
		} else {
			e := expert(F)
			l.Gate, l.Up, l.Down = e.Gate, e.Up, e.Down
		}
		if c.AttentionBias {
			l.Bq, l.Bk, l.Bv = NewTensor(H*D), NewTensor(KVH*D), NewTensor(KVH*D)
		}
		if c.QKNorm() {
			l.QNorm, l.KNorm = ones(D), ones(D)
		}
		w.Layers = append(w.Layers, l)
	}
	if c.TieWordEmbeddings {
		w.LMHead = w.Embed
	} else {
		w.LMHead = NewTensor(V, C)
	}
	return w, nil
}

// NewRandom returns weights drawn as Hugging Face initialises LLaMA models:
// linear and embedding weights ~ N(0, 0.02²), norms 1, biases 0; output
// projections (o_proj, down_proj) are scaled by 1/√(2L) as in GPT-2 so deep
// stacks start stable. The same seed gives the same weights.
func NewRandom(c Config, seed uint64) (*Weights, error) {
	w, err := Allocate(c)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	normal := func(t *tensor.Dense, std float64) {
		data := F32(t)
		for i := range data {
			data[i] = float32(r.NormFloat64() * std)
		}
	}
	const std = 0.02
	residual := std / math.Sqrt(2*float64(c.NumHiddenLayers))
	for _, n := range w.Named() {
		switch {
		case n.Tensor.Dims() == 1:
			// norms stay 1, biases 0
		case hasSuffix(n.Name, "o_proj.weight"), hasSuffix(n.Name, "down_proj.weight"):
			normal(n.Tensor, residual)
		default:
			normal(n.Tensor, std)
		}
	}
	return w, nil
}

func hasSuffix(s, suf string) bool { return len(s) >= len(suf) && s[len(s)-len(suf):] == suf }

// Named lists every parameter under its Hugging Face name, in a fixed order;
// `lm_head.weight` is absent when embeddings are tied.
func (w *Weights) Named() []Named {
	out := []Named{{"model.embed_tokens.weight", w.Embed}}
	for i, l := range w.Layers {
		p := fmt.Sprintf("model.layers.%d.", i)
		out = append(out, Named{p + "input_layernorm.weight", l.AttnNorm})
		if l.Wu != nil {
			out = append(out,
				Named{p + "self_attn.u_proj.weight", l.Wu},
				Named{p + "self_attn.v_proj.weight", l.Wv},
				Named{p + "self_attn.z_proj.weight", l.Wz},
				Named{p + "self_attn.qk_gamma", l.QKGamma},
				Named{p + "self_attn.qk_beta", l.QKBeta},
				Named{p + "self_attn.o_proj.weight", l.Wo},
			)
			continue
		}
		if l.Wq != nil {
			out = append(out, Named{p + "self_attn.q_proj.weight", l.Wq})
		}
		if l.Wk != nil {
			out = append(out,
				Named{p + "self_attn.k_proj.weight", l.Wk},
				Named{p + "self_attn.v_proj.weight", l.Wv},
			)
		}
		if l.QA != nil {
			out = append(out,
				Named{p + "self_attn.q_a_proj.weight", l.QA},
				Named{p + "self_attn.q_a_layernorm.weight", l.QANorm},
				Named{p + "self_attn.q_b_proj.weight", l.QB},
			)
		}
		if l.KVA != nil {
			out = append(out,
				Named{p + "self_attn.kv_a_proj_with_mqa.weight", l.KVA},
				Named{p + "self_attn.kv_a_layernorm.weight", l.KVANorm},
				Named{p + "self_attn.kv_b_proj.weight", l.KVB},
			)
		}
		if l.Bq != nil {
			out = append(out,
				Named{p + "self_attn.q_proj.bias", l.Bq},
				Named{p + "self_attn.k_proj.bias", l.Bk},
				Named{p + "self_attn.v_proj.bias", l.Bv},
			)
		}
		if l.QNorm != nil {
			out = append(out,
				Named{p + "self_attn.q_norm.weight", l.QNorm},
				Named{p + "self_attn.k_norm.weight", l.KNorm},
			)
		}
		out = append(out,
			Named{p + "self_attn.o_proj.weight", l.Wo},
			Named{p + "post_attention_layernorm.weight", l.MLPNorm},
		)
		if l.Gate != nil {
			out = append(out,
				Named{p + "mlp.gate_proj.weight", l.Gate},
				Named{p + "mlp.up_proj.weight", l.Up},
				Named{p + "mlp.down_proj.weight", l.Down},
			)
		}
		if l.Router != nil {
			out = append(out, Named{p + "mlp.gate.weight", l.Router})
			if l.RouterBias != nil {
				out = append(out, Named{p + "mlp.gate.e_score_correction_bias", l.RouterBias})
			}
			for e, x := range l.Experts {
				q := fmt.Sprintf("%smlp.experts.%d.", p, e)
				out = append(out,
					Named{q + "gate_proj.weight", x.Gate},
					Named{q + "up_proj.weight", x.Up},
					Named{q + "down_proj.weight", x.Down},
				)
			}
			if l.Shared != nil {
				q := p + "mlp.shared_experts."
				out = append(out,
					Named{q + "gate_proj.weight", l.Shared.Gate},
					Named{q + "up_proj.weight", l.Shared.Up},
					Named{q + "down_proj.weight", l.Shared.Down},
				)
			}
		}
	}
	out = append(out, Named{"model.norm.weight", w.Norm})
	if !w.Config.TieWordEmbeddings {
		out = append(out, Named{"lm_head.weight", w.LMHead})
	}
	return out
}

// Linear returns the weight of one of a layer's linear modules by its
// Hugging Face short name (q_proj, k_proj, v_proj, o_proj, gate_proj,
// up_proj, down_proj; under MLA also q_a_proj, q_b_proj,
// kv_a_proj_with_mqa, kv_b_proj; in mixture-of-experts layers
// experts.E.gate_proj … and shared_experts.gate_proj …). A module the
// layer does not have (k_proj under MLA, gate_proj of a mixture-of-experts
// layer) is an error.
func (l *Layer) Linear(module string) (*tensor.Dense, error) {
	t, err := l.linear(module)
	if err == nil && t == nil {
		err = fmt.Errorf("linear module %q does not exist in this layer", module)
		if l.Wu != nil {
			err = fmt.Errorf("linear module %q does not exist in a Gated Attention Unit layer (it has %s)", module, strings.Join(GAUModules, ", "))
		}
	}
	return t, err
}

func (l *Layer) linear(module string) (*tensor.Dense, error) {
	if e, proj, ok := ExpertModule(module); ok {
		var x *Expert
		switch {
		case e < 0:
			x = l.Shared
		case e < len(l.Experts):
			x = &l.Experts[e]
		}
		if x == nil {
			return nil, nil
		}
		return map[string]*tensor.Dense{"gate_proj": x.Gate, "up_proj": x.Up, "down_proj": x.Down}[proj], nil
	}
	switch module {
	case "q_a_proj":
		return l.QA, nil
	case "q_b_proj":
		return l.QB, nil
	case "kv_a_proj_with_mqa":
		return l.KVA, nil
	case "kv_b_proj":
		return l.KVB, nil
	case "u_proj":
		return l.Wu, nil
	case "z_proj":
		return l.Wz, nil
	case "q_proj":
		return l.Wq, nil
	case "k_proj":
		return l.Wk, nil
	case "v_proj":
		return l.Wv, nil
	case "o_proj":
		return l.Wo, nil
	case "gate_proj":
		return l.Gate, nil
	case "up_proj":
		return l.Up, nil
	case "down_proj":
		return l.Down, nil
	}
	return nil, fmt.Errorf("unknown linear module %q", module)
}

// LinearModules are the names of a LLaMA-style layer's linear modules, in
// HF order.
var LinearModules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// MLAModules are the linear modules of multi-head latent attention
// (DeepseekV2Attention), in HF order: q_proj when q_lora_rank is null,
// q_a_proj and q_b_proj otherwise.
var MLAModules = []string{"q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"}

// GAUModules are the linear modules of a Gated Attention Unit layer.
var GAUModules = []string{"u_proj", "v_proj", "z_proj", "o_proj"}

// ModuleNames are all linear module names of every family, in HF order
// (then the Gated Attention Unit's own).
var ModuleNames = []string{"q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "u_proj", "z_proj"}

// ExpertModule parses the module name of an expert's projection,
// "experts.E.gate_proj" (expert E) or "shared_experts.gate_proj" (expert
// −1), as PEFT names them under mlp.
func ExpertModule(module string) (expert int, proj string, ok bool) {
	rest, shared := strings.CutPrefix(module, "shared_experts.")
	if !shared {
		var found bool
		if rest, found = strings.CutPrefix(module, "experts."); !found {
			return 0, "", false
		}
		num, p, found := strings.Cut(rest, ".")
		e, err := strconv.Atoi(num)
		if !found || err != nil || e < 0 || strconv.Itoa(e) != num {
			return 0, "", false
		}
		expert, rest = e, p
	} else {
		expert = -1
	}
	switch rest {
	case "gate_proj", "up_proj", "down_proj":
		return expert, rest, true
	}
	return 0, "", false
}

// LayerModules expands a target module name into the modules of layer l
// it names, as PEFT matches names by suffix: gate_proj, up_proj and
// down_proj of a mixture-of-experts layer are every routed expert's
// (experts.E.gate_proj) and the shared experts' (shared_experts.gate_proj);
// any other name is itself.
func (c *Config) LayerModules(l int, target string) []string {
	switch target {
	case "gate_proj", "up_proj", "down_proj":
	default:
		return []string{target}
	}
	if !c.IsMoELayer(l) {
		return []string{target}
	}
	var out []string
	for e := range c.NRoutedExperts {
		out = append(out, fmt.Sprintf("experts.%d.%s", e, target))
	}
	if c.NSharedExperts > 0 {
		out = append(out, "shared_experts."+target)
	}
	return out
}

// AllLinearModules are the target names that PEFT's "all-linear" amounts
// to (every linear module but the output head): LinearModules, GAUModules
// for Gated Attention Unit layers, or under
// MLA the MLA modules the layers have and gate_proj, up_proj, down_proj
// (which LayerModules expands to the experts' in mixture-of-experts
// layers).
func (c *Config) AllLinearModules() []string {
	if c.GAU() {
		return slices.Clone(GAUModules)
	}
	if !c.MLA() {
		return slices.Clone(LinearModules)
	}
	return append(c.attentionModules(), "gate_proj", "up_proj", "down_proj")
}

// attentionModules are the MLA modules the configured layers have.
func (c *Config) attentionModules() []string {
	if c.QLoraRank == nil {
		return []string{"q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"}
	}
	return []string{"q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"}
}

// NumParams counts the distinct parameters (a tied head counted once).
func (w *Weights) NumParams() int {
	n := 0
	for _, p := range w.Named() {
		n += p.Tensor.Shape().TotalSize()
	}
	return n
}

// BF16 is the bits of a matrix StoreBF16 converted: a (rows, cols) tensor
// of uint16, each the upper half of a float32 (nil for any other tensor).
func BF16(t *tensor.Dense) []uint16 {
	b, _ := t.Data().([]uint16)
	return b
}

// Q8 is the blocks of a matrix StoreQ8 converted: a (rows, cols/32)
// tensor of Q8_0 blocks (nil for any other tensor, or none).
func Q8(t *tensor.Dense) []q8.Block {
	if t == nil {
		return nil
	}
	b, _ := t.Data().([]q8.Block)
	return b
}

// MatrixShape is a weight matrix's rows and columns in whichever form it
// is held: float32, bfloat16, or Q8_0 blocks of 32 columns (StoreQ8).
func MatrixShape(t *tensor.Dense) (rows, cols int) {
	s := t.Shape()
	rows, cols = s[0], s[1]
	if Q8(t) != nil {
		cols *= q8.BlockLen
	}
	return rows, cols
}

// StoreQ8 quantizes the frozen matrices (those of StoreBF16) whose rows
// are whole Q8_0 blocks — columns a multiple of 32 — to Q8_0 (internal/q8,
// ggml's rule: llama.cpp's quantizer gives the same blocks), keeping 1.125
// bytes a weight in place of 4: the form the generation engine decodes
// from. Matrices in bfloat16 are widened first (exactly); a matrix whose
// columns are not whole blocks stays as it is, as llama.cpp's converter
// keeps such tensors unquantized. Weights quantized this way are for
// decoding only: a training graph or a LoRA merge given one refuses,
// naming the tensor.
// It returns the number of values quantized.
func (w *Weights) StoreQ8() int {
	tied := w.LMHead == w.Embed
	_, fields := w.frozenMatrices()
	n := 0
	for _, f := range fields {
		t := *f
		rows, cols := t.Shape()[0], t.Shape()[1]
		if cols%q8.BlockLen != 0 || Q8(t) != nil {
			continue
		}
		var src []float32
		switch d := t.Data().(type) {
		case []float32:
			src = d
		case []uint16:
			src = make([]float32, len(d))
			bf16.Widen(src, d)
		default:
			continue
		}
		blocks := hugepage.Make[q8.Block](rows * cols / q8.BlockLen)
		q8.QuantizeRow(blocks, src)
		*f = tensor.New(tensor.WithShape(rows, cols/q8.BlockLen), tensor.WithBacking(blocks))
		n += len(src)
	}
	if tied {
		w.LMHead = w.Embed
	}
	return n
}

// frozenMatrices are the tensors StoreBF16 may convert: the embeddings and
// every linear module a layer applies through Linear (attention, MLP,
// latent-attention and Gated Attention Unit projections, shared experts).
// The router and the routed experts, read by the mixture-of-experts
// operation, and the norm and scale vectors stay float32.
func (w *Weights) frozenMatrices() (names []string, fields []**tensor.Dense) {
	add := func(name string, f **tensor.Dense) {
		if *f != nil {
			names, fields = append(names, name), append(fields, f)
		}
	}
	add("model.embed_tokens.weight", &w.Embed)
	if w.LMHead != w.Embed {
		add("lm_head.weight", &w.LMHead)
	}
	for i := range w.Layers {
		l := &w.Layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		for _, m := range []struct {
			name string
			f    **tensor.Dense
		}{
			{"self_attn.q_proj", &l.Wq}, {"self_attn.k_proj", &l.Wk}, {"self_attn.v_proj", &l.Wv}, {"self_attn.o_proj", &l.Wo},
			{"self_attn.u_proj", &l.Wu}, {"self_attn.z_proj", &l.Wz},
			{"self_attn.q_a_proj", &l.QA}, {"self_attn.q_b_proj", &l.QB}, {"self_attn.kv_a_proj_with_mqa", &l.KVA}, {"self_attn.kv_b_proj", &l.KVB},
			{"mlp.gate_proj", &l.Gate}, {"mlp.up_proj", &l.Up}, {"mlp.down_proj", &l.Down},
		} {
			add(p+m.name+".weight", m.f)
		}
		if l.Shared != nil {
			add(p+"mlp.shared_experts.gate_proj.weight", &l.Shared.Gate)
			add(p+"mlp.shared_experts.up_proj.weight", &l.Shared.Up)
			add(p+"mlp.shared_experts.down_proj.weight", &l.Shared.Down)
		}
	}
	return names, fields
}

// AllocateBF16 is Allocate with the frozen matrices (those StoreBF16
// converts) zeroed in bfloat16 from the start, for a loader that fills them
// from a checkpoint without ever holding them in float32.
func AllocateBF16(c Config) (*Weights, error) {
	return allocateFrozen(c, func(rows, cols int) *tensor.Dense {
		return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(hugepage.Make[uint16](rows*cols)))
	})
}

// AllocateQ8 is Allocate with the frozen matrices whose rows are whole
// Q8_0 blocks (those StoreQ8 quantizes) held as zeroed Q8_0 blocks from
// the start, for a loader that quantizes each as it reads it, without
// ever holding them all in float32.
func AllocateQ8(c Config) (*Weights, error) {
	return allocateFrozen(c, func(rows, cols int) *tensor.Dense {
		if cols%q8.BlockLen != 0 {
			return nil
		}
		return tensor.New(tensor.WithShape(rows, cols/q8.BlockLen), tensor.WithBacking(hugepage.Make[q8.Block](rows*cols/q8.BlockLen)))
	})
}

// allocateFrozen is Allocate with each frozen matrix (rows × cols) replaced
// by what form returns for it, kept in float32 where form returns nil; a
// tied head stays the embedding. The float32 tensors replaced were never
// written, so dropping them costs no resident memory.
func allocateFrozen(c Config, form func(rows, cols int) *tensor.Dense) (*Weights, error) {
	w, err := Allocate(c)
	if err != nil {
		return nil, err
	}
	tied := w.LMHead == w.Embed
	_, fields := w.frozenMatrices()
	for _, f := range fields {
		if t := form((*f).Shape()[0], (*f).Shape()[1]); t != nil {
			*f = t
		}
	}
	if tied {
		w.LMHead = w.Embed
	}
	return w, nil
}

// StoreBF16 rounds the frozen matrices (the embeddings and the linear
// modules' weights, see frozenMatrices) to bfloat16 — to nearest, ties to
// even — and keeps them so, halving their memory: a base that is only
// read (LoRA), whose products widen the weights a block at a time and run
// in float32 (ops.BF16Matrix). Weights loaded from a bfloat16 checkpoint
// are stored exactly; float32 weights lose their lower 16 mantissa bits.
// keep, when not nil, names matrices to leave in float32 (the trainable
// ones). It returns the number of values converted. Such weights build
// float32 graphs in which they are frozen; whatever reads them as float32
// (F32, export, the generation engine) must not be given them.
func (w *Weights) StoreBF16(keep func(name string) bool) int {
	tied := w.LMHead == w.Embed
	names, fields := w.frozenMatrices()
	n := 0
	for i, f := range fields {
		t := *f
		src, ok := t.Data().([]float32)
		if !ok || (keep != nil && keep(names[i])) {
			continue
		}
		bits := hugepage.Make[uint16](len(src))
		for j, v := range src {
			bits[j] = bf16.FromFloat32(v)
		}
		*f = tensor.New(tensor.WithShape(t.Shape().Clone()...), tensor.WithBacking(bits))
		n += len(bits)
	}
	if tied {
		w.LMHead = w.Embed
	}
	return n
}
