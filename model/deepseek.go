package model

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// DeepSeek is the part of config.json that DeepSeek-V2 and -V3
// (`deepseek_v2`, `deepseek_v3`) add to a LLaMA-style decoder: multi-head
// latent attention (MLA, DeepSeek-V2 paper §2.1) and a mixture-of-experts
// feed-forward (DeepSeekMoE, §2.2). Its keys are flattened into Config's
// JSON; it is nil for every other family. All its keys must be present in
// config.json (q_lora_rank, n_routed_experts, n_shared_experts, n_group and
// topk_group may be null), because the Hugging Face defaults of DeepseekV2Config and
// DeepseekV3Config are the full-size models', not values derived from the
// other keys; SaveModel writes them all.
type DeepSeek struct {
	// QLoraRank is the rank of the query compression (q_a_proj,
	// q_a_layernorm, q_b_proj); nil for a plain q_proj.
	QLoraRank *int `json:"q_lora_rank"`
	// KVLoraRank is the width of the compressed key/value latent c_KV that
	// kv_a_proj_with_mqa produces (with the shared rope key) and the
	// generation cache stores.
	KVLoraRank int `json:"kv_lora_rank"`
	// QKNopeHeadDim and QKRopeHeadDim split each query/key head into the
	// part without position (from the latent) and the rotary part (the key's
	// is shared by all heads); VHeadDim is the value head width.
	QKNopeHeadDim int `json:"qk_nope_head_dim"`
	QKRopeHeadDim int `json:"qk_rope_head_dim"`
	VHeadDim      int `json:"v_head_dim"`

	// NRoutedExperts routed experts (0 or null: every layer is dense), of
	// which NumExpertsPerTok are chosen per token; NSharedExperts always
	// run, as one SwiGLU of width NSharedExperts·MoeIntermediateSize.
	NRoutedExperts      int `json:"n_routed_experts"`
	NumExpertsPerTok    int `json:"num_experts_per_tok"`
	NSharedExperts      int `json:"n_shared_experts"`
	MoeIntermediateSize int `json:"moe_intermediate_size"`
	// Layer l is a MoE layer when l ≥ FirstKDenseReplace and
	// l mod MoeLayerFreq = 0; the others are dense (intermediate_size).
	FirstKDenseReplace int `json:"first_k_dense_replace"`
	MoeLayerFreq       int `json:"moe_layer_freq"`
	// ScoringFunc turns router logits into scores: "softmax" or "sigmoid".
	ScoringFunc string `json:"scoring_func"`
	// TopkMethod selects the experts: "greedy" (top-k scores),
	// "group_limited_greedy" (top-k among the TopkGroup groups of the
	// highest max score) or "noaux_tc" (choice by score +
	// e_score_correction_bias, groups ranked by the sum of their two best).
	TopkMethod string `json:"topk_method"`
	NGroup     int    `json:"n_group"`
	TopkGroup  int    `json:"topk_group"`
	// NormTopkProb divides the chosen scores by their sum (when more than
	// one expert is chosen); RoutedScalingFactor then multiplies them.
	NormTopkProb        bool    `json:"norm_topk_prob"`
	RoutedScalingFactor float64 `json:"routed_scaling_factor"`
}

// deepseekKeys are DeepSeek's JSON keys, each required in config.json.
var deepseekKeys = func() []string {
	var keys []string
	t := reflect.TypeOf(DeepSeek{})
	for i := range t.NumField() {
		keys = append(keys, strings.Split(t.Field(i).Tag.Get("json"), ",")[0])
	}
	return keys
}()

// Top-k methods and scoring functions of DeepSeek routers.
const (
	ScoringSoftmax   = "softmax"
	ScoringSigmoid   = "sigmoid"
	TopkGreedy       = "greedy"
	TopkGroupLimited = "group_limited_greedy"
	TopkNoAuxTC      = "noaux_tc"
	deepseekV2       = "deepseek_v2"
	deepseekV3       = "deepseek_v3"
	yarn             = "yarn"
)

