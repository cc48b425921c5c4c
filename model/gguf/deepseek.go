package gguf

import (
	"fmt"
	"math"
	"strings"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/model"
)

// The DeepSeek families (deepseek_v2, deepseek_v3) are llama.cpp's
// "deepseek2" architecture (src/models/deepseek2.cpp of the llama.cpp that
// node-llama-cpp 3.21.1 ships; conversion/deepseek.py, DeepseekV2Model):
//
//   - multi-head latent attention in the form llama.cpp runs with the
//     absorption optimisation: kv_b_proj is split per head into attn_k_b
//     (the key's Dn rows, transposed: ggml ne [Dn, Rkv, H]) and attn_v_b
//     (the value's Dv rows: ne [Rkv, Dv, H]); the attention is then MQA over
//     the latent, so head_count_kv is 1, key_length Rkv + Dr, value_length
//     Rkv, and key_length_mla / value_length_mla hold the real head widths
//     Dn + Dr and Dv;
//   - q_lora_rank 0 for a plain q_proj (attn_q), as llama.cpp reads it;
//   - the rotary parts are rotated as adjacent pairs (llama.cpp's "normal"
//     RoPE, which deepseek2 uses), which is what DeepSeek's
//     apply_rotary_pos_emb computes after de-interleaving and what the
//     graph does (ops.RoPELayout.Interleaved): no rows are permuted, as the
//     converter permutes none;
//   - the experts' projections stacked into one 3-D tensor per projection
//     (ffn_gate_exps, ffn_up_exps: ne [C, Fe, E]; ffn_down_exps: ne
//     [Fe, C, E]), the shared experts as ffn_*_shexp, the router as
//     ffn_gate_inp (kept F32, as the converter keeps it) and the noaux_tc
//     correction bias as exp_probs_b.bias; leading dense layers have
//     ffn_gate, ffn_up, ffn_down.
//
// What llama.cpp computes differently from DeepSeek's modeling code is
// refused on export (deepseekExportable) and on import (deepseekConfig).
// Two differences remain that no setting decides: llama.cpp masks the
// experts of dropped groups with −∞ where DeepSeek's code sets their
// choice scores to 0, which chooses alike whenever the kept groups hold
// num_experts_per_tok experts of positive choice score (sigmoid score plus
// correction bias); and it keeps a normalising sum of at least 2⁻¹⁴ where
// DeepSeek's adds 1e-20.
const deepseekArch = "deepseek2"

// mlaNormEps is the epsilon of DeepSeek's q_a_layernorm and
// kv_a_layernorm (the RMSNorm default of DeepSeek's code); llama.cpp's
// deepseek2 normalises them with attention.layer_norm_rms_epsilon instead.
const mlaNormEps = 1e-6

// Expert gating functions (llama.cpp's enum llama_expert_gating_func_type).
const (
	gatingSoftmax = 1
	gatingSigmoid = 2
)

// layoutTensor is one GGUF tensor of a DeepSeek model: its name and shape
// (row-major, outermost first), how to gather its data from the weights
// and how to scatter it back.
type layoutTensor struct {
	name  string
	shape []int
	get   func() []float32
	set   func([]float32)
}

