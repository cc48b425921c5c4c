// Package model is the decoder of the registered architecture families
// (family.go: LLaMA, Mistral, Qwen2, Qwen3, and DeepSeek-V2/V3 with
// multi-head latent attention and mixture-of-experts layers, deepseek.go;
// and, for the llama models gotune pretrains, its own linear-time
// attention options, Config.Attention):
// its configuration (read from and written to Hugging Face config.json),
// its weights and the training graph built on gorgonia. Its subpackages hold the graph's
// operations (ops), Hugging Face model directories (hf) and fast KV-cache
// generation on the same weights (generate).
//
// May import: model/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never data/..., finetune, train, lora, a stage or an
// application.
package model

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// RopeScaling is the Hugging Face `rope_scaling` object. Only the Llama-3
// rule ("llama3"), DeepSeek's YaRN ("yarn", for the DeepSeek families) and
// no scaling are supported.
type RopeScaling struct {
	RopeType                      string  `json:"rope_type,omitempty"`
	Type                          string  `json:"type,omitempty"`
	Factor                        float64 `json:"factor,omitempty"`
	LowFreqFactor                 float64 `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64 `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings,omitempty"`
	RopeTheta                     float64 `json:"rope_theta,omitempty"`
	// DeepSeek's YaRN ("yarn", DeepseekV2YarnRotaryEmbedding; the
	// DeepSeek families only); nil means DeepSeek's default (32, 1, 1, 0).
	BetaFast     *float64 `json:"beta_fast,omitempty"`
	BetaSlow     *float64 `json:"beta_slow,omitempty"`
	MScale       *float64 `json:"mscale,omitempty"`
	MScaleAllDim *float64 `json:"mscale_all_dim,omitempty"`
}

// Kind returns the scaling rule name ("" when none).
func (s *RopeScaling) Kind() string {
	if s == nil {
		return ""
	}
	if s.RopeType != "" {
		return s.RopeType
	}
	return s.Type
}