// deepseekFamilyKeys are the config.json keys both DeepSeek families
// accept beyond commonKeys and DeepSeek's own.
func deepseekFamilyKeys(classes ...string) map[string]KeyCheck {
	keys := map[string]KeyCheck{
		"attention_bias": falseBool, // biases on q/kv_a/o projections
		"pretraining_tp": nil,
		// The auxiliary balance loss (DeepSeek-V2 §2.2.3) is a training
		// option, off here; the forward pass does not depend on it.
		"aux_loss_alpha": nil, "seq_aux": nil,
		// Expert parallelism only distributes the same computation.
		"ep_size": nil,
		// Multi-token-prediction layers (DeepSeek-V3 §2.2) are not part of
		// the causal LM; their tensors, if present, are refused as unused.
		"num_nextn_predict_layers": nil,
		// DeepSeek's rotary part is interleaved (pairs 2i, 2i+1), which is
		// what is implemented.
		"rope_interleave": trueBool,
		"rope_scaling":    checkRopeKeys, // the type is checked by Validate
		"rope_parameters": checkRopeKeys,
		"auto_map":        checkAutoMap(classes...),
		"head_dim":        nil, // checked by Validate: qk_rope_head_dim when given
	}
	for _, k := range deepseekKeys {
		keys[k] = nil // checked by Config.Validate
	}
	return keys
}

func trueBool(_ map[string]json.RawMessage, v json.RawMessage) error {
	if isNull(v) {
		return nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return fmt.Errorf("want true or false: %w", err)
	}
	if !b {
		return fmt.Errorf("false is not implemented (only true)")
	}
	return nil
}

// checkAutoMap accepts an auto_map whose entries all name the published
// DeepSeek classes of the family (the custom code that this package
// reimplements), and nothing else.
func checkAutoMap(classes ...string) KeyCheck {
	return func(_ map[string]json.RawMessage, v json.RawMessage) error {
		if isNull(v) {
			return nil
		}
		var m map[string]string
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("want an object of strings: %w", err)
		}
		for k, ref := range m {
			ok := false
			for _, c := range classes {
				ok = ok || strings.HasSuffix(ref, "."+c)
			}
			if !ok {
				return fmt.Errorf("entry %s = %q is custom code other than %s", k, ref, strings.Join(classes, ", "))
			}
		}
		return nil
	}
}

// MLA reports multi-head latent attention (the DeepSeek families).
func (c *Config) MLA() bool { return c.DeepSeek != nil }

// QKHeadDim is the width of one MLA query/key head, qk_nope + qk_rope.
func (c *Config) QKHeadDim() int { return c.QKNopeHeadDim + c.QKRopeHeadDim }

// RopeDim is the number of dimensions per head that RoPE rotates: the
// head dimension, or qk_rope_head_dim under MLA.
func (c *Config) RopeDim() int {
	if c.MLA() {
		return c.QKRopeHeadDim
	}
	return c.HeadDim()
}

// IsMoELayer reports whether layer l has a routed mixture-of-experts
// feed-forward (DeepseekV2DecoderLayer's rule).
func (c *Config) IsMoELayer(l int) bool {
	d := c.DeepSeek
	return d != nil && d.NRoutedExperts > 0 && l >= d.FirstKDenseReplace && d.MoeLayerFreq > 0 && l%d.MoeLayerFreq == 0
}

