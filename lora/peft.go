package lora

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/model"
)

// File names of a PEFT adapter directory.
const (
	ConfigFile  = "adapter_config.json"
	WeightsFile = "adapter_model.safetensors"
)

// PEFTConfig is adapter_config.json as Hugging Face PEFT writes it for a
// LoRA adapter.
type PEFTConfig struct {
	PEFTType            string   `json:"peft_type"`
	TaskType            string   `json:"task_type"`
	R                   int      `json:"r"`
	LoraAlpha           float64  `json:"lora_alpha"`
	LoraDropout         float64  `json:"lora_dropout"`
	TargetModules       []string `json:"target_modules"`
	UseRSLoRA           bool     `json:"use_rslora"`
	Bias                string   `json:"bias"`
	BaseModelNameOrPath string   `json:"base_model_name_or_path"`
	ModulesToSave       []string `json:"modules_to_save"`
	FanInFanOut         bool     `json:"fan_in_fan_out"`
	InferenceMode       bool     `json:"inference_mode"`
	InitLoraWeights     any      `json:"init_lora_weights"`
	UseDoRA             bool     `json:"use_dora"`
	LayersToTransform   []int    `json:"layers_to_transform"`
	RankPattern         any      `json:"rank_pattern"`
	AlphaPattern        any      `json:"alpha_pattern"`
	Revision            *string  `json:"revision"`
}

// Extra holds whole modules trained alongside the adapter and saved with it
// (PEFT's modules_to_save), e.g. a reward model's "score" head, keyed by
// module name; each module is stored as "base_model.model.<name>.weight".
type Extra map[string]*tensor.Dense