// deepseekLayout lists the GGUF tensors of a DeepSeek config in llama.cpp's
// deepseek2 layout. w may be nil when only names and shapes are needed
// (get and set are then not to be called).
func deepseekLayout(c model.Config, w *model.Weights) []layoutTensor {
	d := c.DeepSeek
	C, V, H := c.HiddenSize, c.VocabSize, c.NumAttentionHeads
	dn, dr, dv, r := d.QKNopeHeadDim, d.QKRopeHeadDim, d.VHeadDim, d.KVLoraRank
	plain := func(name string, t func() *tensor.Dense, shape ...int) layoutTensor {
		return layoutTensor{name, shape,
			func() []float32 { return model.F32(t()) },
			func(x []float32) { copy(model.F32(t()), x) }}
	}
	// stacked joins one projection of every routed expert into (E, rows, cols).
	stacked := func(name string, proj func(*model.Expert) *tensor.Dense, l, rows, cols int) layoutTensor {
		n := rows * cols
		return layoutTensor{name, []int{d.NRoutedExperts, rows, cols},
			func() []float32 {
				out := make([]float32, 0, d.NRoutedExperts*n)
				for e := range w.Layers[l].Experts {
					out = append(out, model.F32(proj(&w.Layers[l].Experts[e]))...)
				}
				return out
			},
			func(x []float32) {
				for e := range w.Layers[l].Experts {
					copy(model.F32(proj(&w.Layers[l].Experts[e])), x[e*n:(e+1)*n])
				}
			}}
	}
	out := []layoutTensor{plain("token_embd.weight", func() *tensor.Dense { return w.Embed }, V, C)}
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("blk.%d.", i)
		L := func() *model.Layer { return &w.Layers[i] }
		out = append(out, plain(p+"attn_norm.weight", func() *tensor.Dense { return L().AttnNorm }, C))
		if d.QLoraRank == nil {
			out = append(out, plain(p+"attn_q.weight", func() *tensor.Dense { return L().Wq }, H*(dn+dr), C))
		} else {
			rq := *d.QLoraRank
			out = append(out,
				plain(p+"attn_q_a.weight", func() *tensor.Dense { return L().QA }, rq, C),
				plain(p+"attn_q_a_norm.weight", func() *tensor.Dense { return L().QANorm }, rq),
				plain(p+"attn_q_b.weight", func() *tensor.Dense { return L().QB }, H*(dn+dr), rq))
		}
		out = append(out,
			plain(p+"attn_kv_a_mqa.weight", func() *tensor.Dense { return L().KVA }, r+dr, C),
			plain(p+"attn_kv_a_norm.weight", func() *tensor.Dense { return L().KVANorm }, r),
			// kv_b_proj (H·(Dn+Dv), Rkv): per head h, row h·(Dn+Dv)+j is the
			// key's row j (j < Dn), then the value's. attn_k_b[h][k][j] =
			// kv_b[h·(Dn+Dv)+j][k]; attn_v_b[h][j][k] = kv_b[h·(Dn+Dv)+Dn+j][k]
			// (conversion/deepseek.py: view, split, k_b.transpose(1, 2)).
			layoutTensor{p + "attn_k_b.weight", []int{H, r, dn},
				func() []float32 {
					kvb, x := model.F32(L().KVB), make([]float32, H*r*dn)
					for h := range H {
						for j := range dn {
							row := kvb[(h*(dn+dv)+j)*r:]
							for k := range r {
								x[(h*r+k)*dn+j] = row[k]
							}
						}
					}
					return x
				},
				func(x []float32) {
					kvb := model.F32(L().KVB)
					for h := range H {
						for j := range dn {
							row := kvb[(h*(dn+dv)+j)*r:]
							for k := range r {
								row[k] = x[(h*r+k)*dn+j]
							}
						}
					}
				}},
			layoutTensor{p + "attn_v_b.weight", []int{H, dv, r},
				func() []float32 {
					kvb, x := model.F32(L().KVB), make([]float32, 0, H*dv*r)
					for h := range H {
						x = append(x, kvb[(h*(dn+dv)+dn)*r:(h+1)*(dn+dv)*r]...)
					}
					return x
				},
				func(x []float32) {
					kvb := model.F32(L().KVB)
					for h := range H {
						copy(kvb[(h*(dn+dv)+dn)*r:(h+1)*(dn+dv)*r], x[h*dv*r:(h+1)*dv*r])
					}
				}},
			plain(p+"attn_output.weight", func() *tensor.Dense { return L().Wo }, C, H*dv),
			plain(p+"ffn_norm.weight", func() *tensor.Dense { return L().MLPNorm }, C))
		if !c.IsMoELayer(i) {
			F := c.IntermediateSize
			out = append(out,
				plain(p+"ffn_gate.weight", func() *tensor.Dense { return L().Gate }, F, C),
				plain(p+"ffn_up.weight", func() *tensor.Dense { return L().Up }, F, C),
				plain(p+"ffn_down.weight", func() *tensor.Dense { return L().Down }, C, F))
			continue
		}
		E, fe, fs := d.NRoutedExperts, d.MoeIntermediateSize, d.NSharedExperts*d.MoeIntermediateSize
		out = append(out, plain(p+"ffn_gate_inp.weight", func() *tensor.Dense { return L().Router }, E, C))
		if d.TopkMethod == model.TopkNoAuxTC {
			out = append(out, plain(p+"exp_probs_b.bias", func() *tensor.Dense { return L().RouterBias }, E))
		}
		out = append(out,
			stacked(p+"ffn_gate_exps.weight", func(x *model.Expert) *tensor.Dense { return x.Gate }, i, fe, C),
			stacked(p+"ffn_up_exps.weight", func(x *model.Expert) *tensor.Dense { return x.Up }, i, fe, C),
			stacked(p+"ffn_down_exps.weight", func(x *model.Expert) *tensor.Dense { return x.Down }, i, C, fe))
		if d.NSharedExperts > 0 {
			out = append(out,
				plain(p+"ffn_gate_shexp.weight", func() *tensor.Dense { return L().Shared.Gate }, fs, C),
				plain(p+"ffn_up_shexp.weight", func() *tensor.Dense { return L().Shared.Up }, fs, C),
				plain(p+"ffn_down_shexp.weight", func() *tensor.Dense { return L().Shared.Down }, C, fs))
		}
	}
	out = append(out, plain("output_norm.weight", func() *tensor.Dense { return w.Norm }, C))
	if !c.TieWordEmbeddings {
		out = append(out, plain("output.weight", func() *tensor.Dense { return w.LMHead }, V, C))
	}
	return out
}

