// Package gguf converts models between this module's weights and GGUF
// files, the format llama.cpp, Ollama and LM Studio load. The container
// (header, metadata, tensor data, quantization) is checkpoints/gguf; this
// package knows the model: the architecture names and metadata keys
// llama.cpp reads (llama.cpp's llama-arch.cpp and convert_hf_to_gguf.py),
// the Hugging Face ⇄ GGUF tensor names, the row order of the query and key
// projections, and the tokenizer metadata.
//
// Architectures: llama and mistral are written as llama.cpp's "llama",
// qwen2 as "qwen2", qwen3 as "qwen3". For "llama" the rows of q_proj and
// k_proj (and their biases) are permuted from Hugging Face's rotate-half
// RoPE layout (the two halves of each head rotate together) to the
// interleaved pairs of llama.cpp's RoPE (convert_hf_to_gguf.py's
// LlamaModel.permute); qwen2 and qwen3 use llama.cpp's NEOX RoPE, which is
// rotate-half, so their rows are kept. deepseek_v2 and deepseek_v3 are
// written as "deepseek2" (deepseek.go: multi-head latent attention with
// kv_b_proj split per head, stacked experts, and the settings llama.cpp
// computes unlike DeepSeek's code refused); LoRA adapters of DeepSeek
// models are not written as GGUF.
//
// May import: model/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never data/..., finetune, train, lora, a stage or an
// application.
package gguf

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
)

// Dtype names the tensor type of an export: F32, F16 or Q8_0 (and BF16).
type Dtype string

// Export dtypes, with their general.file_type (llama.cpp's enum
// llama_ftype: ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q8_0 = 7, MOSTLY_BF16 =
// 32).
const (
	F32  Dtype = "f32"
	F16  Dtype = "f16"
	BF16 Dtype = "bf16"
	Q8_0 Dtype = "q8_0"
)

// ParseDtype reads a dtype name, case-insensitively.
func ParseDtype(s string) (Dtype, error) {
	switch d := Dtype(strings.ToLower(s)); d {
	case F32, F16, BF16, Q8_0:
		return d, nil
	}
	return "", fmt.Errorf("GGUF dtype %q: want f32, f16, bf16 or q8_0", s)
}

func (d Dtype) tensorType() gguf.Type {
	switch d {
	case F16:
		return gguf.F16
	case BF16:
		return gguf.BF16
	case Q8_0:
		return gguf.Q8_0
	}
	return gguf.F32
}

func (d Dtype) fileType() uint32 {
	switch d {
	case F16:
		return 1
	case BF16:
		return 32
	case Q8_0:
		return 7
	}
	return 0
}

// Options control an export.
type Options struct {
	// Dtype of the 2-D weights; 1-D tensors (norms, biases) stay F32, as
	// llama.cpp's converter keeps them. Empty means F32.
	Dtype Dtype
	// Name is general.name (default: the architecture).
	Name string
}

// archOf maps a model_type to llama.cpp's architecture name.
func archOf(modelType string) (string, error) {
	switch modelType {
	case "llama", "mistral":
		return "llama", nil
	case "qwen2", "qwen3":
		return modelType, nil
	case "deepseek_v2", "deepseek_v3":
		return deepseekArch, nil
	}
	return "", fmt.Errorf("model_type %q has no GGUF architecture here (want llama, mistral, qwen2, qwen3, deepseek_v2 or deepseek_v3)", modelType)
}

// permutes reports whether arch stores q/k rows in llama.cpp's interleaved
// RoPE order.
func permutes(arch string) bool { return arch == "llama" }

// permuteRows reorders the rows of a (heads·D, cols) matrix, or a (heads·D)
// bias with cols = 1, from Hugging Face's rotate-half layout to
// interleaved pairs: within each head, row j·D/2 + i moves to 2i + j
// (convert_hf_to_gguf.py: reshape(heads, 2, D/2, …).swapaxes(1, 2)).
// unpermuteRows is its inverse.
func permuteRows(x []float32, heads, cols int) []float32 {
	out := make([]float32, len(x))
	d := len(x) / cols / heads
	for h := range heads {
		for j := range 2 {
			for i := range d / 2 {
				src := (h*d + j*d/2 + i) * cols
				dst := (h*d + 2*i + j) * cols
				copy(out[dst:dst+cols], x[src:src+cols])
			}
		}
	}
	return out
}