// validateDeepSeek checks the MLA and MoE settings of a DeepSeek config;
// each error names the key.
func (c *Config) validateDeepSeek() error {
	d := c.DeepSeek
	if d == nil {
		return fmt.Errorf("model_type %s needs the keys %s", c.ModelType, strings.Join(deepseekKeys, ", "))
	}
	switch {
	case d.QLoraRank != nil && *d.QLoraRank <= 0:
		return fmt.Errorf("q_lora_rank %d must be positive or null", *d.QLoraRank)
	case d.KVLoraRank <= 0:
		return fmt.Errorf("kv_lora_rank %d must be positive", d.KVLoraRank)
	case d.QKNopeHeadDim <= 0:
		return fmt.Errorf("qk_nope_head_dim %d must be positive", d.QKNopeHeadDim)
	case d.QKRopeHeadDim <= 0 || d.QKRopeHeadDim%2 != 0:
		return fmt.Errorf("qk_rope_head_dim %d must be positive and even", d.QKRopeHeadDim)
	case d.VHeadDim <= 0:
		return fmt.Errorf("v_head_dim %d must be positive", d.VHeadDim)
	case c.HeadDimOverride > 0 && c.HeadDimOverride != d.QKRopeHeadDim:
		return fmt.Errorf("head_dim %d must equal qk_rope_head_dim %d (DeepSeek configs name the rotary width so)", c.HeadDimOverride, d.QKRopeHeadDim)
	case c.AttentionBias:
		return fmt.Errorf("attention_bias true is not implemented for model_type %s", c.ModelType)
	case c.Scaling() != nil && c.Scaling().Kind() != yarn:
		return fmt.Errorf("rope_scaling type %q is not implemented for model_type %s (only yarn, as DeepSeek defines it)", c.Scaling().Kind(), c.ModelType)
	case c.Scaling() != nil && !(c.Scaling().Factor > 0):
		return fmt.Errorf("rope_scaling yarn: factor %v must be positive", c.Scaling().Factor)
	case c.Scaling() != nil && c.Scaling().OriginalMaxPositionEmbeddings < 0:
		return fmt.Errorf("rope_scaling yarn: original_max_position_embeddings %d must be positive", c.Scaling().OriginalMaxPositionEmbeddings)
	case d.NRoutedExperts < 0:
		return fmt.Errorf("n_routed_experts %d must be positive or null", d.NRoutedExperts)
	}
	if d.NRoutedExperts == 0 {
		return nil
	}
	E := d.NRoutedExperts
	switch {
	case d.NumExpertsPerTok <= 0 || d.NumExpertsPerTok > E:
		return fmt.Errorf("num_experts_per_tok %d must be in [1, n_routed_experts %d]", d.NumExpertsPerTok, E)
	case d.MoeIntermediateSize <= 0:
		return fmt.Errorf("moe_intermediate_size %d must be positive", d.MoeIntermediateSize)
	case d.NSharedExperts < 0:
		return fmt.Errorf("n_shared_experts %d must be ≥ 0 or null", d.NSharedExperts)
	case d.MoeLayerFreq <= 0:
		return fmt.Errorf("moe_layer_freq %d must be positive", d.MoeLayerFreq)
	case d.FirstKDenseReplace < 0:
		return fmt.Errorf("first_k_dense_replace %d must be ≥ 0", d.FirstKDenseReplace)
	case !(d.RoutedScalingFactor > 0):
		return fmt.Errorf("routed_scaling_factor %v must be positive", d.RoutedScalingFactor)
	}
	// The published modeling code of each family implements one set of
	// routers; anything else would not load in Hugging Face either.
	switch c.ModelType {
	case deepseekV2:
		if d.ScoringFunc != ScoringSoftmax {
			return fmt.Errorf("scoring_func %q is not implemented for deepseek_v2 (only softmax)", d.ScoringFunc)
		}
		if d.TopkMethod != TopkGreedy && d.TopkMethod != TopkGroupLimited {
			return fmt.Errorf("topk_method %q is not implemented for deepseek_v2 (greedy or group_limited_greedy)", d.TopkMethod)
		}
		if d.NormTopkProb && d.NumExpertsPerTok > 1 && d.RoutedScalingFactor != 1 {
			// DeepSeek's released code scales only unnormalised weights;
			// transformers' port scales both: the model is ambiguous.
			return fmt.Errorf("routed_scaling_factor %v with norm_topk_prob true is not implemented for deepseek_v2 (its published implementations disagree); only 1", d.RoutedScalingFactor)
		}
	case deepseekV3:
		if d.ScoringFunc != ScoringSigmoid {
			return fmt.Errorf("scoring_func %q is not implemented for deepseek_v3 (only sigmoid)", d.ScoringFunc)
		}
		if d.TopkMethod != TopkNoAuxTC {
			return fmt.Errorf("topk_method %q is not implemented for deepseek_v3 (only noaux_tc)", d.TopkMethod)
		}
	}
	if d.TopkMethod == TopkGroupLimited || d.TopkMethod == TopkNoAuxTC {
		switch {
		case d.NGroup <= 0 || E%d.NGroup != 0:
			return fmt.Errorf("n_group %d must be positive and divide n_routed_experts %d (topk_method %s)", d.NGroup, E, d.TopkMethod)
		case d.TopkGroup <= 0 || d.TopkGroup > d.NGroup:
			return fmt.Errorf("topk_group %d must be in [1, n_group %d] (topk_method %s)", d.TopkGroup, d.NGroup, d.TopkMethod)
		case d.TopkGroup*(E/d.NGroup) < d.NumExpertsPerTok:
			return fmt.Errorf("topk_group %d groups of %d experts cannot hold num_experts_per_tok %d", d.TopkGroup, E/d.NGroup, d.NumExpertsPerTok)
		case d.TopkMethod == TopkNoAuxTC && E/d.NGroup < 2:
			return fmt.Errorf("n_group %d leaves groups of %d expert, noaux_tc ranks groups by their two best", d.NGroup, E/d.NGroup)
		}
	}
	return nil
}