// deepseekTensors returns the GGUF tensors of DeepSeek weights.
func deepseekTensors(w *model.Weights, dtype Dtype) []gguf.Tensor {
	var out []gguf.Tensor
	for _, t := range deepseekLayout(w.Config, w) {
		typ := tensorTypeFor(dtype, t.shape)
		if strings.HasSuffix(t.name, ".ffn_gate_inp.weight") {
			typ = gguf.F32 // llama.cpp's converter never quantizes the router
		}
		out = append(out, gguf.Tensor{Name: t.name, Shape: t.shape, Type: typ, Data: t.get()})
	}
	return out
}

// yarnOf returns DeepSeek's YaRN settings with the defaults of
// DeepseekV2YarnRotaryEmbedding filled in (original context 4096,
// beta_fast 32, beta_slow 1, mscale 1, mscale_all_dim 0), or ok false
// without YaRN.
func yarnOf(c model.Config) (factor float64, orig int, betaFast, betaSlow, mscale, mscaleAll float64, ok bool) {
	s := c.Scaling()
	if s == nil {
		return 0, 0, 0, 0, 0, 0, false
	}
	factor, orig, betaFast, betaSlow, mscale = s.Factor, 4096, 32, 1, 1
	if s.OriginalMaxPositionEmbeddings > 0 {
		orig = s.OriginalMaxPositionEmbeddings
	}
	for _, f := range []struct {
		p   *float64
		dst *float64
	}{{s.BetaFast, &betaFast}, {s.BetaSlow, &betaSlow}, {s.MScale, &mscale}, {s.MScaleAllDim, &mscaleAll}} {
		if f.p != nil {
			*f.dst = *f.p
		}
	}
	return factor, orig, betaFast, betaSlow, mscale, mscaleAll, true
}