// Save writes the adapter as a PEFT directory: adapter_config.json and
// adapter_model.safetensors (keys base_model.model.model.layers.N.<block>.<module>.lora_{A,B}.weight,
// A (r, in), B (out, r)). base is recorded as base_model_name_or_path and
// taskType as task_type ("CAUSAL_LM" or "SEQ_CLS"). Both files are written
// atomically.
func (a *Adapter) Save(dir, base, taskType string, extra Extra) error {
	if a.merged {
		return fmt.Errorf("save adapter %s: adapter is merged into the base; unmerge it first", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	var tensors []safetensors.Tensor
	for _, m := range a.Modules {
		tensors = append(tensors,
			safetensors.Tensor{Name: m.PEFTPrefix() + ".lora_A.weight", Shape: m.A.Shape().Clone(), Data: model.F32(m.A)},
			safetensors.Tensor{Name: m.PEFTPrefix() + ".lora_B.weight", Shape: m.B.Shape().Clone(), Data: model.F32(m.B)})
	}
	names := make([]string, 0, len(extra))
	for name := range extra {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		t := extra[name]
		tensors = append(tensors, safetensors.Tensor{Name: "base_model.model." + name + ".weight", Shape: t.Shape().Clone(), Data: model.F32(t)})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), tensors, map[string]string{"format": "pt"}, safetensors.F32); err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	if base != "" {
		if abs, err := filepath.Abs(base); err == nil {
			base = abs
		}
	}
	cfg := PEFTConfig{
		PEFTType: "LORA", TaskType: taskType, R: a.Config.R, LoraAlpha: a.Config.Alpha, LoraDropout: a.Config.Dropout,
		TargetModules: slices.Clone(a.Config.Targets), UseRSLoRA: a.Config.RSLoRA, Bias: "none",
		BaseModelNameOrPath: base, ModulesToSave: names, InferenceMode: true, InitLoraWeights: true,
		RankPattern: map[string]int{}, AlphaPattern: map[string]float64{},
	}
	if len(names) == 0 {
		cfg.ModulesToSave = nil
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("save adapter: %w", err)
	}
	return atomicfile.WriteBytes(filepath.Join(dir, ConfigFile), append(raw, '\n'))
}

// ReadConfig reads adapter_config.json from an adapter directory.
func ReadConfig(dir string) (PEFTConfig, error) {
	path := filepath.Join(dir, ConfigFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		return PEFTConfig{}, fmt.Errorf("load adapter: %w", err)
	}
	var c PEFTConfig
	if err := json.Unmarshal(raw, &c); err != nil {
		return PEFTConfig{}, fmt.Errorf("load adapter %s: %w", path, err)
	}
	switch {
	case c.PEFTType != "LORA":
		return c, fmt.Errorf("load adapter %s: peft_type %q is not LORA", path, c.PEFTType)
	case c.R <= 0:
		return c, fmt.Errorf("load adapter %s: r must be positive, got %d", path, c.R)
	case c.UseDoRA:
		return c, fmt.Errorf("load adapter %s: DoRA adapters are not supported", path)
	case c.FanInFanOut:
		return c, fmt.Errorf("load adapter %s: fan_in_fan_out adapters are not supported", path)
	case c.Bias != "" && c.Bias != "none":
		return c, fmt.Errorf("load adapter %s: bias %q is not supported (only none)", path, c.Bias)
	}
	return c, nil
}

// loraKey matches PEFT's LoRA tensor names, with or without the
// ".default" adapter name and with either model prefix.
var loraKey = regexp.MustCompile(`^base_model\.model\.(?:model\.)?layers\.(\d+)\.(self_attn|mlp)\.((?:experts\.\d+\.|shared_experts\.)?(?:q_proj|q_a_proj|q_b_proj|kv_a_proj_with_mqa|kv_b_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj|u_proj|z_proj))\.lora_([AB])(?:\.default)?\.weight$`)

var extraKey = regexp.MustCompile(`^base_model\.model\.([A-Za-z0-9_.]+?)(?:\.modules_to_save\.default)?\.weight$`)

// Load reads a PEFT LoRA adapter directory for base weights w. Every tensor
// is checked against the base shapes; unknown keys are an error naming them.
// Extra modules (modules_to_save) are returned separately.
func Load(dir string, w *model.Weights) (*Adapter, PEFTConfig, Extra, error) {
	pc, err := ReadConfig(dir)
	if err != nil {
		return nil, pc, nil, err
	}
	path := filepath.Join(dir, WeightsFile)
	tensors, _, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, pc, nil, fmt.Errorf("load adapter: %w", err)
	}
	type pair struct{ a, b *safetensors.Tensor }
	found := map[string]*pair{}
	extra := Extra{}
	var layers []int
	var modules []string
	for i := range tensors {
		t := &tensors[i]
		m := loraKey.FindStringSubmatch(t.Name)
		if m == nil {
			if e := extraKey.FindStringSubmatch(t.Name); e != nil && slices.Contains(pc.ModulesToSave, e[1]) {
				extra[e[1]] = tensor.New(tensor.WithShape(t.Shape...), tensor.WithBacking(t.Data))
				continue
			}
			return nil, pc, nil, fmt.Errorf("load adapter %s: unexpected tensor %q", path, t.Name)
		}
		layer, _ := strconv.Atoi(m[1])
		if layer >= len(w.Layers) {
			return nil, pc, nil, fmt.Errorf("load adapter %s: tensor %q: layer %d but the base has %d layers", path, t.Name, layer, len(w.Layers))
		}
		k := key(layer, m[3])
		if found[k] == nil {
			found[k] = &pair{}
			layers = append(layers, layer)
			modules = append(modules, m[3])
		}
		if m[4] == "A" {
			found[k].a = t
		} else {
			found[k].b = t
		}
	}
	targets := pc.TargetModules
	if len(targets) == 0 {
		targets = uniq(modules)
	}
	cfg := Config{R: pc.R, Alpha: pc.LoraAlpha, Dropout: pc.LoraDropout, Targets: targets, RSLoRA: pc.UseRSLoRA, Init: "kaiming"}
	a := &Adapter{Config: cfg, byKey: map[string]*Module{}, scale: cfg.Scaling(), rng: rand.New(rand.NewPCG(1, 0x10a))}
	for i, layer := range layers {
		name := modules[i]
		p := found[key(layer, name)]
		prefix := (&Module{Layer: layer, Name: name}).PEFTPrefix()
		if p.a == nil || p.b == nil {
			return nil, pc, nil, fmt.Errorf("load adapter %s: %s has only one of lora_A and lora_B", path, prefix)
		}
		base, err := w.Layers[layer].Linear(name)
		if err != nil {
			return nil, pc, nil, err
		}
		out, in := model.MatrixShape(base)
		if !slices.Equal(p.a.Shape, []int{pc.R, in}) || !slices.Equal(p.b.Shape, []int{out, pc.R}) {
			return nil, pc, nil, fmt.Errorf("load adapter %s: %s: lora_A %v and lora_B %v, want [%d %d] and [%d %d]",
				path, prefix, p.a.Shape, p.b.Shape, pc.R, in, out, pc.R)
		}
		m := &Module{Layer: layer, Name: name,
			A: tensor.New(tensor.WithShape(pc.R, in), tensor.WithBacking(p.a.Data)),
			B: tensor.New(tensor.WithShape(out, pc.R), tensor.WithBacking(p.b.Data))}
		a.Modules = append(a.Modules, m)
		a.byKey[key(layer, name)] = m
	}
	sort.SliceStable(a.Modules, func(i, j int) bool {
		mi, mj := a.Modules[i], a.Modules[j]
		if mi.Layer != mj.Layer {
			return mi.Layer < mj.Layer
		}
		return moduleLess(mi.Name, mj.Name)
	})
	if len(a.Modules) == 0 {
		return nil, pc, nil, fmt.Errorf("load adapter %s: no LoRA tensors", path)
	}
	return a, pc, extra, nil
}

// moduleLess orders modules of one layer as New creates them: by base
// module (model.ModuleNames order), then routed experts by number, then
// the shared experts.
func moduleLess(a, b string) bool {
	ka, ea := moduleKey(a)
	kb, eb := moduleKey(b)
	if ka != kb {
		return ka < kb
	}
	return ea < eb
}

func moduleKey(name string) (base, expert int) {
	if e, proj, ok := model.ExpertModule(name); ok {
		if e < 0 {
			e = math.MaxInt
		}
		return slices.Index(model.ModuleNames, proj), e
	}
	return slices.Index(model.ModuleNames, name), 0
}

func uniq(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}
