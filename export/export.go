// Package export folds a LoRA adapter into its base model and writes the
// result as a Hugging Face model directory (config.json, model.safetensors
// sharded above a size limit with its index, generation_config.json and the
// base's tokenizer files), optionally with a copy of the adapter alone; or
// as one GGUF file for llama.cpp and Ollama (model/gguf), with an Ollama
// Modelfile, and the adapter alone as a llama.cpp LoRA GGUF.
//
// The merge is lora's (lora.Adapter.Merge): W ← W + s·B·A per adapted
// module (Hu et al. 2021, eq. 3, with s = α/r or α/√r for rsLoRA), in
// float32, so the merged model's logits equal those of the base with the
// adapter live. Every directory is written under
// a temporary name and renamed into place, so a reader never sees half an
// export.
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package export

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
)

// Keys of Config: the flags of `gotune export` and the keys under `export:`
// in a --config file (with underscores). KeyMaxShardSize is read with
// ParseSize into MaxShardBytes, KeyDtype with ParseDtype into Dtype.
const (
	KeyBase         = "base"
	KeyAdapter      = "adapter"
	KeyOut          = "out"
	KeyAdapterOut   = "adapter-out"
	KeyMaxShardSize = "max-shard-size"
	KeyDtype        = "dtype"
	KeyFormat       = "format"
	KeyAdapterGGUF  = "adapter-gguf"
)

// Config is one export. Start from DefaultConfig; Run refuses a Config that
// Validate rejects.
type Config struct {
	// Base is the base model directory; empty means the adapter's
	// base_model_name_or_path.
	Base string
	// Adapter is the PEFT adapter directory (adapter_config.json and
	// adapter_model.safetensors).
	Adapter string
	// Out receives the merged model directory.
	Out string
	// AdapterOut, when set, receives a copy of the adapter alone.
	AdapterOut string
	// MaxShardBytes splits model.safetensors into shards of at most this
	// many bytes of tensor data, with model.safetensors.index.json (> 0).
	MaxShardBytes int64
	// Dtype stores the merged weights as F32, F16 or BF16.
	Dtype safetensors.Dtype
	// Format is FormatHF or FormatGGUF: Out is then one .gguf file, with
	// an Ollama Modelfile beside it, and an adapter is optional (without
	// one the base is converted alone). Empty means FormatGGUF when Out
	// ends in .gguf, else FormatHF.
	Format string
	// GGUFDtype is the tensor type of a GGUF export: f32, f16, bf16 or
	// q8_0; empty follows Dtype.
	GGUFDtype mgguf.Dtype
	// AdapterGGUF, when set, receives the adapter alone as a llama.cpp
	// LoRA adapter (.gguf), for use with the base's GGUF.
	AdapterGGUF string
}

// DefaultConfig stores float32 weights in 5 GB shards
// (hf.DefaultMaxShardBytes), as Hugging Face's save_pretrained does.
func DefaultConfig() Config {
	return Config{MaxShardBytes: hf.DefaultMaxShardBytes, Dtype: safetensors.F32}
}

// Validate reports the first invalid field, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Adapter == "":
		return fmt.Errorf("export: %s must not be empty", KeyAdapter)
	case c.Out == "":
		return fmt.Errorf("export: %s must not be empty", KeyOut)
	case c.MaxShardBytes <= 0:
		return fmt.Errorf("export: %s must be positive, got %d bytes", KeyMaxShardSize, c.MaxShardBytes)
	case c.Dtype != safetensors.F32 && c.Dtype != safetensors.F16 && c.Dtype != safetensors.BF16:
		return fmt.Errorf("export: %s %q: want F32, F16 or BF16", KeyDtype, c.Dtype)
	}
	return nil
}

// ParseDtype reads a stored weight type, case-insensitive: f32 (float32),
// f16 (float16) or bf16 (bfloat16).
func ParseDtype(s string) (safetensors.Dtype, error) {
	switch strings.ToUpper(s) {
	case "F32", "FLOAT32":
		return safetensors.F32, nil
	case "F16", "FLOAT16":
		return safetensors.F16, nil
	case "BF16", "BFLOAT16":
		return safetensors.BF16, nil
	}
	return "", fmt.Errorf("%s %q: want f32, f16 or bf16", KeyDtype, s)
}

// Result tells what an export wrote.
type Result struct {
	Base     string   // base model directory used
	Modules  int      // adapted modules merged
	Replaced []string // base tensors replaced by the adapter's modules_to_save
	Files    []string // files of the merged directory, sorted
}