// deepseekExportable refuses a DeepSeek config that llama.cpp's deepseek2
// would compute differently from DeepSeek's modeling code (and gotune's
// graph), naming the setting.
func deepseekExportable(c model.Config) error {
	d := c.DeepSeek
	if c.RMSNormEps != mlaNormEps {
		return fmt.Errorf("rms_norm_eps %g: llama.cpp's deepseek2 normalises q_a and kv_a with it too, DeepSeek's code with %g; only %g is exported", c.RMSNormEps, mlaNormEps, mlaNormEps)
	}
	if d.QLoraRank != nil && (c.NumHiddenLayers == 26 || c.NumHiddenLayers == 27 || (c.NumHiddenLayers == 48 && c.VocabSize == 128256)) {
		// llama.cpp takes these shapes for DeepSeek-V2-Lite-like models
		// and never reads their q_lora_rank (deepseek2.cpp, is_lite).
		return fmt.Errorf("q_lora_rank %d with %d layers: llama.cpp's deepseek2 ignores q_lora_rank for models of this shape", *d.QLoraRank, c.NumHiddenLayers)
	}
	if factor, _, betaFast, betaSlow, mscale, mscaleAll, ok := yarnOf(c); ok {
		// llama.cpp's deepseek2 reads no beta keys (32 and 1 are fixed),
		// and scales as DeepSeek does only when mscale equals
		// mscale_all_dim (llama-context.cpp takes mscale = mscale_all_dim,
		// [TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]); without mscale_all_dim it
		// scales the attention by yarn_get_mscale(factor, 1)², which
		// DeepSeek's code does not.
		switch {
		case !(factor > 1):
			return fmt.Errorf("rope_scaling yarn factor %g: llama.cpp's deepseek2 scales as DeepSeek does only for factors above 1", factor)
		case betaFast != 32 || betaSlow != 1:
			return fmt.Errorf("rope_scaling yarn beta_fast %g, beta_slow %g: llama.cpp's deepseek2 uses 32 and 1", betaFast, betaSlow)
		case mscaleAll == 0:
			return fmt.Errorf("rope_scaling yarn without mscale_all_dim: llama.cpp's deepseek2 then scales the attention by yarn_get_mscale(factor, 1)², DeepSeek's code does not")
		case mscale != mscaleAll:
			return fmt.Errorf("rope_scaling yarn mscale %g differs from mscale_all_dim %g: llama.cpp's deepseek2 takes them equal", mscale, mscaleAll)
		}
	}
	if d.NRoutedExperts == 0 {
		return nil
	}
	for l := min(d.FirstKDenseReplace, c.NumHiddenLayers); l < c.NumHiddenLayers; l++ {
		if !c.IsMoELayer(l) {
			return fmt.Errorf("moe_layer_freq %d makes layer %d dense after first_k_dense_replace %d: llama.cpp's deepseek2 has dense layers only before the first mixture-of-experts layer", d.MoeLayerFreq, l, d.FirstKDenseReplace)
		}
	}
	switch {
	case d.NSharedExperts == 0:
		return fmt.Errorf("n_shared_experts 0: llama.cpp's deepseek2 always runs shared experts")
	case d.TopkMethod == model.TopkGroupLimited && d.TopkGroup < d.NGroup:
		return fmt.Errorf("topk_method %s with topk_group %d of n_group %d: llama.cpp ranks expert groups by the sum of their two best scores (noaux_tc's rule), group_limited_greedy by the best", d.TopkMethod, d.TopkGroup, d.NGroup)
	case d.NormTopkProb && d.NumExpertsPerTok == 1:
		return fmt.Errorf("norm_topk_prob with num_experts_per_tok 1: llama.cpp normalises the single weight to 1, DeepSeek's code leaves it")
	}
	return nil
}

// grouped reports whether the router's expert groups restrict the choice
// (a method with groups, fewer groups kept than there are); llama.cpp
// refuses group metadata that keeps every group.
func grouped(d *model.DeepSeek) bool {
	return d.TopkMethod != model.TopkGreedy && d.NGroup > 1 && d.TopkGroup < d.NGroup
}

