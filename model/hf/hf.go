// Package hf turns a Hugging Face model directory into model weights and
// back: config.json, generation_config.json and model.safetensors (sharded
// with model.safetensors.index.json above a size limit), with tensors under
// their Hugging Face names (`model.embed_tokens.weight`,
// `model.layers.N.self_attn.q_proj.weight`, …; `lm_head.weight` absent when
// the embeddings are tied). The safetensors format itself lives in
// checkpoints/safetensors, which knows tensors and bytes, not the model.
//
// May import: model/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never data/..., finetune, train, lora, a stage or an
// application.
package hf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/internal/q8"
	"github.com/gotune/gotune/model"
)

// File names of a Hugging Face model directory.
const (
	ConfigFile           = "config.json"
	GenerationConfigFile = "generation_config.json"
	WeightsBase          = "model" // model.safetensors, model.safetensors.index.json
)

// DefaultMaxShardBytes is the shard size Hugging Face's save_pretrained
// uses by default (5 GB).
const DefaultMaxShardBytes = 5_000_000_000

// SaveOptions control how SaveModel stores weights.
type SaveOptions struct {
	Dtype         safetensors.Dtype // F32 (default), F16 or BF16
	MaxShardBytes int64             // shard above this many bytes of data; 0 = DefaultMaxShardBytes, < 0 = never
	Metadata      map[string]string // extra safetensors metadata ("format": "pt" is always set)
}

// torchDtype is config.json's name for a storage dtype.
func torchDtype(d safetensors.Dtype) string {
	switch d {
	case safetensors.F16:
		return "float16"
	case safetensors.BF16:
		return "bfloat16"
	}
	return "float32"
}

// GenerationConfig is the part of generation_config.json written here.
type GenerationConfig struct {
	BOSTokenID      any  `json:"bos_token_id,omitempty"`
	EOSTokenID      any  `json:"eos_token_id,omitempty"`
	FromModelConfig bool `json:"_from_model_config"`
}

