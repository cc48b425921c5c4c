package model

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Family is one decoder architecture the model implements, registered by
// its Hugging Face `model_type`. Loading is strict: a config.json key that
// the family neither implements nor lists as harmless metadata is refused,
// because an unknown key may change the computation and a fine-tuning tool
// must never load a model silently wrong.
type Family struct {
	// ModelType is config.json's `model_type`.
	ModelType string
	// Architectures are the `architectures` entries that name this family;
	// the first is written when a config has none.
	Architectures []string
	// QKNorm: an RMSNorm over the head dimension, with its own weight (D),
	// on every query and key head after the q/k projections and before
	// RoPE (Qwen3).
	QKNorm bool
	// ImpliedBias: q/k/v projections always have biases, whatever the
	// config says (Qwen2's attention is built with bias=True).
	ImpliedBias bool
	// SlidingWindowSwitch: `sliding_window` applies only while
	// `use_sliding_window` is true (Qwen2, Qwen3); without it the window
	// applies whenever it is set (Mistral).
	SlidingWindowSwitch bool
	// DefaultSlidingWindow is the window Hugging Face assumes when
	// config.json has no sliding_window key (Mistral: 4096); 0 for none.
	// A config without a window must then say "sliding_window": null.
	DefaultSlidingWindow int
	// ExplicitKeys must be present in config.json: Hugging Face's default
	// for them differs from what Config derives when they are absent
	// (num_key_value_heads = num_attention_heads, head_dim =
	// hidden_size / num_attention_heads). SaveModel writes them.
	ExplicitKeys []string
	// PresentKeys must be present in config.json, though they may be null
	// (null is a value of its own there, and Hugging Face's default for
	// the absent key is not it). SaveModel writes them.
	PresentKeys []string
	// DeepSeek: multi-head latent attention and mixture-of-experts layers
	// configured by Config.DeepSeek (DeepSeek-V2, -V3).
	DeepSeek bool
	// Keys are the config.json keys the family accepts beyond
	// commonKeys, each with a check of its value (nil: any value).
	Keys map[string]KeyCheck
}

// KeyCheck validates the value of one config.json key, given the whole
// raw config (some keys matter only together with others).
type KeyCheck func(raw map[string]json.RawMessage, value json.RawMessage) error

// commonKeys are accepted by every family. The first group is the
// architecture the model implements (Config's fields; their values are
// checked by Config.Validate); the second is metadata that does not change
// the computation.
var commonKeys = map[string]KeyCheck{
	"architectures": nil, "model_type": nil, "hidden_size": nil, "intermediate_size": nil,
	"num_hidden_layers": nil, "num_attention_heads": nil, "num_key_value_heads": nil,
	"head_dim": nil, "vocab_size": nil, "max_position_embeddings": nil, "rms_norm_eps": nil,
	"rope_theta": nil, "rope_scaling": checkRopeKeys, "rope_parameters": checkRopeKeys,
	"tie_word_embeddings": nil, "hidden_act": nil,

	"_name_or_path": nil, "transformers_version": nil, "torch_dtype": nil, "dtype": nil,
	"bos_token_id": nil, "eos_token_id": nil, "pad_token_id": nil, "use_cache": nil,
	"initializer_range": nil,
	// Dropout on attention probabilities changes training; only 0 is
	// implemented.
	"attention_dropout": zeroNumber,
}