// tokenizerFiles are the tokenizer files of a Hugging Face model directory
// copied into an export when present.
var tokenizerFiles = []string{
	"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
	"tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json", "chat_template.jinja",
}

// Run merges cfg.Adapter into its base and writes cfg.Out (and
// cfg.AdapterOut, cfg.AdapterGGUF) in cfg.Format. It refuses an adapter
// whose tensors do not fit the base, naming the first that does not, and an
// output that holds something other than an earlier export. The base may
// be a Hugging Face directory or a GGUF file.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	format := cfg.Format
	if format == "" && mgguf.IsGGUF(cfg.Out) {
		format = FormatGGUF
	}
	switch format {
	case FormatGGUF:
		return runGGUF(ctx, cfg)
	case "", FormatHF:
	default:
		return nil, fmt.Errorf("export: %s %q: want %s or %s", KeyFormat, cfg.Format, FormatHF, FormatGGUF)
	}
	if cfg.AdapterGGUF != "" {
		res, err := runGGUF(ctx, Config{Base: cfg.Base, Adapter: cfg.Adapter, AdapterGGUF: cfg.AdapterGGUF})
		if err != nil {
			return nil, err
		}
		if cfg.Out == "" {
			return res, nil
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	pc, err := lora.ReadConfig(cfg.Adapter)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	base := cfg.Base
	if base == "" {
		if pc.BaseModelNameOrPath == "" {
			return nil, fmt.Errorf("export: adapter %s records no base_model_name_or_path; give the base model directory", cfg.Adapter)
		}
		base = pc.BaseModelNameOrPath
		if _, err := os.Stat(baseMarker(base)); err != nil {
			return nil, fmt.Errorf("export: adapter %s was trained on %s, which is not a model directory here (%v); give the base model directory", cfg.Adapter, base, err)
		}
	}
	if same(base, cfg.Out) || same(cfg.Adapter, cfg.Out) || (cfg.AdapterOut != "" && (same(cfg.AdapterOut, cfg.Out) || same(cfg.AdapterOut, cfg.Adapter))) {
		return nil, errors.New("export: the output directories must differ from the base, the adapter and each other")
	}
	for _, dir := range []string{cfg.Out, cfg.AdapterOut} {
		if err := checkOutput(dir); err != nil {
			return nil, err
		}
	}
	w, baseTok, err := loadBaseHF(base)
	if err != nil {
		return nil, fmt.Errorf("export: base: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a, _, extra, err := lora.Load(cfg.Adapter, w)
	if err != nil {
		return nil, fmt.Errorf("export: adapter %s does not fit base model %s: %w", cfg.Adapter, base, err)
	}
	res := &Result{Base: base, Modules: len(a.Modules)}
	if res.Replaced, err = replaceExtras(w, extra, cfg.Adapter); err != nil {
		return nil, err
	}
	if err := a.Merge(w); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	err = atomicfile.ReplaceDir(cfg.Out, func(tmp string) error {
		if err := hf.SaveModel(tmp, w, hf.SaveOptions{Dtype: cfg.Dtype, MaxShardBytes: cfg.MaxShardBytes}); err != nil {
			return err
		}
		if baseTok != nil {
			// A GGUF base: its tokenizer comes from its metadata.
			return baseTok.Save(tmp)
		}
		if err := keepBaseConfig(base, tmp, cfg.Dtype); err != nil {
			return err
		}
		// The base's own generation settings (sampling defaults, stop ids)
		// apply unchanged to the merged model.
		if err := copyIfExists(filepath.Join(base, hf.GenerationConfigFile), filepath.Join(tmp, hf.GenerationConfigFile)); err != nil {
			return err
		}
		return copyTokenizer(tmp, base, cfg.Adapter)
	})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", cfg.Out, err)
	}
	if cfg.AdapterOut != "" {
		if err := CopyAdapter(cfg.Adapter, cfg.AdapterOut); err != nil {
			return nil, err
		}
	}
	entries, err := os.ReadDir(cfg.Out)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	for _, e := range entries {
		res.Files = append(res.Files, e.Name())
	}
	sort.Strings(res.Files)
	return res, nil
}

// same reports whether two paths name the same location.
func same(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// checkOutput refuses to replace a directory that is neither empty nor an
// earlier export (a model or adapter directory), so a mistyped --out cannot
// delete unrelated files.
func checkOutput(dir string) error {
	if dir == "" {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: output %s: %w", dir, err)
	}
	if len(entries) == 0 {
		return nil
	}
	for _, marker := range []string{hf.ConfigFile, lora.ConfigFile} {
		if _, err := os.Stat(filepath.Join(dir, marker)); err == nil {
			return nil
		}
	}
	return fmt.Errorf("export: output %s exists and holds neither a model nor an adapter; refusing to replace it", dir)
}

// replaceExtras puts the adapter's whole trained modules (PEFT's
// modules_to_save) in place of the base tensors of the same name, e.g.
// lm_head or model.embed_tokens. A module the causal LM has no tensor for
// (a reward model's score head) cannot be merged and is an error.
func replaceExtras(w *model.Weights, extra lora.Extra, adapterDir string) ([]string, error) {
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names)
	byName := map[string]model.Named{}
	for _, n := range w.Named() {
		byName[n.Name] = n
	}
	var replaced []string
	for _, name := range names {
		t := extra[name]
		n, ok := byName[name+".weight"]
		if !ok {
			return nil, fmt.Errorf("export: adapter %s trains module %q, which a causal language model does not have (a sequence-classification head cannot be merged into a causal LM export)", adapterDir, name)
		}
		if !slices.Equal(t.Shape(), n.Tensor.Shape()) {
			return nil, fmt.Errorf("export: adapter %s: module %s has shape %v, the base has %v", adapterDir, name, t.Shape(), n.Tensor.Shape())
		}
		copy(model.F32(n.Tensor), model.F32(t))
		replaced = append(replaced, n.Name)
	}
	return replaced, nil
}

// keepBaseConfig rewrites the exported config.json as the base's own, with
// only torch_dtype changed, so that fields this program does not model
// (transformers_version, initializer_range, …) survive the export.
func keepBaseConfig(base, dir string, dtype safetensors.Dtype) error {
	raw, err := os.ReadFile(filepath.Join(base, hf.ConfigFile))
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(base, hf.ConfigFile), err)
	}
	cfg["torch_dtype"] = "float32"
	switch dtype {
	case safetensors.F16:
		cfg["torch_dtype"] = "float16"
	case safetensors.BF16:
		cfg["torch_dtype"] = "bfloat16"
	}
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, hf.ConfigFile), append(out, '\n'))
}

