package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"gorgonia.org/tensor"
)

// Layer holds one decoder block's parameters, linear weights in Hugging
// Face layout [out, in] (y = x·Wᵀ). Bq, Bk, Bv are nil without attention
// bias; QNorm, KNorm are nil unless the family normalises query and key
// heads (Config.QKNorm).
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

// NewTensor allocates a zeroed float32 tensor of the given shape.
func NewTensor(shape ...int) *tensor.Dense {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(make([]float32, n)))
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
	for range c.NumHiddenLayers {
		l := Layer{
			AttnNorm: ones(C), MLPNorm: ones(C),
			Wq: NewTensor(H*D, C), Wk: NewTensor(KVH*D, C), Wv: NewTensor(KVH*D, C), Wo: NewTensor(C, H*D),
			Gate: NewTensor(F, C), Up: NewTensor(F, C), Down: NewTensor(C, F),
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
		out = append(out,
			Named{p + "input_layernorm.weight", l.AttnNorm},
			Named{p + "self_attn.q_proj.weight", l.Wq},
			Named{p + "self_attn.k_proj.weight", l.Wk},
			Named{p + "self_attn.v_proj.weight", l.Wv},
		)
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
			Named{p + "mlp.gate_proj.weight", l.Gate},
			Named{p + "mlp.up_proj.weight", l.Up},
			Named{p + "mlp.down_proj.weight", l.Down},
		)
	}
	out = append(out, Named{"model.norm.weight", w.Norm})
	if !w.Config.TieWordEmbeddings {
		out = append(out, Named{"lm_head.weight", w.LMHead})
	}
	return out
}

// Linear returns the weight of one of a layer's linear modules by its
// Hugging Face short name (q_proj, k_proj, v_proj, o_proj, gate_proj,
// up_proj, down_proj).
func (l *Layer) Linear(module string) (*tensor.Dense, error) {
	switch module {
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

// LinearModules are the names of a layer's linear modules, in HF order.
var LinearModules = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// NumParams counts the distinct parameters (a tied head counted once).
func (w *Weights) NumParams() int {
	n := 0
	for _, p := range w.Named() {
		n += p.Tensor.Shape().TotalSize()
	}
	return n
}