// SaveModel writes w as a Hugging Face model directory: config.json (with
// torch_dtype set to the stored dtype), generation_config.json (bos/eos from
// the config) and the weights. Each file is written atomically; files of an
// earlier sharded or single-file save that no longer apply are removed.
func SaveModel(dir string, w *model.Weights, opt SaveOptions) error {
	if opt.Dtype == "" {
		opt.Dtype = safetensors.F32
	}
	switch opt.Dtype {
	case safetensors.F32, safetensors.F16, safetensors.BF16:
	default:
		return fmt.Errorf("save model %s: dtype %q not supported (want F32, F16 or BF16)", dir, opt.Dtype)
	}
	if opt.MaxShardBytes == 0 {
		opt.MaxShardBytes = DefaultMaxShardBytes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	named := w.Named()
	tensors := make([]safetensors.Tensor, len(named))
	for i, n := range named {
		tensors[i] = safetensors.Tensor{Name: n.Name, Shape: slices.Clone([]int(n.Tensor.Shape())), Data: model.F32(n.Tensor)}
	}
	meta := map[string]string{}
	for k, v := range opt.Metadata {
		meta[k] = v
	}
	meta["format"] = "pt" // transformers refuses safetensors files without it
	if _, err := safetensors.WriteSet(dir, WeightsBase, tensors, meta, safetensors.WriteOptions{Dtype: opt.Dtype, MaxShardBytes: opt.MaxShardBytes}); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	cfg := w.Config
	cfg.TorchDtype = torchDtype(opt.Dtype)
	if len(cfg.Architectures) == 0 {
		fam, err := cfg.Family()
		if err != nil {
			return fmt.Errorf("save model %s: %w", dir, err)
		}
		cfg.Architectures = fam.Architectures[:1]
	}
	if err := writeConfig(filepath.Join(dir, ConfigFile), cfg); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	gen := GenerationConfig{BOSTokenID: cfg.BOSTokenID, EOSTokenID: cfg.EOSTokenID, FromModelConfig: true}
	if err := writeJSON(filepath.Join(dir, GenerationConfigFile), gen); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}

// writeConfig writes cfg as config.json, with the values a Hugging Face
// config would default differently made explicit: the key/value heads
// always, the head dimension where the family needs it (Qwen3), and an
// explicit "sliding_window": null for a family that assumes a window when
// the key is absent (Mistral) and a model that has none.
func writeConfig(path string, cfg model.Config) error {
	fam, err := cfg.Family()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	cfg.NumKeyValueHeads = cfg.KVHeads()
	if slices.Contains(fam.ExplicitKeys, "head_dim") {
		cfg.HeadDimOverride = cfg.HeadDim()
	}
	if cfg.SlidingWindow != nil || fam.DefaultSlidingWindow == 0 {
		return writeJSON(path, cfg)
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m["sliding_window"] = nil
	return writeJSON(path, m)
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, append(raw, '\n'))
}

// LoadOptions control how LoadModelWith reads a model directory.
type LoadOptions struct {
	// AllowUnusedTensors loads a checkpoint that holds tensors no part of
	// the model consumes instead of refusing it; their names are returned
	// so that the caller can report them.
	AllowUnusedTensors bool
	// BF16 holds the embeddings and linear weights in bfloat16
	// (model.Weights.StoreBF16) as they are read, so that they never all
	// exist in float32 at once: a bfloat16 checkpoint's are kept exactly,
	// others rounded. Only a frozen base can be held so.
	BF16 bool
	// Q8 holds the embeddings and linear weights whose rows are whole
	// blocks of 32 in Q8_0 (model.Weights.StoreQ8), each quantized as it
	// is read: for decoding only.
	Q8 bool
}

// LoadModel reads a Hugging Face model directory strictly
// (LoadModelWith with default options): a tensor the model does not
// consume is an error.
func LoadModel(dir string) (*model.Weights, error) {
	w, _, err := LoadModelWith(dir, LoadOptions{})
	return w, err
}

// LoadModelWith reads a Hugging Face model directory: config.json through
// model.LoadConfig (which refuses unregistered families and settings that
// are not implemented), then every parameter by its Hugging Face name from
// model.safetensors or its sharded set (F32, F16, BF16 or F64 data,
// converted to float32). Each error names the directory and the tensor: a
// missing or mis-shaped tensor, a value that is NaN or ±Inf, and a tensor
// that no part of the model consumes, so that no checkpoint ever loads
// silently wrong. Two kinds of extra tensors are accepted because they
// carry nothing the model lacks: the rotary_emb.inv_freq buffers of old
// exports (the frequencies are recomputed from the config, as Hugging Face
// does), and an lm_head.weight next to tied embeddings when it equals
// embed_tokens exactly. With opt.AllowUnusedTensors the other unused
// tensors are skipped and their names returned, sorted.
func LoadModelWith(dir string, opt LoadOptions) (w *model.Weights, unused []string, err error) {
	cfg, err := model.LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, nil, err
	}
	switch {
	case opt.BF16 && opt.Q8:
		return nil, nil, fmt.Errorf("load model %s: bfloat16 and Q8_0 both asked for", dir)
	case opt.BF16:
		w, err = model.AllocateBF16(cfg)
	case opt.Q8:
		w, err = model.AllocateQ8(cfg)
	default:
		w, err = model.Allocate(cfg)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	set, err := safetensors.OpenSet(dir, WeightsBase)
	if err != nil {
		return nil, nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	defer set.Close()
	used := map[string]bool{}
	var scratch []float32 // float32 values of a bfloat16 or Q8_0 tensor, reused
	for _, n := range w.Named() {
		bits, blocks := model.BF16(n.Tensor), model.Q8(n.Tensor)
		if bits != nil || blocks != nil {
			rows, cols := model.MatrixShape(n.Tensor)
			scratch = slices.Grow(scratch[:0], rows*cols)[:rows*cols]
			f := tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(scratch))
			if err := readChecked(set, n.Name, f); err != nil {
				return nil, nil, fmt.Errorf("load model %s: %w", dir, err)
			}
			if blocks != nil {
				q8.QuantizeRow(blocks, scratch)
			} else {
				for i, v := range scratch {
					bits[i] = bf16.FromFloat32(v)
				}
			}
			used[n.Name] = true
			continue
		}
		if err := readChecked(set, n.Name, n.Tensor); err != nil {
			return nil, nil, fmt.Errorf("load model %s: %w", dir, err)
		}
		used[n.Name] = true
	}
	for _, name := range set.Names() {
		switch {
		case used[name], isRotaryBuffer(name):
		case name == "lm_head.weight" && cfg.TieWordEmbeddings:
			if err := checkTiedHead(set, w); err != nil {
				return nil, nil, fmt.Errorf("load model %s: %w", dir, err)
			}
		case opt.AllowUnusedTensors:
			unused = append(unused, name)
		default:
			return nil, nil, fmt.Errorf("load model %s: tensor %s is not used by model_type %s (a checkpoint of another architecture?)", dir, name, cfg.ModelType)
		}
	}
	slices.Sort(unused)
	return w, unused, nil
}

// readChecked reads tensor name into dst after checking its shape, and
// refuses NaN and ±Inf values.
func readChecked(set *safetensors.Set, name string, dst *tensor.Dense) error {
	info, ok := set.Info(name)
	if !ok {
		return fmt.Errorf("tensor %s is missing", name)
	}
	want := []int(dst.Shape())
	if !slices.Equal(info.Shape, want) {
		return fmt.Errorf("tensor %s has shape %v, the config needs %v", name, info.Shape, want)
	}
	data := model.F32(dst)
	if err := set.ReadInto(name, data); err != nil {
		return err
	}
	for i, v := range data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("tensor %s holds %v at index %d", name, v, i)
		}
	}
	return nil
}