// families is the registry, by model_type.
var families = map[string]*Family{
	"llama": {
		ModelType: "llama", Architectures: []string{"LlamaForCausalLM"},
		Keys: map[string]KeyCheck{
			"attention_bias": nil,
			"mlp_bias":       falseBool,
			// Slicing the projections into pretraining_tp pieces computes
			// the same sums (Hugging Face keeps it for bit-exactness only).
			"pretraining_tp": nil,
			// gotune's own attention options (values checked by
			// Config.Validate); only models gotune pretrains have them.
			"gotune_attention":      nil,
			"gotune_gau_shared_dim": nil,
			"gotune_gau_chunk":      nil,
		},
	},
	"mistral": {
		ModelType: "mistral", Architectures: []string{"MistralForCausalLM"}, DefaultSlidingWindow: 4096,
		ExplicitKeys: []string{"num_key_value_heads"}, // default 8
		Keys: map[string]KeyCheck{
			"attention_bias": falseBool, // Mistral's projections have no bias
			"sliding_window": nil,       // checked by Config.Validate
		},
	},
	"qwen2": {
		ModelType: "qwen2", Architectures: []string{"Qwen2ForCausalLM"}, ImpliedBias: true, SlidingWindowSwitch: true,
		ExplicitKeys: []string{"num_key_value_heads"}, // default 32
		Keys: map[string]KeyCheck{
			"attention_bias":     nil, // ignored: Qwen2 always has q/k/v biases
			"sliding_window":     nil, // checked by Config.Validate
			"use_sliding_window": nil,
			"max_window_layers":  nil, // which layers a sliding window would reach
			"layer_types":        checkLayerTypes,
		},
	},
	"qwen3": {
		ModelType: "qwen3", Architectures: []string{"Qwen3ForCausalLM"}, QKNorm: true, SlidingWindowSwitch: true,
		ExplicitKeys: []string{"num_key_value_heads", "head_dim"}, // defaults 32 and 128
		Keys: map[string]KeyCheck{
			"attention_bias":     nil,
			"sliding_window":     nil, // checked by Config.Validate
			"use_sliding_window": nil,
			"max_window_layers":  nil,
			"layer_types":        checkLayerTypes,
		},
	},
	"deepseek_v2": {
		ModelType: "deepseek_v2", Architectures: []string{"DeepseekV2ForCausalLM"}, DeepSeek: true,
		PresentKeys: deepseekKeys,
		Keys:        deepseekFamilyKeys("DeepseekV2Config", "DeepseekV2Model", "DeepseekV2ForCausalLM"),
	},
	"deepseek_v3": {
		ModelType: "deepseek_v3", Architectures: []string{"DeepseekV3ForCausalLM"}, DeepSeek: true,
		PresentKeys: deepseekKeys,
		Keys:        deepseekFamilyKeys("DeepseekV3Config", "DeepseekV3Model", "DeepseekV3ForCausalLM"),
	},
}

// notImplemented names config keys of other architectures that change the
// computation, with what they mean, so that the refusal says why.
var notImplemented = map[string]string{
	"attn_logit_softcapping":  "attention logit soft-capping",
	"final_logit_softcapping": "final logit soft-capping",
	"query_pre_attn_scalar":   "a query scale other than 1/√head_dim",
	"partial_rotary_factor":   "partial rotary embeddings",
	"q_lora_rank":             "multi-head latent attention",
	"kv_lora_rank":            "multi-head latent attention",
	"qk_rope_head_dim":        "multi-head latent attention",
	"qk_nope_head_dim":        "multi-head latent attention",
	"v_head_dim":              "multi-head latent attention",
	"n_routed_experts":        "mixture of experts",
	"n_shared_experts":        "mixture of experts",
	"num_experts":             "mixture of experts",
	"num_local_experts":       "mixture of experts",
	"num_experts_per_tok":     "mixture of experts",
	"moe_intermediate_size":   "mixture of experts",
	"sliding_window":          "sliding-window attention",
	"quantization_config":     "quantized weights",
	"auto_map":                "a model defined by custom code",
	"gotune_attention":        "gotune's linear-time attention options (model_type llama only)",
	"gotune_gau_shared_dim":   "gotune's Gated Attention Unit (model_type llama only)",
	"gotune_gau_chunk":        "gotune's Gated Attention Unit (model_type llama only)",
}

// LookupFamily returns the registered family of a model_type.
func LookupFamily(modelType string) (*Family, error) {
	if f, ok := families[modelType]; ok {
		return f, nil
	}
	if modelType == "" {
		return nil, fmt.Errorf("model_type is missing (implemented: %s)", strings.Join(FamilyNames(), ", "))
	}
	return nil, fmt.Errorf("model_type %q is not implemented (implemented: %s)", modelType, strings.Join(FamilyNames(), ", "))
}