// deepseekMetadata returns the deepseek2.* metadata of a DeepSeek config
// (the keys conversion/deepseek.py writes, as llama.cpp reads them).
func deepseekMetadata(c model.Config) []gguf.KV {
	d := c.DeepSeek
	k := func(key string) string { return deepseekArch + "." + key }
	u := func(v int) uint32 { return uint32(v) }
	qRank := 0
	if d.QLoraRank != nil {
		qRank = *d.QLoraRank
	}
	// Shared experts belong to the mixture-of-experts layers: a model
	// without routed experts has none.
	dense, shared := c.NumHiddenLayers, 0
	if d.NRoutedExperts > 0 {
		dense, shared = min(d.FirstKDenseReplace, c.NumHiddenLayers), d.NSharedExperts
	}
	// llama.cpp requires the key even without experts (the converter then
	// writes intermediate_size).
	ffExp := d.MoeIntermediateSize
	if ffExp == 0 {
		ffExp = c.IntermediateSize
	}
	kv := []gguf.KV{
		{Key: k("vocab_size"), Value: u(c.VocabSize)},
		{Key: k("context_length"), Value: u(c.MaxPositionEmbeddings)},
		{Key: k("embedding_length"), Value: u(c.HiddenSize)},
		{Key: k("block_count"), Value: u(c.NumHiddenLayers)},
		{Key: k("feed_forward_length"), Value: u(c.IntermediateSize)},
		{Key: k("attention.head_count"), Value: u(c.NumAttentionHeads)},
		// MLA with absorption is MQA over the latent.
		{Key: k("attention.head_count_kv"), Value: uint32(1)},
		{Key: k("attention.layer_norm_rms_epsilon"), Value: float32(c.RMSNormEps)},
		{Key: k("rope.freq_base"), Value: float32(c.Theta())},
		{Key: k("rope.dimension_count"), Value: u(d.QKRopeHeadDim)},
		{Key: k("attention.q_lora_rank"), Value: u(qRank)},
		{Key: k("attention.kv_lora_rank"), Value: u(d.KVLoraRank)},
		{Key: k("attention.key_length"), Value: u(d.KVLoraRank + d.QKRopeHeadDim)},
		{Key: k("attention.value_length"), Value: u(d.KVLoraRank)},
		{Key: k("attention.key_length_mla"), Value: u(d.QKNopeHeadDim + d.QKRopeHeadDim)},
		{Key: k("attention.value_length_mla"), Value: u(d.VHeadDim)},
		{Key: k("leading_dense_block_count"), Value: u(dense)},
		{Key: k("expert_feed_forward_length"), Value: u(ffExp)},
		{Key: k("expert_shared_count"), Value: u(shared)},
	}
	if d.NRoutedExperts > 0 {
		gating := uint32(gatingSoftmax)
		if d.ScoringFunc == model.ScoringSigmoid {
			gating = gatingSigmoid
		}
		kv = append(kv,
			gguf.KV{Key: k("expert_count"), Value: u(d.NRoutedExperts)},
			gguf.KV{Key: k("expert_used_count"), Value: u(d.NumExpertsPerTok)},
			gguf.KV{Key: k("expert_weights_scale"), Value: float32(d.RoutedScalingFactor)},
			gguf.KV{Key: k("expert_weights_norm"), Value: d.NormTopkProb},
			gguf.KV{Key: k("expert_gating_func"), Value: gating})
		if grouped(d) {
			kv = append(kv,
				gguf.KV{Key: k("expert_group_count"), Value: u(d.NGroup)},
				gguf.KV{Key: k("expert_group_used_count"), Value: u(d.TopkGroup)})
		}
	}
	if factor, orig, _, _, _, mscaleAll, ok := yarnOf(c); ok {
		kv = append(kv,
			gguf.KV{Key: k("rope.scaling.type"), Value: "yarn"},
			gguf.KV{Key: k("rope.scaling.factor"), Value: float32(factor)},
			gguf.KV{Key: k("rope.scaling.original_context_length"), Value: u(orig)},
			// llama.cpp divides it by 0.1 again when loading
			// ([TAG_DEEPSEEK2_YARN_LOG_MUL_FIX]).
			gguf.KV{Key: k("rope.scaling.yarn_log_multiplier"), Value: float32(0.1 * mscaleAll)})
	}
	return kv
}

// deepseekKeys are the deepseek2.* metadata keys deepseekConfig reads.
var deepseekKeys = map[string]bool{
	"vocab_size": true, "context_length": true, "embedding_length": true, "block_count": true,
	"feed_forward_length": true, "attention.head_count": true, "attention.head_count_kv": true,
	"attention.layer_norm_rms_epsilon": true, "rope.freq_base": true, "rope.dimension_count": true,
	"attention.q_lora_rank": true, "attention.kv_lora_rank": true,
	"attention.key_length": true, "attention.value_length": true,
	"attention.key_length_mla": true, "attention.value_length_mla": true,
	"leading_dense_block_count": true, "expert_feed_forward_length": true, "expert_shared_count": true,
	"expert_count": true, "expert_used_count": true, "expert_weights_scale": true, "expert_weights_norm": true,
	"expert_gating_func": true, "expert_group_count": true, "expert_group_used_count": true,
	"rope.scaling.type": true, "rope.scaling.factor": true, "rope.scaling.original_context_length": true,
	"rope.scaling.yarn_log_multiplier": true, "rope.scaling.yarn_beta_fast": true, "rope.scaling.yarn_beta_slow": true,
}

