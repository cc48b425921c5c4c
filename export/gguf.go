package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// Formats of the merged model.
const (
	// FormatHF is a Hugging Face model directory (the default).
	FormatHF = "hf"
	// FormatGGUF is one GGUF file, the format llama.cpp, Ollama and LM
	// Studio load, with an Ollama Modelfile beside it.
	FormatGGUF = "gguf"
)

// ggufDtype is the tensor type of a GGUF export: GGUFDtype, else the one
// matching Dtype.
func (c Config) ggufDtype() mgguf.Dtype {
	if c.GGUFDtype != "" {
		return c.GGUFDtype
	}
	switch c.Dtype {
	case safetensors.F16:
		return mgguf.F16
	case safetensors.BF16:
		return mgguf.BF16
	}
	return mgguf.F32
}

// runGGUF writes the merged model as a GGUF file (cfg.Out, with a
// Modelfile beside it) and/or the adapter alone as a llama.cpp LoRA GGUF
// (cfg.AdapterGGUF). Without an adapter it converts the base alone.
func runGGUF(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Out == "" && cfg.AdapterGGUF == "" {
		return nil, errors.New("export: a GGUF export needs an output file (--out) or an adapter GGUF file (--adapter-gguf)")
	}
	if (cfg.AdapterGGUF != "" || cfg.AdapterOut != "") && cfg.Adapter == "" {
		return nil, errors.New("export: an adapter output needs an adapter (--adapter)")
	}
	for _, p := range []string{cfg.Out, cfg.AdapterGGUF} {
		if p != "" && !mgguf.IsGGUF(p) {
			return nil, fmt.Errorf("export: GGUF output %s must be a file name ending in .gguf", p)
		}
		if err := checkGGUFOutput(p); err != nil {
			return nil, err
		}
	}
	if same(cfg.Out, cfg.AdapterGGUF) {
		return nil, errors.New("export: the model and adapter GGUF files must differ")
	}
	if _, err := mgguf.ParseDtype(string(cfg.ggufDtype())); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	base := cfg.Base
	if base == "" {
		if cfg.Adapter == "" {
			return nil, errors.New("export: give the base model (--base) to convert, or an adapter")
		}
		pc, err := lora.ReadConfig(cfg.Adapter)
		if err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
		if base = pc.BaseModelNameOrPath; base == "" {
			return nil, fmt.Errorf("export: adapter %s records no base_model_name_or_path; give the base model", cfg.Adapter)
		}
	}
	if same(base, cfg.Out) {
		return nil, errors.New("export: the GGUF output must differ from the base")
	}
	w, tok, err := loadBaseForGGUF(base, cfg.Adapter)
	if err != nil {
		return nil, fmt.Errorf("export: base: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &Result{Base: base}
	if cfg.Adapter != "" {
		a, _, extra, err := lora.Load(cfg.Adapter, w)
		if err != nil {
			return nil, fmt.Errorf("export: adapter %s does not fit base model %s: %w", cfg.Adapter, base, err)
		}
		res.Modules = len(a.Modules)
		if cfg.AdapterGGUF != "" {
			if len(extra) > 0 {
				return nil, fmt.Errorf("export: adapter %s also trains whole modules, which a llama.cpp LoRA adapter cannot hold; export the merged model instead", cfg.Adapter)
			}
			if err := mgguf.SaveAdapter(cfg.AdapterGGUF, w.Config, a.Config.R, a.Config.Scaling(), loraModules(a), ""); err != nil {
				return nil, fmt.Errorf("export: %w", err)
			}
			res.Files = append(res.Files, cfg.AdapterGGUF)
		}
		if res.Replaced, err = replaceExtras(w, extra, cfg.Adapter); err != nil {
			return nil, err
		}
		if err := a.Merge(w); err != nil {
			return nil, fmt.Errorf("export: %w", err)
		}
	}
	if cfg.AdapterOut != "" {
		if err := CopyAdapter(cfg.Adapter, cfg.AdapterOut); err != nil {
			return nil, err
		}
	}
	if cfg.Out == "" {
		return res, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := strings.TrimSuffix(filepath.Base(cfg.Out), filepath.Ext(cfg.Out))
	if err := mgguf.Save(cfg.Out, w, tok, mgguf.Options{Dtype: cfg.ggufDtype(), Name: name}); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	mf := filepath.Join(filepath.Dir(cfg.Out), mgguf.ModelfileName)
	if err := atomicfile.WriteBytes(mf, []byte(mgguf.Modelfile("./"+filepath.Base(cfg.Out), tok))); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	res.Files = append(res.Files, cfg.Out, mf)
	return res, nil
}

// loadBaseForGGUF loads the base (a Hugging Face directory or a GGUF file)
// and its tokenizer: the base's own, else the one saved with the adapter.
func loadBaseForGGUF(base, adapter string) (*model.Weights, *tokenizer.Tokenizer, error) {
	if mgguf.IsGGUF(base) {
		return mgguf.Load(base)
	}
	w, err := hf.LoadModel(base)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.Load(base)
	if err != nil && adapter != "" {
		if t, errA := tokenizer.Load(adapter); errA == nil {
			tok, err = t, nil
		}
	}
	if err != nil {
		return nil, nil, err
	}
	return w, tok, nil
}

// loraModules lists an adapter's modules for the GGUF adapter writer.
func loraModules(a *lora.Adapter) []mgguf.LoRAModule {
	out := make([]mgguf.LoRAModule, len(a.Modules))
	for i, m := range a.Modules {
		out[i] = mgguf.LoRAModule{Layer: m.Layer, Module: m.Name, A: model.F32(m.A), B: model.F32(m.B)}
	}
	return out
}

// checkGGUFOutput refuses to replace a file that is not a GGUF file, so a
// mistyped --out cannot overwrite something else.
func checkGGUFOutput(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export: output %s: %w", path, err)
	}
	defer f.Close()
	magic := make([]byte, 4)
	if _, err := io.ReadFull(f, magic); err != nil || string(magic) != "GGUF" {
		return fmt.Errorf("export: output %s exists and is not a GGUF file; refusing to replace it", path)
	}
	return nil
}

// baseMarker is the file whose presence makes base a model: the GGUF file
// itself, or a directory's config.json.
func baseMarker(base string) string {
	if mgguf.IsGGUF(base) {
		return base
	}
	return filepath.Join(base, hf.ConfigFile)
}

// loadBaseHF loads the base of a Hugging Face export: a model directory,
// or a GGUF file, whose tokenizer (rebuilt from its metadata) is returned
// too since there are no tokenizer files to copy.
func loadBaseHF(base string) (*model.Weights, *tokenizer.Tokenizer, error) {
	if mgguf.IsGGUF(base) {
		return mgguf.Load(base)
	}
	w, err := hf.LoadModel(base)
	return w, nil, err
}