func unpermuteRows(x []float32, heads, cols int) []float32 {
	out := make([]float32, len(x))
	d := len(x) / cols / heads
	for h := range heads {
		for j := range 2 {
			for i := range d / 2 {
				src := (h*d + 2*i + j) * cols
				dst := (h*d + j*d/2 + i) * cols
				copy(out[dst:dst+cols], x[src:src+cols])
			}
		}
	}
	return out
}

// tensorName maps a Hugging Face parameter name to its GGUF name.
func tensorName(hf string) (string, error) {
	switch hf {
	case "model.embed_tokens.weight":
		return "token_embd.weight", nil
	case "model.norm.weight":
		return "output_norm.weight", nil
	case "lm_head.weight":
		return "output.weight", nil
	}
	var layer int
	var rest string
	if n, _ := fmt.Sscanf(hf, "model.layers.%d.", &layer); n == 1 {
		rest = strings.TrimPrefix(hf, fmt.Sprintf("model.layers.%d.", layer))
	}
	short, ok := layerNames[rest]
	if !ok {
		return "", fmt.Errorf("tensor %s has no GGUF name", hf)
	}
	return fmt.Sprintf("blk.%d.%s", layer, short), nil
}

// layerNames maps a decoder layer's Hugging Face tensor names to
// llama.cpp's (llama-arch.cpp, LLM_TENSOR_NAMES).
var layerNames = map[string]string{
	"input_layernorm.weight":          "attn_norm.weight",
	"self_attn.q_proj.weight":         "attn_q.weight",
	"self_attn.k_proj.weight":         "attn_k.weight",
	"self_attn.v_proj.weight":         "attn_v.weight",
	"self_attn.o_proj.weight":         "attn_output.weight",
	"self_attn.q_proj.bias":           "attn_q.bias",
	"self_attn.k_proj.bias":           "attn_k.bias",
	"self_attn.v_proj.bias":           "attn_v.bias",
	"self_attn.q_norm.weight":         "attn_q_norm.weight",
	"self_attn.k_norm.weight":         "attn_k_norm.weight",
	"post_attention_layernorm.weight": "ffn_norm.weight",
	"mlp.gate_proj.weight":            "ffn_gate.weight",
	"mlp.up_proj.weight":              "ffn_up.weight",
	"mlp.down_proj.weight":            "ffn_down.weight",
}

// Tensors returns the GGUF tensors of w, named, permuted and typed for
// llama.cpp. 1-D tensors stay F32; a 2-D tensor whose rows are not whole
// Q8_0 blocks is stored F16 instead (as llama.cpp's converter falls back).
func Tensors(w *model.Weights, dtype Dtype) ([]gguf.Tensor, error) {
	c := w.Config
	arch, err := archOf(c.ModelType)
	if err != nil {
		return nil, err
	}
	if c.Attention != "" && c.Attention != model.AttentionSoftmax {
		// llama.cpp would run these tensors as softmax attention.
		return nil, fmt.Errorf("gguf: gotune_attention %q has no GGUF architecture (llama.cpp runs softmax attention only)", c.Attention)
	}
	if c.MLA() {
		if err := deepseekExportable(c); err != nil {
			return nil, err
		}
		return deepseekTensors(w, dtype), nil
	}
	var out []gguf.Tensor
	for _, n := range w.Named() {
		name, err := tensorName(n.Name)
		if err != nil {
			return nil, err
		}
		shape := slices.Clone([]int(n.Tensor.Shape()))
		data := model.F32(n.Tensor)
		if permutes(arch) {
			cols := 1
			if len(shape) == 2 {
				cols = shape[1]
			}
			switch {
			case strings.HasSuffix(name, ".attn_q.weight"), strings.HasSuffix(name, ".attn_q.bias"):
				data = permuteRows(data, c.NumAttentionHeads, cols)
			case strings.HasSuffix(name, ".attn_k.weight"), strings.HasSuffix(name, ".attn_k.bias"):
				data = permuteRows(data, c.KVHeads(), cols)
			}
		}
		out = append(out, gguf.Tensor{Name: name, Shape: shape, Type: tensorTypeFor(dtype, shape), Data: data})
	}
	if s := c.Scaling(); s != nil {
		// Llama-3 RoPE scaling: llama.cpp divides each frequency by a
		// factor read from rope_freqs.weight (convert_hf_to_gguf.py,
		// LlamaModel.generate_extra_tensors).
		if arch != "llama" {
			return nil, fmt.Errorf("rope_scaling %s has no GGUF form for architecture %s", s.Kind(), arch)
		}
		scaled := c.InvFreq()
		factors := make([]float32, len(scaled))
		for i, f := range scaled {
			base := 1 / math.Pow(c.Theta(), float64(2*i)/float64(c.HeadDim()))
			factors[i] = float32(base / f)
		}
		out = append(out, gguf.Tensor{Name: "rope_freqs.weight", Shape: []int{len(factors)}, Type: gguf.F32, Data: factors})
	}
	return out, nil
}