// isRotaryBuffer matches the rotary inverse-frequency buffers older
// transformers versions saved (model.layers.N.self_attn.rotary_emb.inv_freq,
// model.rotary_emb.inv_freq).
func isRotaryBuffer(name string) bool {
	return strings.HasSuffix(name, "rotary_emb.inv_freq")
}

// checkTiedHead accepts a stored lm_head.weight beside tied embeddings only
// when it is the embedding matrix exactly; any difference means the head
// was trained apart and tying it would change the model.
func checkTiedHead(set *safetensors.Set, w *model.Weights) error {
	head := model.NewTensor(model.MatrixShape(w.Embed))
	if err := readChecked(set, "lm_head.weight", head); err != nil {
		return fmt.Errorf("%w (tie_word_embeddings is true)", err)
	}
	if blocks := model.Q8(w.Embed); blocks != nil {
		// Held in Q8_0, the tied matrix is the quantized embedding: a
		// head that quantizes to it is that model.
		hb := make([]q8.Block, len(blocks))
		q8.QuantizeRow(hb, model.F32(head))
		for i := range hb {
			if hb[i] != blocks[i] {
				return fmt.Errorf("tensor lm_head.weight differs from model.embed_tokens.weight in Q8_0 block %d (tie_word_embeddings is true)", i)
			}
		}
		return nil
	}
	if bits := model.BF16(w.Embed); bits != nil {
		// Held in bfloat16, the tied matrix is the rounded embedding: a
		// head that rounds to it is that model.
		for i, v := range model.F32(head) {
			if bf16.FromFloat32(v) != bits[i] {
				return fmt.Errorf("tensor lm_head.weight differs from model.embed_tokens.weight at index %d in bfloat16 (tie_word_embeddings is true)", i)
			}
		}
		return nil
	}
	emb := model.F32(w.Embed)
	for i, v := range model.F32(head) {
		if v != emb[i] {
			return fmt.Errorf("tensor lm_head.weight differs from model.embed_tokens.weight at index %d (%g vs %g), but tie_word_embeddings is true", i, v, emb[i])
		}
	}
	return nil
}