// yarnParams are DeepSeek's YaRN settings (DeepseekV2YarnRotaryEmbedding,
// after Peng et al. 2023, "YaRN: Efficient Context Window Extension of
// Large Language Models"), with the defaults of DeepSeek's code for keys
// rope_scaling leaves out.
type yarnParams struct {
	factor, orig, betaFast, betaSlow, mscale, mscaleAllDim float64
}

// yarn returns the configured YaRN settings, or nil.
func (c *Config) yarn() *yarnParams {
	s := c.Scaling()
	if s == nil || s.Kind() != yarn {
		return nil
	}
	y := &yarnParams{factor: s.Factor, orig: 4096, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 0}
	if s.OriginalMaxPositionEmbeddings > 0 {
		y.orig = float64(s.OriginalMaxPositionEmbeddings)
	}
	for _, f := range []struct {
		p   *float64
		dst *float64
	}{{s.BetaFast, &y.betaFast}, {s.BetaSlow, &y.betaSlow}, {s.MScale, &y.mscale}, {s.MScaleAllDim, &y.mscaleAllDim}} {
		if f.p != nil {
			*f.dst = *f.p
		}
	}
	return y
}

// yarnMScale is DeepSeek's yarn_get_mscale: 0.1·m·ln(scale) + 1 for
// scale > 1, else 1.
func yarnMScale(scale, m float64) float64 {
	if scale <= 1 {
		return 1
	}
	return 0.1*m*math.Log(scale) + 1
}

// invFreq rescales the inverse frequencies inv (of a rotary width 2·len)
// as YaRN does: dimensions rotating more than beta_fast times over the
// original context keep their frequency, those rotating fewer than
// beta_slow times are divided by factor, with a linear ramp between
// (yarn_find_correction_range and yarn_linear_ramp_mask).
func (y *yarnParams) invFreq(inv []float64, base float64) []float64 {
	dim := float64(2 * len(inv))
	corr := func(rot float64) float64 {
		return dim * math.Log(y.orig/(rot*2*math.Pi)) / (2 * math.Log(base))
	}
	low := math.Max(math.Floor(corr(y.betaFast)), 0)
	high := math.Min(math.Ceil(corr(y.betaSlow)), dim-1)
	if low == high {
		high += 0.001
	}
	for i, f := range inv {
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		keep := 1 - ramp // weight of the unscaled frequency
		inv[i] = f/y.factor*(1-keep) + f*keep
	}
	return inv
}

// RopeMagnitude multiplies the rotated query and key parts: YaRN's cos/sin
// factor yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor,
// mscale_all_dim); 1 without YaRN.
func (c *Config) RopeMagnitude() float64 {
	y := c.yarn()
	if y == nil {
		return 1
	}
	return yarnMScale(y.factor, y.mscale) / yarnMScale(y.factor, y.mscaleAllDim)
}

// MLASoftmaxScale is MLA's attention scale: 1/√(qk_nope + qk_rope), times
// yarn_get_mscale(factor, mscale_all_dim)² under YaRN with mscale_all_dim
// set (DeepseekV2Attention).
func (c *Config) MLASoftmaxScale() float64 {
	s := 1 / math.Sqrt(float64(c.QKHeadDim()))
	if y := c.yarn(); y != nil && y.mscaleAllDim != 0 {
		m := yarnMScale(y.factor, y.mscaleAllDim)
		s *= m * m
	}
	return s
}