// Config is the architecture of a model of a registered family, with the
// field names of Hugging Face's config.json (LlamaConfig, Qwen2Config,
// MistralConfig, Qwen3Config; DeepseekV2Config and DeepseekV3Config add
// the DeepSeek keys).
type Config struct {
	Architectures         []string     `json:"architectures,omitempty"`
	ModelType             string       `json:"model_type"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumHiddenLayers       int          `json:"num_hidden_layers"`
	NumAttentionHeads     int          `json:"num_attention_heads"`
	NumKeyValueHeads      int          `json:"num_key_value_heads"`
	HeadDimOverride       int          `json:"head_dim,omitempty"`
	VocabSize             int          `json:"vocab_size"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings"`
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta,omitempty"`
	RopeScaling           *RopeScaling `json:"rope_scaling,omitempty"`
	RopeParameters        *RopeScaling `json:"rope_parameters,omitempty"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	AttentionBias         bool         `json:"attention_bias,omitempty"`
	SlidingWindow         *int         `json:"sliding_window,omitempty"`     // attend to the last N positions only (refused where it applies)
	UseSlidingWindow      bool         `json:"use_sliding_window,omitempty"` // Qwen's switch for SlidingWindow
	HiddenAct             string       `json:"hidden_act"`
	BOSTokenID            any          `json:"bos_token_id,omitempty"`
	EOSTokenID            any          `json:"eos_token_id,omitempty"`
	TorchDtype            string       `json:"torch_dtype,omitempty"`
	// Attention is gotune's own attention option, config.json key
	// "gotune_attention" (the llama family of models gotune pretrains
	// only; no Hugging Face checkpoint has it): "" or "softmax" (the
	// default), "linear" (AttentionLinear) or "gau" (AttentionGAU).
	Attention string `json:"gotune_attention,omitempty"`
	// GAUSharedDim is the Gated Attention Unit's shared width s
	// ("gotune_gau_shared_dim"; the expansion width e·d is
	// intermediate_size). GAU only.
	GAUSharedDim int `json:"gotune_gau_shared_dim,omitempty"`
	// GAUChunk is the chunk length C of GAU's mixed form, and its 1/n
	// attention scaling ("gotune_gau_chunk"). GAU only.
	GAUChunk int `json:"gotune_gau_chunk,omitempty"`
	// DeepSeek holds the MLA and mixture-of-experts keys of the DeepSeek
	// families (flattened into config.json); nil for the others.
	*DeepSeek
}

// HeadDim is the per-head dimension D (head_dim when given, else C/H).
func (c *Config) HeadDim() int {
	if c.HeadDimOverride > 0 {
		return c.HeadDimOverride
	}
	return c.HiddenSize / c.NumAttentionHeads
}

// KVHeads is the number of key/value heads (KVH); it equals the attention
// heads for plain multi-head attention and divides them for GQA/MQA.
func (c *Config) KVHeads() int {
	if c.NumKeyValueHeads > 0 {
		return c.NumKeyValueHeads
	}
	return c.NumAttentionHeads
}

// Theta is the RoPE base frequency, from `rope_theta` or
// `rope_parameters.rope_theta` (default 10000).
func (c *Config) Theta() float64 {
	if c.RopeTheta > 0 {
		return c.RopeTheta
	}
	if c.RopeParameters != nil && c.RopeParameters.RopeTheta > 0 {
		return c.RopeParameters.RopeTheta
	}
	return 10000
}

// Scaling is the active RoPE scaling rule, from `rope_scaling` or
// `rope_parameters`; nil when positions are not rescaled.
func (c *Config) Scaling() *RopeScaling {
	for _, s := range []*RopeScaling{c.RopeScaling, c.RopeParameters} {
		if k := s.Kind(); k != "" && k != "default" {
			return s
		}
	}
	return nil
}

// InvFreq returns the D/2 RoPE inverse frequencies θ^(−2i/D) (D is
// RopeDim: qk_rope_head_dim under MLA), rescaled by YaRN where configured
// (yarnParams.invFreq) or by
// the Llama-3 rule when configured (Meta's llama3 `apply_scaling`: low
// frequencies divided by `factor`, high ones kept, a smooth blend between).
func (c *Config) InvFreq() []float64 {
	d := c.RopeDim()
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.Theta(), float64(2*i)/float64(d))
	}
	s := c.Scaling()
	if y := c.yarn(); y != nil {
		return y.invFreq(inv, c.Theta())
	}
	if s == nil || s.Kind() != "llama3" {
		return inv
	}
	lowWavelen := float64(s.OriginalMaxPositionEmbeddings) / s.LowFreqFactor
	highWavelen := float64(s.OriginalMaxPositionEmbeddings) / s.HighFreqFactor
	for i, f := range inv {
		wavelen := 2 * math.Pi / f
		switch {
		case wavelen < highWavelen:
			// high frequency: unchanged
		case wavelen > lowWavelen:
			inv[i] = f / s.Factor
		default:
			smooth := (float64(s.OriginalMaxPositionEmbeddings)/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			inv[i] = (1-smooth)*f/s.Factor + smooth*f
		}
	}
	return inv
}

// The values of Config.Attention.
const (
	AttentionSoftmax = "softmax"
	// AttentionLinear is causal linear attention (Katharopoulos et al.
	// 2020) with φ = elu + 1 and no positional encoding, in place of
	// softmax attention; the rest of the layer is unchanged.
	AttentionLinear = "linear"
	// AttentionGAU makes every layer one Gated Attention Unit (Hua et al.
	// 2022) in place of attention + MLP: u_proj, v_proj (E = intermediate
	// size), z_proj (s = GAUSharedDim), o_proj, and per-dimension scales
	// and offsets, in the mixed chunked form with chunk GAUChunk.
	AttentionGAU = "gau"
)

// AttentionNames are the values gotune_attention accepts.
var AttentionNames = []string{AttentionSoftmax, AttentionLinear, AttentionGAU}

// LinearAttention reports causal linear attention (Attention "linear").
func (c *Config) LinearAttention() bool { return c.Attention == AttentionLinear }

// GAU reports Gated Attention Unit layers (Attention "gau").
func (c *Config) GAU() bool { return c.Attention == AttentionGAU }

// validateAttention checks gotune's attention option and its parameters.
func (c *Config) validateAttention() error {
	switch c.Attention {
	case "", AttentionSoftmax, AttentionLinear:
		if c.GAUSharedDim != 0 || c.GAUChunk != 0 {
			return fmt.Errorf("gotune_gau_shared_dim and gotune_gau_chunk apply to gotune_attention %q only (it is %q)", AttentionGAU, c.Attention)
		}
	case AttentionGAU:
		switch {
		case c.GAUSharedDim <= 0 || c.GAUSharedDim%2 != 0:
			return fmt.Errorf("gotune_gau_shared_dim %d must be positive and even (RoPE rotates pairs)", c.GAUSharedDim)
		case c.GAUChunk <= 0:
			return fmt.Errorf("gotune_gau_chunk %d must be positive", c.GAUChunk)
		case c.AttentionBias:
			return fmt.Errorf("attention_bias is not implemented with gotune_attention %q", AttentionGAU)
		}
	default:
		return fmt.Errorf("gotune_attention %q is not implemented (want one of %s)", c.Attention, strings.Join(AttentionNames, ", "))
	}
	return nil
}

// GAUInvFreq are the s/2 RoPE inverse frequencies of GAU's shared width.
func (c *Config) GAUInvFreq() []float64 {
	inv := make([]float64, c.GAUSharedDim/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.Theta(), float64(2*i)/float64(c.GAUSharedDim))
	}
	return inv
}

// Family is the registered architecture family of the config's model_type.
func (c *Config) Family() (*Family, error) { return LookupFamily(c.ModelType) }

// QKNorm reports per-head RMSNorm of queries and keys (Qwen3), with
// weights self_attn.q_norm and self_attn.k_norm of shape (D).
func (c *Config) QKNorm() bool {
	f, err := c.Family()
	return err == nil && f.QKNorm
}

// Validate reports the first inconsistency in the configuration, or a
// setting that changes the computation and is not implemented.
func (c *Config) Validate() error {
	fam, err := c.Family()
	if err != nil {
		return err
	}
	if err := fam.checkArchitectures(c.Architectures); err != nil {
		return err
	}
	if fam.DeepSeek {
		if err := c.validateDeepSeek(); err != nil {
			return err
		}
	} else if c.DeepSeek != nil {
		return fmt.Errorf("model_type %s has no multi-head latent attention or mixture of experts (keys %s)", c.ModelType, strings.Join(deepseekKeys, ", "))
	}
	if err := c.validateAttention(); err != nil {
		return err
	}
	if fam.ImpliedBias && !c.AttentionBias {
		return fmt.Errorf("model_type %s always has q/k/v biases, but attention_bias is false", c.ModelType)
	}
	if w := c.SlidingWindow; w != nil && (c.UseSlidingWindow || !fam.SlidingWindowSwitch) && (c.MaxPositionEmbeddings <= 0 || *w < c.MaxPositionEmbeddings) {
		return fmt.Errorf("sliding_window %d (shorter than max_position_embeddings %d) is not implemented", *w, c.MaxPositionEmbeddings)
	}
	// The config as SaveModel would write it must load again: every field
	// that is set must be a key the family accepts.
	raw, err := json.Marshal(c)
	if err != nil {
		return err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return err
	}
	if err := fam.checkKeys(keys); err != nil {
		return err
	}
	switch {
	case c.HiddenSize <= 0 || c.NumHiddenLayers <= 0 || c.NumAttentionHeads <= 0 || c.IntermediateSize <= 0 || c.VocabSize <= 0:
		return fmt.Errorf("hidden_size, intermediate_size, num_hidden_layers, num_attention_heads and vocab_size must be positive")
	// MLA's head widths were checked by validateDeepSeek, and its key and
	// value heads are as many as the query heads.
	case !c.MLA() && c.HeadDim() <= 0:
		return fmt.Errorf("head dimension %d must be positive (hidden_size %d, %d heads, head_dim %d)", c.HeadDim(), c.HiddenSize, c.NumAttentionHeads, c.HeadDimOverride)
	case c.RMSNormEps < 0 || math.IsNaN(c.RMSNormEps):
		return fmt.Errorf("rms_norm_eps %v must be ≥ 0", c.RMSNormEps)
	case !c.MLA() && c.NumAttentionHeads%c.KVHeads() != 0:
		return fmt.Errorf("num_attention_heads %d is not a multiple of num_key_value_heads %d", c.NumAttentionHeads, c.KVHeads())
	case !c.MLA() && c.HeadDim()%2 != 0:
		return fmt.Errorf("head dimension %d must be even for RoPE", c.HeadDim())
	case c.HiddenAct != "" && c.HiddenAct != "silu":
		return fmt.Errorf("hidden_act %q is not supported (only silu)", c.HiddenAct)
	}
	if c.MLA() {
		return nil // DeepSeek's rope scaling was checked by validateDeepSeek
	}
	if s := c.Scaling(); s != nil && s.Kind() != "llama3" {
		return fmt.Errorf("rope_scaling type %q is not supported (only llama3)", s.Kind())
	}
	if s := c.Scaling(); s != nil && (s.Factor <= 0 || s.LowFreqFactor <= 0 || s.HighFreqFactor <= s.LowFreqFactor || s.OriginalMaxPositionEmbeddings <= 0) {
		return fmt.Errorf("rope_scaling llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0")
	}
	return nil
}

// LoadConfig reads a Hugging Face config.json (a file, or a directory
// holding one) and fills defaults the format leaves implicit. Loading is
// strict: the model_type must be a registered Family, every key must be one
// the family implements or lists as harmless metadata, and every setting
// must be implemented (Validate); the error names the file and the key.
func LoadConfig(path string) (Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "config.json")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("load config: %w", err)
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	fam, err := c.Family()
	if err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	if c.RMSNormEps == 0 {
		c.RMSNormEps = 1e-6
	}
	if c.HiddenAct == "" {
		c.HiddenAct = "silu"
	}
	if _, set := keys["sliding_window"]; !set && fam.DefaultSlidingWindow > 0 {
		w := fam.DefaultSlidingWindow
		c.SlidingWindow = &w
	}
	if fam.ImpliedBias {
		// Qwen2 always has q/k/v biases; its config.json does not say so.
		c.AttentionBias = true
	}
	if err := fam.checkKeys(keys); err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	if err := fam.checkPresent(keys); err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	if err := fam.checkExplicit(keys); err != nil {
		return Config{}, fmt.Errorf("load config %s: %w", path, err)
	}
	return c, nil
}

// PresetNames are the names Preset knows.
var PresetNames = []string{"tiny", "stories15M", "stories15M-moe", "small", "qwen05"}

// Preset returns a named size: "tiny" (the embedded default, trains on two
// cores in minutes), "stories15M", "small" and "qwen05" (the benchmark
// shapes of perf/ANCHORS.md; qwen05 is Qwen2.5-0.5B's configuration), and
// "stories15M-moe", a DeepSeek-V2 model with
// stories15M's width, depth, vocabulary and active feed-forward width
// (the cost of mixture-of-experts and latent attention per active
// parameter, beside stories15M). vocab overrides the vocabulary size when
// > 0.
func Preset(name string, vocab int) (Config, error) {
	c := Config{
		Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenAct: "silu",
		RMSNormEps: 1e-5, RopeTheta: 10000, TorchDtype: "float32",
	}
	switch name {
	case "tiny":
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 128, 352, 4
		c.NumAttentionHeads, c.NumKeyValueHeads = 4, 2
		c.VocabSize, c.MaxPositionEmbeddings, c.TieWordEmbeddings = 512, 256, true
	case "stories15M":
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 288, 768, 6
		c.NumAttentionHeads, c.NumKeyValueHeads = 6, 6
		c.VocabSize, c.MaxPositionEmbeddings = 32000, 256
	case "stories15M-moe":
		// DeepSeek-V2-Lite's design scaled to stories15M: the first layer
		// dense (intermediate 768), then 16 routed experts of width 192,
		// 2 chosen per token, plus 2 shared ones, so that a token passes
		// through 4·192 = 768 feed-forward units as in stories15M; MLA with
		// a 72-wide latent (a quarter of the width, as V2-Lite's 512 of
		// 2048) and q/k heads of 32 + 16 rope = 48, stories15M's head width.
		c.Architectures, c.ModelType = []string{"DeepseekV2ForCausalLM"}, deepseekV2
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads = 288, 768, 6, 6
		c.VocabSize, c.MaxPositionEmbeddings = 32000, 256
		c.DeepSeek = &DeepSeek{KVLoraRank: 72, QKNopeHeadDim: 32, QKRopeHeadDim: 16, VHeadDim: 48,
			NRoutedExperts: 16, NumExpertsPerTok: 2, NSharedExperts: 2, MoeIntermediateSize: 192,
			FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: ScoringSoftmax, TopkMethod: TopkGreedy,
			RoutedScalingFactor: 1}
	case "small":
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 768, 2048, 12
		c.NumAttentionHeads, c.NumKeyValueHeads = 12, 4
		c.VocabSize, c.MaxPositionEmbeddings = 32000, 512
	case "qwen05":
		// Qwen2.5-0.5B's config.json: q/k/v biases, 14 query heads of
		// width 64 sharing 2 key/value heads, tied embeddings over a
		// 151936-token vocabulary.
		c.Architectures, c.ModelType, c.AttentionBias = []string{"Qwen2ForCausalLM"}, "qwen2", true
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 896, 4864, 24
		c.NumAttentionHeads, c.NumKeyValueHeads = 14, 2
		c.VocabSize, c.MaxPositionEmbeddings, c.TieWordEmbeddings = 151936, 32768, true
		c.RMSNormEps, c.RopeTheta = 1e-6, 1e6
	default:
		return Config{}, fmt.Errorf("unknown model preset %q (want one of %s)", name, strings.Join(PresetNames, ", "))
	}
	if vocab > 0 {
		c.VocabSize = vocab
	}
	return c, nil
}

// WithAttention returns c (a softmax-attention llama config, such as a
// Preset) with gotune's attention option name at the same parameter count:
// "softmax" changes nothing; "linear" keeps every weight (linear attention
// has the same projections); "gau" makes every layer one Gated Attention
// Unit with the paper's shared width s = 128 (at most C/2) and chunk
// C = 256 (Hua et al. 2022, §4), and the expansion width E (a multiple of
// 8) that gives each unit the parameters of the attention + MLP pair it
// replaces: 3·C·E + C·s ≈ the pair's. The depth stays the same (the paper
// stacks twice as many GAUs at e = 2; this keeps layers comparable).
func WithAttention(c Config, name string) (Config, error) {
	if c.ModelType != "llama" || c.MLA() || c.Attention != "" && c.Attention != AttentionSoftmax {
		return Config{}, fmt.Errorf("gotune_attention applies to a softmax-attention llama model, not model_type %s (attention %q)", c.ModelType, c.Attention)
	}
	switch name {
	case "", AttentionSoftmax:
		return c, nil
	case AttentionLinear:
		c.Attention = AttentionLinear
	case AttentionGAU:
		C := c.HiddenSize
		pair := C*c.NumAttentionHeads*c.HeadDim()*2 + 2*C*c.KVHeads()*c.HeadDim() + 3*C*c.IntermediateSize
		s := min(128, C/2) &^ 1
		e := (pair - C*s) / (3 * C)
		c.Attention, c.GAUSharedDim, c.GAUChunk, c.IntermediateSize = AttentionGAU, s, 256, max(8, e/8*8)
	default:
		return Config{}, fmt.Errorf("gotune_attention %q is not implemented (want one of %s)", name, strings.Join(AttentionNames, ", "))
	}
	return c, c.Validate()
}