// FamilyNames lists the registered model_types, sorted.
func FamilyNames() []string {
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkKeys refuses every key of a raw config.json that f does not accept,
// and runs the value check of those it does.
func (f *Family) checkKeys(raw map[string]json.RawMessage) error {
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		check, ok := f.Keys[k]
		if !ok {
			check, ok = commonKeys[k]
		}
		if !ok {
			if what, known := notImplemented[k]; known {
				return fmt.Errorf("key %q (%s) is not implemented for model_type %s", k, what, f.ModelType)
			}
			return fmt.Errorf("unknown key %q for model_type %s: it may change the computation, so the model is not loaded", k, f.ModelType)
		}
		if check != nil {
			if err := check(raw, raw[k]); err != nil {
				return fmt.Errorf("key %q: %w", k, err)
			}
		}
	}
	return nil
}

// checkExplicit refuses a raw config.json lacking one of f.ExplicitKeys.
func (f *Family) checkExplicit(raw map[string]json.RawMessage) error {
	for _, k := range f.ExplicitKeys {
		if isNull(raw[k]) {
			return fmt.Errorf("key %q is missing: for model_type %s, Hugging Face's default is not the value derived from the other keys, so it must be given", k, f.ModelType)
		}
	}
	return nil
}

// checkPresent refuses a raw config.json lacking one of f.PresentKeys.
func (f *Family) checkPresent(raw map[string]json.RawMessage) error {
	for _, k := range f.PresentKeys {
		if _, ok := raw[k]; !ok {
			return fmt.Errorf("key %q is missing: for model_type %s, Hugging Face's default is the full-size model's, so it must be given (null where it does not apply)", k, f.ModelType)
		}
	}
	return nil
}

// checkArchitectures refuses `architectures` entries of another family
// (or another head, such as a sequence classifier).
func (f *Family) checkArchitectures(archs []string) error {
	for _, a := range archs {
		if !slices.Contains(f.Architectures, a) {
			return fmt.Errorf("architectures entry %q is not implemented for model_type %s (want %s)", a, f.ModelType, strings.Join(f.Architectures, " or "))
		}
	}
	return nil
}

// isNull reports a JSON null (or an absent value).
func isNull(v json.RawMessage) bool { return len(v) == 0 || string(v) == "null" }

func zeroNumber(_ map[string]json.RawMessage, v json.RawMessage) error {
	if isNull(v) {
		return nil
	}
	var x float64
	if err := json.Unmarshal(v, &x); err != nil {
		return fmt.Errorf("want a number: %w", err)
	}
	if x != 0 {
		return fmt.Errorf("%v is not implemented (only 0)", x)
	}
	return nil
}

func falseBool(_ map[string]json.RawMessage, v json.RawMessage) error {
	if isNull(v) {
		return nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return fmt.Errorf("want true or false: %w", err)
	}
	if b {
		return fmt.Errorf("true is not implemented (only false)")
	}
	return nil
}

// checkLayerTypes accepts a per-layer attention list of full attention
// only; a sliding-attention layer is refused unless its window is null.
func checkLayerTypes(raw map[string]json.RawMessage, v json.RawMessage) error {
	if isNull(v) {
		return nil
	}
	var types []string
	if err := json.Unmarshal(v, &types); err != nil {
		return fmt.Errorf("want a list of strings: %w", err)
	}
	for i, t := range types {
		switch {
		case t == "full_attention":
		case t == "sliding_attention" && isNull(raw["sliding_window"]):
		default:
			return fmt.Errorf("layer %d is %q: only full_attention is implemented", i, t)
		}
	}
	return nil
}

// ropeKeys are the fields of RopeScaling.
var ropeKeys = []string{"rope_type", "type", "factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings", "rope_theta",
	"beta_fast", "beta_slow", "mscale", "mscale_all_dim"}

// checkRopeKeys refuses fields of a rope_scaling object that RopeScaling
// does not read (the rule's type itself is checked by Config.Validate).
func checkRopeKeys(_ map[string]json.RawMessage, v json.RawMessage) error {
	if isNull(v) {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(v, &obj); err != nil {
		return fmt.Errorf("want an object: %w", err)
	}
	fields := make([]string, 0, len(obj))
	for k := range obj {
		fields = append(fields, k)
	}
	sort.Strings(fields)
	for _, k := range fields {
		if !slices.Contains(ropeKeys, k) {
			return fmt.Errorf("field %q is not implemented", k)
		}
	}
	return nil
}
