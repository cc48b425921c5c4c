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
	"os"
	"path/filepath"
	"slices"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/checkpoints/safetensors"
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
		cfg.Architectures = []string{"LlamaForCausalLM"}
	}
	if err := writeJSON(filepath.Join(dir, ConfigFile), cfg); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	gen := GenerationConfig{BOSTokenID: cfg.BOSTokenID, EOSTokenID: cfg.EOSTokenID, FromModelConfig: true}
	if err := writeJSON(filepath.Join(dir, GenerationConfigFile), gen); err != nil {
		return fmt.Errorf("save model: %w", err)
	}
	return nil
}

func writeJSON(path string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteBytes(path, append(raw, '\n'))
}

// LoadModel reads a Hugging Face model directory: config.json through
// model.LoadConfig, then every parameter by its Hugging Face name from
// model.safetensors or its sharded set (F32, F16, BF16 or F64 data, converted
// to float32). A missing or mis-shaped tensor is an error naming it. Tensors
// the model does not use (e.g. rotary_emb.inv_freq of old exports, or a
// redundant lm_head.weight when embeddings are tied) are ignored.
func LoadModel(dir string) (*model.Weights, error) {
	cfg, err := model.LoadConfig(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, err
	}
	w, err := model.Allocate(cfg)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	set, err := safetensors.OpenSet(dir, WeightsBase)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", dir, err)
	}
	defer set.Close()
	for _, n := range w.Named() {
		info, ok := set.Info(n.Name)
		if !ok {
			return nil, fmt.Errorf("load model %s: tensor %s is missing", dir, n.Name)
		}
		want := []int(n.Tensor.Shape())
		if !slices.Equal(info.Shape, want) {
			return nil, fmt.Errorf("load model %s: tensor %s has shape %v, the config needs %v", dir, n.Name, info.Shape, want)
		}
		if err := set.ReadInto(n.Name, model.F32(n.Tensor)); err != nil {
			return nil, fmt.Errorf("load model %s: %w", dir, err)
		}
	}
	return w, nil
}