// deepseekConfig rebuilds a DeepSeek config from deepseek2 metadata:
// expert_gating_func sigmoid is deepseek_v3 (noaux_tc routing, its
// correction bias required), softmax or none deepseek_v2 (greedy). What
// the metadata cannot say comes back as DeepSeek's defaults: head_dim is
// not set, num_key_value_heads is num_attention_heads, moe_layer_freq 1,
// and a model without experts is deepseek_v2 with greedy softmax routing
// fields, first_k_dense_replace its layer count and no shared experts
// (none of which it computes with). Settings llama.cpp computes
// unlike DeepSeek's code are refused, as on export.
func deepseekConfig(f *gguf.File) (model.Config, error) {
	k := func(key string) string { return deepseekArch + "." + key }
	for _, p := range f.KV {
		if rest, ok := strings.CutPrefix(p.Key, deepseekArch+"."); ok && !deepseekKeys[rest] {
			return model.Config{}, fmt.Errorf("metadata %s = %v is not implemented", p.Key, p.Value)
		}
	}
	// getInt reads a key into dst: required, or else def when missing.
	getInt := func(key string, dst *int, req bool, def int, allowZero bool) error {
		v, err := f.Int(k(key))
		if gguf.IsMissing(err) && !req {
			*dst = def
			return nil
		}
		if err != nil {
			return err
		}
		if v < 0 || (v == 0 && !allowZero) || v > 1<<31-1 {
			if allowZero {
				return fmt.Errorf("metadata %s: %d must not be negative", k(key), v)
			}
			return fmt.Errorf("metadata %s: %d must be positive", k(key), v)
		}
		*dst = int(v)
		return nil
	}
	var c model.Config
	d := &model.DeepSeek{MoeLayerFreq: 1}
	var qRank, kLen, vLen, kLenMLA, vLenMLA, kvHeads, dense, ffExp, gating int
	for _, p := range []struct {
		key       string
		dst       *int
		req       bool
		def       int
		allowZero bool
	}{
		{"embedding_length", &c.HiddenSize, true, 0, false},
		{"feed_forward_length", &c.IntermediateSize, true, 0, false},
		{"block_count", &c.NumHiddenLayers, true, 0, false},
		{"attention.head_count", &c.NumAttentionHeads, true, 0, false},
		{"attention.head_count_kv", &kvHeads, false, 1, false},
		{"context_length", &c.MaxPositionEmbeddings, true, 0, false},
		{"attention.q_lora_rank", &qRank, false, 0, true},
		{"attention.kv_lora_rank", &d.KVLoraRank, true, 0, false},
		{"rope.dimension_count", &d.QKRopeHeadDim, true, 0, false},
		{"attention.key_length_mla", &kLenMLA, false, 0, false},
		{"attention.value_length_mla", &vLenMLA, false, 0, false},
		{"attention.key_length", &kLen, false, 0, false},
		{"attention.value_length", &vLen, false, 0, false},
		{"leading_dense_block_count", &dense, false, 0, true},
		{"expert_feed_forward_length", &ffExp, true, 0, false},
		{"expert_shared_count", &d.NSharedExperts, true, 0, true},
		{"expert_count", &d.NRoutedExperts, false, 0, true},
		{"expert_used_count", &d.NumExpertsPerTok, false, 0, true},
		{"expert_gating_func", &gating, false, gatingSoftmax, false},
		{"expert_group_count", &d.NGroup, false, 0, false},
		{"expert_group_used_count", &d.TopkGroup, false, 0, false},
	} {
		if err := getInt(p.key, p.dst, p.req, p.def, p.allowZero); err != nil {
			return c, err
		}
	}
	if c.NumHiddenLayers > len(f.Tensors) {
		return c, fmt.Errorf("metadata %s %d: the file holds only %d tensors", k("block_count"), c.NumHiddenLayers, len(f.Tensors))
	}
	if kLenMLA == 0 || vLenMLA == 0 {
		return c, fmt.Errorf("metadata %s and %s are missing: the older layout with an unsplit attn_kv_b is not implemented", k("attention.key_length_mla"), k("attention.value_length_mla"))
	}
	d.QKNopeHeadDim, d.VHeadDim = kLenMLA-d.QKRopeHeadDim, vLenMLA
	if d.QKNopeHeadDim <= 0 {
		return c, fmt.Errorf("metadata %s %d must exceed %s %d", k("attention.key_length_mla"), kLenMLA, k("rope.dimension_count"), d.QKRopeHeadDim)
	}
	switch {
	case kvHeads != 1:
		return c, fmt.Errorf("metadata %s %d: multi-head latent attention is stored as one key/value head", k("attention.head_count_kv"), kvHeads)
	case kLen != 0 && kLen != d.KVLoraRank+d.QKRopeHeadDim:
		return c, fmt.Errorf("metadata %s %d is not kv_lora_rank + rope dimensions %d", k("attention.key_length"), kLen, d.KVLoraRank+d.QKRopeHeadDim)
	case vLen != 0 && vLen != d.KVLoraRank:
		return c, fmt.Errorf("metadata %s %d is not kv_lora_rank %d", k("attention.value_length"), vLen, d.KVLoraRank)
	}
	if qRank > 0 {
		d.QLoraRank = &qRank
	}
	eps, err := f.Float(k("attention.layer_norm_rms_epsilon"))
	if err != nil {
		return c, err
	}
	if c.RMSNormEps = shortest(eps); c.RMSNormEps != mlaNormEps {
		return c, fmt.Errorf("metadata %s %g: llama.cpp normalises q_a and kv_a with it, DeepSeek's code with %g; only %g is implemented", k("attention.layer_norm_rms_epsilon"), c.RMSNormEps, mlaNormEps, mlaNormEps)
	}
	c.RopeTheta = 10000
	if v, err := f.Float(k("rope.freq_base")); err == nil {
		c.RopeTheta = shortest(v)
	} else if !gguf.IsMissing(err) {
		return c, err
	}
	c.ModelType = "deepseek_v2"
	d.ScoringFunc, d.TopkMethod, d.RoutedScalingFactor = model.ScoringSoftmax, model.TopkGreedy, 1
	if d.NRoutedExperts > 0 {
		d.FirstKDenseReplace = dense
		d.MoeIntermediateSize = ffExp
		switch gating {
		case gatingSoftmax:
			if d.NGroup > 1 {
				return c, fmt.Errorf("metadata %s %d with softmax gating: llama.cpp ranks groups by the sum of their two best scores, deepseek_v2's group_limited_greedy by the best; not implemented", k("expert_group_count"), d.NGroup)
			}
		case gatingSigmoid:
			c.ModelType = "deepseek_v3"
			d.ScoringFunc, d.TopkMethod = model.ScoringSigmoid, model.TopkNoAuxTC
			if d.NGroup <= 1 && d.TopkGroup == 0 {
				d.NGroup, d.TopkGroup = 1, 1 // no groups: llama.cpp groups only more than one
			}
			if d.TopkGroup == 0 {
				return c, fmt.Errorf("metadata %s is missing beside %s", k("expert_group_used_count"), k("expert_group_count"))
			}
		default:
			return c, fmt.Errorf("metadata %s %d is not implemented (1 softmax, 2 sigmoid)", k("expert_gating_func"), gating)
		}
		if d.ScoringFunc == model.ScoringSoftmax && (d.NGroup != 0 || d.TopkGroup != 0) {
			d.NGroup, d.TopkGroup = 0, 0
		}
		if v, err := f.Float(k("expert_weights_scale")); err == nil {
			if v != 0 { // llama.cpp: 0 means no scaling
				d.RoutedScalingFactor = shortest(v)
			}
		} else if !gguf.IsMissing(err) {
			return c, err
		}
		if v, err := f.Bool(k("expert_weights_norm")); err == nil {
			d.NormTopkProb = v
		} else if !gguf.IsMissing(err) {
			return c, err
		}
		if d.NormTopkProb && d.NumExpertsPerTok == 1 {
			return c, fmt.Errorf("metadata %s with %s 1: llama.cpp normalises the single weight to 1, DeepSeek's code leaves it; not implemented", k("expert_weights_norm"), k("expert_used_count"))
		}
		if d.NSharedExperts == 0 {
			return c, fmt.Errorf("metadata %s 0 with experts is not implemented", k("expert_shared_count"))
		}
	} else {
		d.FirstKDenseReplace, d.MoeIntermediateSize = c.NumHiddenLayers, ffExp
		if d.NumExpertsPerTok != 0 || d.NGroup != 0 || d.NSharedExperts != 0 {
			return c, fmt.Errorf("metadata %s is missing beside other expert keys", k("expert_count"))
		}
	}
	fam, err := model.LookupFamily(c.ModelType)
	if err != nil {
		return c, err
	}
	c.Architectures = fam.Architectures[:1]
	c.NumKeyValueHeads = c.NumAttentionHeads
	c.DeepSeek = d
	if s, err := deepseekYaRN(f); err != nil {
		return c, err
	} else if s != nil {
		c.RopeScaling = s
	}
	if err := tokenShapes(f, &c); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// deepseekYaRN reads the rope.scaling.* keys of a deepseek2 file: YaRN as
// DeepSeek defines it with mscale = mscale_all_dim (what llama.cpp
// computes), or none.
func deepseekYaRN(f *gguf.File) (*model.RopeScaling, error) {
	k := func(key string) string { return deepseekArch + "." + key }
	typ, err := f.String(k("rope.scaling.type"))
	if gguf.IsMissing(err) || (err == nil && typ == "none") {
		for _, key := range []string{"rope.scaling.factor", "rope.scaling.original_context_length", "rope.scaling.yarn_log_multiplier", "rope.scaling.yarn_beta_fast", "rope.scaling.yarn_beta_slow"} {
			if _, ok := f.Get(k(key)); ok {
				return nil, fmt.Errorf("metadata %s without %s yarn is not implemented", k(key), k("rope.scaling.type"))
			}
		}
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if typ != "yarn" {
		return nil, fmt.Errorf("metadata %s = %s is not implemented (only yarn)", k("rope.scaling.type"), typ)
	}
	factor, err := f.Float(k("rope.scaling.factor"))
	if err != nil {
		return nil, err
	}
	orig, err := f.Int(k("rope.scaling.original_context_length"))
	if err != nil {
		return nil, err
	}
	logMul, err := f.Float(k("rope.scaling.yarn_log_multiplier"))
	if gguf.IsMissing(err) {
		return nil, fmt.Errorf("metadata %s is missing: llama.cpp then scales the attention by yarn_get_mscale(factor, 1)², which DeepSeek's YaRN does not; not implemented", k("rope.scaling.yarn_log_multiplier"))
	}
	if err != nil {
		return nil, err
	}
	// llama.cpp's converter writes DeepSeek's beta_fast and beta_slow,
	// which its deepseek2 does not read (it uses 32 and 1): other values
	// are a YaRN llama.cpp does not compute.
	for _, b := range []struct {
		key  string
		want float64
	}{{"rope.scaling.yarn_beta_fast", 32}, {"rope.scaling.yarn_beta_slow", 1}} {
		if v, err := f.Float(k(b.key)); err == nil && v != b.want {
			return nil, fmt.Errorf("metadata %s %g: llama.cpp's deepseek2 uses %g; not implemented", k(b.key), v, b.want)
		} else if err != nil && !gguf.IsMissing(err) {
			return nil, err
		}
	}
	factor = shortest(factor)
	if !(factor > 1) || orig <= 0 || orig > 1<<31-1 || !(logMul > 0) {
		return nil, fmt.Errorf("metadata %s %g, %s %d, %s %g: want a factor above 1, a positive context and multiplier", k("rope.scaling.factor"), factor, k("rope.scaling.original_context_length"), orig, k("rope.scaling.yarn_log_multiplier"), logMul)
	}
	m := shortest(shortest(logMul) / 0.1)
	m2 := m
	return &model.RopeScaling{Type: "yarn", Factor: factor, OriginalMaxPositionEmbeddings: int(orig), MScale: &m, MScaleAllDim: &m2}, nil
}

// tokenShapes sets the vocabulary size and the tied head from the
// embedding and output tensors, and the defaults of a GGUF config.
func tokenShapes(f *gguf.File, c *model.Config) error {
	emb, ok := f.Tensor("token_embd.weight")
	if !ok {
		return fmt.Errorf("tensor token_embd.weight is missing")
	}
	if len(emb.Shape) != 2 {
		return fmt.Errorf("tensor token_embd.weight has shape %v, want 2 dimensions", emb.Shape)
	}
	c.VocabSize = emb.Shape[0]
	arch := c.ModelType
	if c.MLA() {
		arch = deepseekArch
	}
	if v, err := f.Int(arch + ".vocab_size"); err == nil && v != int64(c.VocabSize) {
		return fmt.Errorf("metadata %s.vocab_size %d differs from the %d rows of token_embd.weight", arch, v, c.VocabSize)
	}
	_, hasOutput := f.Tensor("output.weight")
	c.TieWordEmbeddings = !hasOutput
	c.HiddenAct = "silu"
	c.TorchDtype = "float32"
	return nil
}

// loadDeepSeek reads the tensors of a deepseek2 file into w (allocated for
// c), checking each for NaN and ±Inf, and marks them used.
func loadDeepSeek(f *gguf.File, w *model.Weights, used map[string]bool) error {
	for _, t := range deepseekLayout(w.Config, w) {
		data, err := f.ReadFloat32(t.name)
		if err != nil {
			return err
		}
		for i, v := range data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("tensor %s holds %v at index %d", t.name, v, i)
			}
		}
		t.set(data)
		used[t.name] = true
	}
	return nil
}
