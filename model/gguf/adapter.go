package gguf

import (
	"fmt"
	"math"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/model"
)

// LoRAModule is one adapted linear module of a LoRA adapter: the update
// of the module's weight W (Out, In) is scale·B·A.
type LoRAModule struct {
	Layer  int
	Module string    // q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj or down_proj
	A      []float32 // (R, In), row-major
	B      []float32 // (Out, R), row-major
}

// moduleNames maps a linear module to its llama.cpp tensor.
var moduleNames = map[string]string{
	"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
	"gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}

// SaveAdapter writes a LoRA adapter of a base model as the GGUF file
// llama.cpp's --lora loads (convert_lora_to_gguf.py's layout):
// general.type "adapter", adapter.type "lora", adapter.lora.alpha, and per
// module blk.N.<tensor>.weight.lora_a (A, ggml ne = [In, R]) and .lora_b
// (B, ne = [R, Out]), F32. llama.cpp scales the update by alpha/R, so
// alpha is written as scale·R (α itself for PEFT's α/r; α·√r for rsLoRA's
// α/√r). For the llama architecture the rows of B of q_proj and k_proj are
// permuted as the base's q/k rows are.
func SaveAdapter(path string, base model.Config, r int, scale float64, modules []LoRAModule, name string) error {
	arch, err := archOf(base.ModelType)
	if err != nil {
		return fmt.Errorf("gguf adapter %s: %w", path, err)
	}
	if base.MLA() {
		// llama.cpp's deepseek2 multiplies by attn_q, attn_q_a, attn_q_b
		// and attn_kv_a_mqa without applying adapters (plain ggml_mul_mat
		// in src/models/deepseek2.cpp), stores kv_b_proj split per head
		// into attn_k_b (transposed) and attn_v_b, and stacks the routed
		// experts into 3-D tensors: most updates would be ignored or are
		// no longer a pair of matrices per tensor.
		return fmt.Errorf("gguf adapter %s: LoRA adapters of model_type %s are not written as GGUF (llama.cpp applies none to the query and kv_a projections, splits kv_b_proj per head and stacks the experts); export the merged model instead", path, base.ModelType)
	}
	if r <= 0 || scale == 0 || math.IsNaN(scale) || math.IsInf(scale, 0) {
		return fmt.Errorf("gguf adapter %s: rank %d and scale %g must be positive and finite", path, r, scale)
	}
	if name == "" {
		name = arch + " LoRA"
	}
	kv := []gguf.KV{
		{Key: "general.architecture", Value: arch},
		{Key: "general.type", Value: "adapter"},
		{Key: "general.name", Value: name},
		{Key: "adapter.type", Value: "lora"},
		{Key: "adapter.lora.alpha", Value: float32(scale * float64(r))},
	}
	D := base.HeadDim()
	var tensors []gguf.Tensor
	for _, m := range modules {
		short, ok := moduleNames[m.Module]
		if !ok {
			return fmt.Errorf("gguf adapter %s: unknown module %q", path, m.Module)
		}
		if m.Layer < 0 || m.Layer >= base.NumHiddenLayers {
			return fmt.Errorf("gguf adapter %s: layer %d of module %s is outside the base's %d layers", path, m.Layer, m.Module, base.NumHiddenLayers)
		}
		in, out := base.HiddenSize, base.HiddenSize
		switch m.Module {
		case "q_proj":
			out = base.NumAttentionHeads * D
		case "k_proj", "v_proj":
			out = base.KVHeads() * D
		case "o_proj":
			in = base.NumAttentionHeads * D
		case "gate_proj", "up_proj":
			out = base.IntermediateSize
		case "down_proj":
			in = base.IntermediateSize
		}
		if len(m.A) != r*in || len(m.B) != out*r {
			return fmt.Errorf("gguf adapter %s: layer %d %s: A holds %d values and B %d, the base needs %d·%d and %d·%d", path, m.Layer, m.Module, len(m.A), len(m.B), r, in, out, r)
		}
		b := m.B
		if permutes(arch) && m.Module == "q_proj" {
			b = permuteRows(b, base.NumAttentionHeads, r)
		}
		if permutes(arch) && m.Module == "k_proj" {
			b = permuteRows(b, base.KVHeads(), r)
		}
		prefix := fmt.Sprintf("blk.%d.%s.weight", m.Layer, short)
		tensors = append(tensors,
			gguf.Tensor{Name: prefix + ".lora_a", Shape: []int{r, in}, Type: gguf.F32, Data: m.A},
			gguf.Tensor{Name: prefix + ".lora_b", Shape: []int{out, r}, Type: gguf.F32, Data: b})
	}
	return gguf.WriteFile(path, kv, tensors)
}
