package gguf

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// IsGGUF reports whether path names a GGUF file (by its extension), the
// form in which a base model may be given instead of a directory.
func IsGGUF(path string) bool { return strings.EqualFold(strings.TrimSpace(pathExt(path)), ".gguf") }

func pathExt(p string) string {
	if i := strings.LastIndexByte(p, '.'); i >= 0 && !strings.ContainsAny(p[i:], `/\`) {
		return p[i:]
	}
	return ""
}

// Load reads a GGUF model: the configuration from the architecture
// metadata, every tensor widened or dequantized to float32 (F32, F16, BF16
// and Q8_0; other types are refused, naming the type), the q/k rows put
// back in Hugging Face's order, and the tokenizer from the tokenizer.*
// metadata. As with Hugging Face directories, a tensor the model does not
// consume, a missing or mis-shaped one, and a NaN or ±Inf value are
// errors naming the tensor.
func Load(path string) (*model.Weights, *tokenizer.Tokenizer, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	w, tok, err := load(f)
	if err != nil {
		return nil, nil, fmt.Errorf("load gguf %s: %w", path, err)
	}
	return w, tok, nil
}

// ConfigFromMetadata rebuilds the model configuration of a GGUF file.
func ConfigFromMetadata(f *gguf.File) (model.Config, error) {
	arch, err := f.String("general.architecture")
	if err != nil {
		return model.Config{}, err
	}
	if t, err := f.String("general.type"); err == nil && t != "model" {
		return model.Config{}, fmt.Errorf("metadata general.type is %q: not a model (a LoRA adapter is loaded with its base)", t)
	}
	if arch == deepseekArch {
		return deepseekConfig(f)
	}
	var c model.Config
	switch arch {
	case "llama", "qwen2", "qwen3":
		c.ModelType = arch
	default:
		return c, fmt.Errorf("metadata general.architecture %q is not implemented (want llama, qwen2, qwen3 or deepseek2)", arch)
	}
	fam, err := model.LookupFamily(c.ModelType)
	if err != nil {
		return c, err
	}
	c.Architectures = fam.Architectures[:1]
	k := func(key string) string { return arch + "." + key }
	ints := []struct {
		key string
		dst *int
		req bool
	}{
		{k("embedding_length"), &c.HiddenSize, true},
		{k("feed_forward_length"), &c.IntermediateSize, true},
		{k("block_count"), &c.NumHiddenLayers, true},
		{k("attention.head_count"), &c.NumAttentionHeads, true},
		{k("attention.head_count_kv"), &c.NumKeyValueHeads, false},
		{k("context_length"), &c.MaxPositionEmbeddings, true},
	}
	for _, p := range ints {
		v, err := f.Int(p.key)
		if gguf.IsMissing(err) && !p.req {
			continue
		}
		if err != nil {
			return c, err
		}
		if v <= 0 || v > 1<<31-1 {
			return c, fmt.Errorf("metadata %s: %d must be positive", p.key, v)
		}
		*p.dst = int(v)
	}
	// Each block has several tensors: a block count beyond the number of
	// tensors is wrong before any shape is looked at.
	if c.NumHiddenLayers > len(f.Tensors) {
		return c, fmt.Errorf("metadata %s %d: the file holds only %d tensors", k("block_count"), c.NumHiddenLayers, len(f.Tensors))
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.RMSNormEps, err = f.Float(k("attention.layer_norm_rms_epsilon")); err != nil {
		return c, err
	}
	// float32 metadata: recover the decimal value the config had (1e-5,
	// not 9.999999747378752e-06).
	c.RMSNormEps = shortest(c.RMSNormEps)
	c.RopeTheta = 10000
	if v, err := f.Float(k("rope.freq_base")); err == nil {
		c.RopeTheta = shortest(v)
	} else if !gguf.IsMissing(err) {
		return c, err
	}
	headDim := c.HiddenSize / c.NumAttentionHeads
	if v, err := f.Int(k("attention.key_length")); err == nil {
		if v <= 0 || v > 1<<20 {
			return c, fmt.Errorf("metadata %s: %d out of range", k("attention.key_length"), v)
		}
		if int(v) != headDim || fam.QKNorm {
			c.HeadDimOverride = int(v)
		}
		headDim = int(v)
	} else if !gguf.IsMissing(err) {
		return c, err
	}
	// The value width must be the key width (head_dim): separate widths are
	// not implemented for these architectures.
	if vl, err := f.Int(k("attention.value_length")); err == nil && int(vl) != headDim {
		return c, fmt.Errorf("metadata %s %d differs from the head dimension %d: not implemented", k("attention.value_length"), vl, headDim)
	} else if err != nil && !gguf.IsMissing(err) {
		return c, err
	}
	if v, err := f.Int(k("rope.dimension_count")); err == nil && int(v) != headDim {
		return c, fmt.Errorf("metadata %s %d is not the head dimension %d: partial rotary embeddings are not implemented", k("rope.dimension_count"), v, headDim)
	} else if err != nil && !gguf.IsMissing(err) {
		return c, err
	}
	// Loading is strict, as for config.json: an architecture key this
	// model does not read may change the computation (sliding windows,
	// YaRN scaling, experts, soft-capping), so it is refused.
	for _, p := range f.KV {
		rest, ok := strings.CutPrefix(p.Key, arch+".")
		if !ok || archKeys[rest] || (rest == "rope.scaling.type" && p.Value == "none") {
			continue
		}
		return c, fmt.Errorf("metadata %s = %v is not implemented", p.Key, p.Value)
	}
	if fam.ImpliedBias {
		c.AttentionBias = true
	} else if _, ok := f.Tensor("blk.0.attn_q.bias"); ok {
		c.AttentionBias = true
	}
	if err := tokenShapes(f, &c); err != nil {
		return c, err
	}
	if rf, ok := f.Tensor("rope_freqs.weight"); ok {
		s, err := llama3Scaling(f, rf, c)
		if err != nil {
			return c, err
		}
		c.RopeScaling = s
	}
	return c, c.Validate()
}

// archKeys are the {arch}.* metadata keys the model reads.
var archKeys = map[string]bool{
	"vocab_size": true, "context_length": true, "embedding_length": true, "block_count": true,
	"feed_forward_length": true, "attention.head_count": true, "attention.head_count_kv": true,
	"attention.layer_norm_rms_epsilon": true, "rope.freq_base": true, "rope.dimension_count": true,
	"attention.key_length": true, "attention.value_length": true,
}

// shortest rounds a value read from a float32 to the shortest decimal
// that reads back as the same float32.
func shortest(v float64) float64 {
	var out float64
	fmt.Sscan(fmt.Sprint(float32(v)), &out)
	return out
}

// llama3Scaling recognises the per-frequency factors that llama.cpp's
// converter writes for Llama-3 RoPE scaling: the published Llama-3.1/3.2
// rule (low_freq_factor 1, high_freq_factor 4, original context 8192) with
// the factor of the lowest frequency; any other factors are refused.
func llama3Scaling(f *gguf.File, info gguf.TensorInfo, c model.Config) (*model.RopeScaling, error) {
	factors, err := f.ReadFloat32(info.Name)
	if err != nil {
		return nil, err
	}
	if len(factors) != c.HeadDim()/2 {
		return nil, fmt.Errorf("tensor rope_freqs.weight holds %d factors, want %d", len(factors), c.HeadDim()/2)
	}
	s := &model.RopeScaling{RopeType: "llama3", Factor: shortest(float64(factors[len(factors)-1])), LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
	trial := c
	trial.RopeScaling = s
	for i, f := range trial.InvFreq() {
		base := 1 / math.Pow(c.Theta(), float64(2*i)/float64(c.HeadDim()))
		if math.Abs(base/f-float64(factors[i])) > 1e-4*base/f {
			return nil, fmt.Errorf("tensor rope_freqs.weight: factor %d is %g, the Llama-3 rule gives %g: other RoPE scaling is not implemented", i, factors[i], base/f)
		}
	}
	return s, nil
}

func load(f *gguf.File) (*model.Weights, *tokenizer.Tokenizer, error) {
	c, err := ConfigFromMetadata(f)
	if err != nil {
		return nil, nil, err
	}
	tok, err := LoadTokenizer(f)
	if err != nil {
		return nil, nil, err
	}
	if tok.BOS() >= 0 {
		c.BOSTokenID = tok.BOS()
	}
	if tok.EOS() >= 0 {
		c.EOSTokenID = tok.EOS()
	}
	// Every tensor the config needs must be in the file with its shape
	// before anything is allocated: the config comes from metadata, and
	// the tensor infos were checked against the file's size, so this
	// bounds the allocation by the file.
	for _, e := range expectedTensors(c) {
		info, ok := f.Tensor(e.name)
		if !ok {
			return nil, nil, fmt.Errorf("tensor %s is missing", e.name)
		}
		if !slices.Equal(info.Shape, e.shape) {
			return nil, nil, fmt.Errorf("tensor %s has shape %v, the config needs %v", e.name, info.Shape, e.shape)
		}
	}
	w, err := model.Allocate(c)
	if err != nil {
		return nil, nil, err
	}
	arch, used := c.ModelType, map[string]bool{}
	if c.MLA() {
		arch = deepseekArch
		err = loadDeepSeek(f, w, used)
	} else {
		used["rope_freqs.weight"] = c.RopeScaling != nil
		err = loadNamed(f, w, used)
	}
	if err != nil {
		return nil, nil, err
	}
	for _, t := range f.Tensors {
		if !used[t.Name] {
			return nil, nil, fmt.Errorf("tensor %s is not used by architecture %s", t.Name, arch)
		}
	}
	if tok.VocabSize() > c.VocabSize {
		return nil, nil, fmt.Errorf("the tokenizer has %d tokens, the model %d embeddings", tok.VocabSize(), c.VocabSize)
	}
	return w, tok, nil
}

// loadNamed reads the tensors of a llama, qwen2 or qwen3 file into w
// (allocated for its config), checking each for NaN and ±Inf and putting
// q/k rows back in Hugging Face's order, and marks them used.
func loadNamed(f *gguf.File, w *model.Weights, used map[string]bool) error {
	c := w.Config
	arch := c.ModelType
	for _, n := range w.Named() {
		name, err := tensorName(n.Name)
		if err != nil {
			return err
		}
		info, ok := f.Tensor(name)
		if !ok {
			return fmt.Errorf("tensor %s is missing", name)
		}
		want := []int(n.Tensor.Shape())
		if !slices.Equal(info.Shape, want) {
			return fmt.Errorf("tensor %s has shape %v, the config needs %v", name, info.Shape, want)
		}
		data := model.F32(n.Tensor)
		if err := f.ReadInto(name, data); err != nil {
			return err
		}
		for i, v := range data {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("tensor %s holds %v at index %d", name, v, i)
			}
		}
		if permutes(arch) {
			cols := 1
			if len(want) == 2 {
				cols = want[1]
			}
			switch {
			case strings.HasSuffix(name, ".attn_q.weight"), strings.HasSuffix(name, ".attn_q.bias"):
				copy(data, unpermuteRows(data, c.NumAttentionHeads, cols))
			case strings.HasSuffix(name, ".attn_k.weight"), strings.HasSuffix(name, ".attn_k.bias"):
				copy(data, unpermuteRows(data, c.KVHeads(), cols))
			}
		}
		used[name] = true
	}
	return nil
}

// LoadBase loads a base model given either as a Hugging Face model
// directory (hf.LoadModel, and the tokenizer.json beside the weights) or
// as a GGUF file (Load: weights dequantized to float32, tokenizer from the
// metadata), so that every command accepting a base model accepts both.
func LoadBase(path string) (*model.Weights, *tokenizer.Tokenizer, error) {
	if IsGGUF(path) {
		return Load(path)
	}
	w, err := hf.LoadModel(path)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", path, err)
	}
	return w, tok, nil
}

type tensorShape struct {
	name  string
	shape []int
}

// expectedTensors lists the GGUF tensors a config needs, with their shapes
// (as model.Allocate lays them out), without allocating them.
func expectedTensors(c model.Config) []tensorShape {
	if c.MLA() {
		var out []tensorShape
		for _, t := range deepseekLayout(c, nil) {
			out = append(out, tensorShape{t.name, t.shape})
		}
		return out
	}
	C, F, V, D := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.HeadDim()
	H, KVH := c.NumAttentionHeads, c.KVHeads()
	out := []tensorShape{{"token_embd.weight", []int{V, C}}}
	for i := range c.NumHiddenLayers {
		p := fmt.Sprintf("blk.%d.", i)
		out = append(out,
			tensorShape{p + "attn_norm.weight", []int{C}},
			tensorShape{p + "attn_q.weight", []int{H * D, C}},
			tensorShape{p + "attn_k.weight", []int{KVH * D, C}},
			tensorShape{p + "attn_v.weight", []int{KVH * D, C}})
		if c.AttentionBias {
			out = append(out,
				tensorShape{p + "attn_q.bias", []int{H * D}},
				tensorShape{p + "attn_k.bias", []int{KVH * D}},
				tensorShape{p + "attn_v.bias", []int{KVH * D}})
		}
		if c.QKNorm() {
			out = append(out,
				tensorShape{p + "attn_q_norm.weight", []int{D}},
				tensorShape{p + "attn_k_norm.weight", []int{D}})
		}
		out = append(out,
			tensorShape{p + "attn_output.weight", []int{C, H * D}},
			tensorShape{p + "ffn_norm.weight", []int{C}},
			tensorShape{p + "ffn_gate.weight", []int{F, C}},
			tensorShape{p + "ffn_up.weight", []int{F, C}},
			tensorShape{p + "ffn_down.weight", []int{C, F}})
	}
	out = append(out, tensorShape{"output_norm.weight", []int{C}})
	if !c.TieWordEmbeddings {
		out = append(out, tensorShape{"output.weight", []int{V, C}})
	}
	return out
}