// copyTokenizer copies the tokenizer files of the base into dir, or those
// saved beside the adapter when the base has none.
func copyTokenizer(dir string, sources ...string) error {
	for _, src := range sources {
		if _, err := os.Stat(filepath.Join(src, "tokenizer.json")); err != nil {
			if _, err := os.Stat(filepath.Join(src, "tokenizer.model")); err != nil {
				continue
			}
		}
		for _, name := range tokenizerFiles {
			if err := copyIfExists(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("no tokenizer files in %s", strings.Join(sources, " or "))
}

// CopyAdapter copies a PEFT adapter directory (its config, weights and any
// tokenizer files saved with it) to dst, atomically.
func CopyAdapter(src, dst string) error {
	if _, err := lora.ReadConfig(src); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := checkOutput(dst); err != nil {
		return err
	}
	err := atomicfile.ReplaceDir(dst, func(tmp string) error {
		for _, name := range []string{lora.ConfigFile, lora.WeightsFile} {
			if err := copyFile(filepath.Join(src, name), filepath.Join(tmp, name)); err != nil {
				return err
			}
		}
		for _, name := range tokenizerFiles {
			if err := copyIfExists(filepath.Join(src, name), filepath.Join(tmp, name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("export adapter %s: %w", dst, err)
	}
	return nil
}

func copyIfExists(src, dst string) error {
	if _, err := os.Stat(src); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return copyFile(src, dst)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.Write(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// ParseSize reads a shard size as Hugging Face's max_shard_size does: a
// number of bytes, optionally with a unit KB, MB, GB, TB (powers of 1000)
// or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, e.g. "5GB" or
// "200MiB". The size must be positive.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	num = strings.TrimSpace(num)
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	mult := map[string]int64{
		"": 1, "B": 1,
		"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
		"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40,
	}[unit]
	if mult == 0 || num == "" {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (KB, MB, GB, KiB, MiB, GiB)", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if n <= 0 {
		return 0, fmt.Errorf("size %q: must be positive", s)
	}
	if n > (1<<63-1)/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}