func tensorTypeFor(d Dtype, shape []int) gguf.Type {
	if len(shape) < 2 {
		return gguf.F32
	}
	t := d.tensorType()
	if t == gguf.Q8_0 && shape[len(shape)-1]%32 != 0 {
		return gguf.F16
	}
	return t
}

// Metadata returns the general.* and architecture metadata of w.
func Metadata(w *model.Weights, opt Options) ([]gguf.KV, error) {
	c := w.Config
	arch, err := archOf(c.ModelType)
	if err != nil {
		return nil, err
	}
	if opt.Dtype == "" {
		opt.Dtype = F32
	}
	name := opt.Name
	if name == "" {
		name = arch
	}
	if c.SlidingWindow != nil && (c.UseSlidingWindow || c.ModelType == "mistral") && *c.SlidingWindow < c.MaxPositionEmbeddings {
		return nil, fmt.Errorf("sliding_window %d is not written to GGUF", *c.SlidingWindow)
	}
	kv := []gguf.KV{
		{Key: "general.architecture", Value: arch},
		{Key: "general.type", Value: "model"},
		{Key: "general.name", Value: name},
		{Key: "general.file_type", Value: opt.Dtype.fileType()},
		{Key: "general.quantization_version", Value: uint32(2)},
	}
	if c.MLA() {
		if err := deepseekExportable(c); err != nil {
			return nil, err
		}
		return append(kv, deepseekMetadata(c)...), nil
	}
	k := func(key string) string { return arch + "." + key }
	kv = append(kv, []gguf.KV{
		{Key: k("vocab_size"), Value: uint32(c.VocabSize)},
		{Key: k("context_length"), Value: uint32(c.MaxPositionEmbeddings)},
		{Key: k("embedding_length"), Value: uint32(c.HiddenSize)},
		{Key: k("block_count"), Value: uint32(c.NumHiddenLayers)},
		{Key: k("feed_forward_length"), Value: uint32(c.IntermediateSize)},
		{Key: k("attention.head_count"), Value: uint32(c.NumAttentionHeads)},
		{Key: k("attention.head_count_kv"), Value: uint32(c.KVHeads())},
		{Key: k("attention.layer_norm_rms_epsilon"), Value: float32(c.RMSNormEps)},
		{Key: k("rope.freq_base"), Value: float32(c.Theta())},
		{Key: k("rope.dimension_count"), Value: uint32(c.HeadDim())},
	}...)
	if c.HeadDimOverride > 0 || c.QKNorm() {
		kv = append(kv,
			gguf.KV{Key: k("attention.key_length"), Value: uint32(c.HeadDim())},
			gguf.KV{Key: k("attention.value_length"), Value: uint32(c.HeadDim())})
	}
	return kv, nil
}

// Save writes w with its tokenizer as one GGUF file at path.
func Save(path string, w *model.Weights, tok *tokenizer.Tokenizer, opt Options) error {
	if opt.Dtype == "" {
		opt.Dtype = F32
	}
	if _, err := ParseDtype(string(opt.Dtype)); err != nil {
		return err
	}
	kv, err := Metadata(w, opt)
	if err != nil {
		return fmt.Errorf("gguf export %s: %w", path, err)
	}
	tkv, err := TokenizerMetadata(tok, w.Config.VocabSize)
	if err != nil {
		return fmt.Errorf("gguf export %s: tokenizer: %w", path, err)
	}
	tensors, err := Tensors(w, opt.Dtype)
	if err != nil {
		return fmt.Errorf("gguf export %s: %w", path, err)
	}
	return gguf.WriteFile(path, append(kv, tkv...), tensors)
}
