// Package lora adds low-rank adapters (Hu et al. 2021, "LoRA: Low-Rank
// Adaptation of Large Language Models") to the linear layers of the model
// graph: y = x·Wᵀ + s·(dropout(x)·Aᵀ)·Bᵀ with A (r, in), B (out, r) and
// s = α/r (or α/√r for rsLoRA, Kalajdzievski 2023). The base weights stay
// frozen; only A and B are trained. An adapter can be switched off at run
// time (s = 0) without rebuilding the graph, merged into the base weights
// and unmerged again, and saved and loaded in PEFT's file format.
//
// May import: the rest of the shared fine-tuning layer (finetune, train,
// lora), model/..., tokenizer/..., data/..., checkpoints/..., internal/blas
// and internal/kernel; never a stage, the pipeline, serve or cmd.
package lora

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/ops"
)

// Config chooses where adapters go and how they are scaled and initialised.
type Config struct {
	R       int      // rank r
	Alpha   float64  // lora_alpha α
	Dropout float64  // lora_dropout p, applied to the adapter's input
	Targets []string // module names (model.ModuleNames) or "all-linear"
	RSLoRA  bool     // scale α/√r instead of α/r
	Init    string   // "kaiming" (PEFT's default: A kaiming-uniform, B zeros) or "gaussian" (A ~ N(0, 1/r))
	Seed    uint64   // initialisation seed
}

// Keys of Config's settings: the flags of the fine-tuning commands and the
// keys of their sections in a --config file. (Seed is the command's seed.)
const (
	KeyR       = "lora-r"
	KeyAlpha   = "lora-alpha"
	KeyDropout = "lora-dropout"
	KeyTargets = "lora-targets"
	KeyRSLoRA  = "use-rslora"
	KeyInit    = "lora-init"
)

// Initialisations of A (Config.Init).
const (
	InitKaiming  = "kaiming"
	InitGaussian = "gaussian"
)

// AllLinear is the Targets entry that adapts every linear module.
const AllLinear = "all-linear"

// DefaultConfig is r = 8, α = 16 on the attention projections.
func DefaultConfig() Config {
	return Config{R: 8, Alpha: 16, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}, Init: InitKaiming, Seed: 1}
}

// Validate reports the first invalid setting, naming its key. Init ""
// is InitKaiming, PEFT's default.
func (c Config) Validate() error {
	switch {
	case c.R <= 0:
		return fmt.Errorf("lora: %s must be positive, got %d", KeyR, c.R)
	case !(c.Alpha > 0) || math.IsInf(c.Alpha, 0):
		// α = 0 would make the scale 0, which is how a disabled adapter looks.
		return fmt.Errorf("lora: %s must be a positive finite number, got %g", KeyAlpha, c.Alpha)
	case !(c.Dropout >= 0 && c.Dropout < 1):
		return fmt.Errorf("lora: %s must be in [0, 1), got %g", KeyDropout, c.Dropout)
	case c.Init != "" && c.Init != InitKaiming && c.Init != InitGaussian:
		return fmt.Errorf("lora: %s %q is unknown (want %s or %s)", KeyInit, c.Init, InitKaiming, InitGaussian)
	}
	return c.validTargets()
}

// validTargets checks that Targets is not empty and that each names a
// module of some family, or AllLinear.
func (c Config) validTargets() error {
	if len(c.Targets) == 0 {
		return fmt.Errorf("lora: %s: no target modules", KeyTargets)
	}
	for _, t := range c.Targets {
		if t != AllLinear && !slices.Contains(model.ModuleNames, t) {
			return fmt.Errorf("lora: %s: unknown module %q (want one of %s or %s)", KeyTargets, t, strings.Join(model.ModuleNames, " "), AllLinear)
		}
	}
	return nil
}

// TargetModules expands AllLinear for a model of configuration m
// (model.Config.AllLinearModules) and validates module names. In a
// mixture-of-experts layer gate_proj, up_proj and down_proj stand for
// every expert's (model.Config.LayerModules), as PEFT matches them.
func (c Config) TargetModules(m model.Config) ([]string, error) {
	if err := c.validTargets(); err != nil {
		return nil, err
	}
	var out []string
	for _, t := range c.Targets {
		if t == AllLinear {
			return m.AllLinearModules(), nil
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("lora: %s: no target modules", KeyTargets)
	}
	return out, nil
}

// Scaling is s = α/r, or α/√r with rsLoRA.
func (c Config) Scaling() float64 {
	if c.RSLoRA {
		return c.Alpha / math.Sqrt(float64(c.R))
	}
	return c.Alpha / float64(c.R)
}

// Module is the adapter of one linear module of one layer.
type Module struct {
	Layer int
	Name  string        // q_proj … down_proj, experts.E.gate_proj …, shared_experts.gate_proj …
	A     *tensor.Dense // (r, in)
	B     *tensor.Dense // (out, r)
}

// PEFTPrefix is the module's key prefix in PEFT's adapter_model.safetensors,
// e.g. base_model.model.model.layers.3.self_attn.q_proj.
func (m *Module) PEFTPrefix() string {
	block := "self_attn"
	if _, _, expert := model.ExpertModule(m.Name); expert || m.Name == "gate_proj" || m.Name == "up_proj" || m.Name == "down_proj" {
		block = "mlp"
	}
	return fmt.Sprintf("base_model.model.model.layers.%d.%s.%s", m.Layer, block, m.Name)
}

// Adapter is a set of LoRA modules over one base model.
type Adapter struct {
	Config  Config
	Modules []*Module
	byKey   map[string]*Module
	scale   float64 // the live scale read by every graph: Scaling() when enabled, 0 when disabled
	merged  bool
	rng     *rand.Rand
	masks   []*[]float32 // dropout masks of every injected graph
}

func key(layer int, module string) string { return fmt.Sprintf("%d.%s", layer, module) }

// New creates an adapter for base weights w, initialised per cfg.Init.
func New(w *model.Weights, cfg Config) (*Adapter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Init == "" {
		cfg.Init = InitKaiming
	}
	targets, err := cfg.TargetModules(w.Config)
	if err != nil {
		return nil, err
	}
	a := &Adapter{Config: cfg, byKey: map[string]*Module{}, scale: cfg.Scaling(),
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x10a))}
	cfg.Targets = targets
	a.Config = cfg
	for i := range w.Layers {
		for _, target := range targets {
			for _, name := range w.Config.LayerModules(i, target) {
				base, err := w.Layers[i].Linear(name)
				if err != nil {
					return nil, fmt.Errorf("lora: target %s, layer %d (model_type %s): %w", target, i, w.Config.ModelType, err)
				}
				out, in := model.MatrixShape(base)
				m := &Module{Layer: i, Name: name, A: model.NewTensor(cfg.R, in), B: model.NewTensor(out, cfg.R)}
				initA(model.F32(m.A), in, cfg, a.rng)
				a.Modules = append(a.Modules, m)
				a.byKey[key(i, name)] = m
			}
		}
	}
	return a, nil
}

// initA fills A. Kaiming-uniform with a = √5, as torch.nn.Linear and PEFT
// do, has bound √(6 / ((1 + a²)·fan_in)) = 1/√fan_in. Gaussian is N(0, 1/r).
func initA(a []float32, fanIn int, cfg Config, r *rand.Rand) {
	if cfg.Init == InitGaussian {
		std := 1 / float64(cfg.R)
		for i := range a {
			a[i] = float32(r.NormFloat64() * std)
		}
		return
	}
	bound := 1 / math.Sqrt(float64(fanIn))
	for i := range a {
		a[i] = float32((2*r.Float64() - 1) * bound)
	}
}

// Module returns the adapter of (layer, module), or nil.
func (a *Adapter) Module(layer int, module string) *Module { return a.byKey[key(layer, module)] }

// SetEnabled switches the adapter on or off in every graph it was injected
// into; no graph is rebuilt and no weight is copied.
func (a *Adapter) SetEnabled(on bool) {
	if on {
		a.scale = a.Config.Scaling()
	} else {
		a.scale = 0
	}
}

// Enabled reports whether the adapter contributes to the outputs.
func (a *Adapter) Enabled() bool { return a.scale != 0 }

// LowRank exposes a live module to the generation engine: its delta is
// scale·(x·aᵀ)·bᵀ. It reports ok = false when the module has no adapter,
// the adapter is disabled, or it is merged into the base already.
func (a *Adapter) LowRank(layer int, module string) (aw, bw []float32, r int, scale float32, ok bool) {
	m := a.byKey[key(layer, module)]
	if m == nil || a.scale == 0 || a.merged {
		return nil, nil, 0, 0, false
	}
	return model.F32(m.A), model.F32(m.B), a.Config.R, float32(a.scale), true
}

// Merge adds s·B·A into the base weights (W ← W + s·B·A, in float32), after
// which the adapter stops contributing to injected graphs. Unmerge undoes it.
func (a *Adapter) Merge(w *model.Weights) error { return a.mergeSign(w, +1) }

// MergeDirs loads each PEFT adapter directory in turn and merges it into
// w, so that adapter k applies to the base with adapters 0…k−1 already
// merged (an SFT adapter, then a DPO adapter trained on that merged base).
// Adapters with modules_to_save are refused: a trained whole tensor (such
// as a reward model's score head) is not a low-rank update to merge.
func MergeDirs(w *model.Weights, dirs ...string) error {
	for _, dir := range dirs {
		a, _, extra, err := Load(dir, w)
		if err != nil {
			return err
		}
		if len(extra) > 0 {
			return fmt.Errorf("lora: merge %s: the adapter also trains whole modules (%s), which cannot be merged", dir, strings.Join(slices.Sorted(maps.Keys(extra)), ", "))
		}
		if err := a.Merge(w); err != nil {
			return fmt.Errorf("lora: merge %s: %w", dir, err)
		}
	}
	return nil
}

// Unmerge subtracts s·B·A from the base weights again.
func (a *Adapter) Unmerge(w *model.Weights) error { return a.mergeSign(w, -1) }

func (a *Adapter) mergeSign(w *model.Weights, sign float32) error {
	if (sign > 0) == a.merged {
		return fmt.Errorf("lora: adapter is already %s", map[bool]string{true: "merged", false: "unmerged"}[a.merged])
	}
	if len(w.Layers) < a.numLayers() {
		return fmt.Errorf("lora: base has %d layers, adapter needs %d", len(w.Layers), a.numLayers())
	}
	s := sign * float32(a.Config.Scaling())
	for _, m := range a.Modules {
		base, err := w.Layers[m.Layer].Linear(m.Name)
		if err != nil {
			return err
		}
		if model.BF16(base) != nil {
			return fmt.Errorf("lora: %s: the base weight is held in bfloat16 (a frozen base); merging needs it in float32", m.PEFTPrefix())
		}
		if model.Q8(base) != nil {
			return fmt.Errorf("lora: %s: the base weight is held in Q8_0 (for decoding); merging needs it in float32", m.PEFTPrefix())
		}
		out, in := model.MatrixShape(base)
		if m.A.Shape()[1] != in || m.B.Shape()[0] != out {
			return fmt.Errorf("lora: %s: adapter shapes %v·%v do not fit base %v", m.PEFTPrefix(), m.B.Shape(), m.A.Shape(), base.Shape())
		}
		// (out, in) += s · (out, r)·(r, in)
		blas.Gemm(false, false, out, in, a.Config.R, s, model.F32(m.B), model.F32(m.A), 1, model.F32(base))
	}
	a.merged = sign > 0
	if a.merged {
		a.scale = 0
	} else {
		a.scale = a.Config.Scaling()
	}
	return nil
}

func (a *Adapter) numLayers() int {
	n := 0
	for _, m := range a.Modules {
		n = max(n, m.Layer+1)
	}
	return n
}

// ResampleDropout draws fresh inverted-dropout masks (0 or 1/(1−p)) for
// every injected graph; call it before each training step. With p = 0 it
// does nothing.
func (a *Adapter) ResampleDropout() {
	p := a.Config.Dropout
	if p == 0 {
		return
	}
	keep := float32(1 / (1 - p))
	for _, m := range a.masks {
		mask := *m
		for i := range mask {
			if a.rng.Float64() < p {
				mask[i] = 0
			} else {
				mask[i] = keep
			}
		}
	}
}

// SeedDropout restarts the random stream of the dropout masks at (seed,
// stream). A trainer that reseeds before every step with the step number
// makes the masks a function of the step alone, so a resumed run draws the
// same masks as an uninterrupted one.
func (a *Adapter) SeedDropout(seed, stream uint64) {
	a.rng = rand.New(rand.NewPCG(seed, stream))
}

// SetDropoutActive turns dropout masks to all-ones (evaluation) or
// resamples them (training).
func (a *Adapter) SetDropoutActive(on bool) {
	if on {
		a.ResampleDropout()
		return
	}
	for _, m := range a.masks {
		mask := *m
		for i := range mask {
			mask[i] = 1
		}
	}
}

// Param is one trainable adapter tensor and its node in one graph.
type Param struct {
	Name   string // PEFT key, e.g. base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
	Tensor *tensor.Dense
	Node   *G.Node
}

// Injection is the adapter's presence in one graph; build one per graph
// with Adapter.Hook and pass it as model.GraphOptions.Hook.
type Injection struct {
	adapter *Adapter
	params  []Param
}

// Hook returns a new injection for one graph build.
func (a *Adapter) Hook() *Injection { return &Injection{adapter: a} }

// Params are the adapter tensors bound into this graph, in module order
// (A then B), ready to be handed to the optimizer.
func (inj *Injection) Params() []Param { return inj.params }

// ExpertAdapter implements model.ExpertHook: the update of a routed
// expert's projection, applied inside the fused mixture-of-experts
// operation (nil when the module has no adapter). Dropout there is not
// implemented and is refused.
func (inj *Injection) ExpertAdapter(g *G.ExprGraph, layer int, module string, dt tensor.Dtype) (*ops.LowRank, error) {
	a := inj.adapter
	m := a.Module(layer, module)
	if m == nil {
		return nil, nil
	}
	if a.Config.Dropout > 0 {
		return nil, fmt.Errorf("lora %s: dropout on routed experts is not implemented (lora_dropout %g)", m.PEFTPrefix(), a.Config.Dropout)
	}
	an, bn := inj.bind(g, m, dt)
	return &ops.LowRank{A: an, B: bn, Scale: &a.scale}, nil
}

// bind adds m's A and B to graph g, in dtype dt, as parameters of this
// injection.
func (inj *Injection) bind(g *G.ExprGraph, m *Module, dt tensor.Dtype) (an, bn *G.Node) {
	mk := func(t *tensor.Dense, name string) *G.Node {
		v := G.Value(t)
		if dt == tensor.Float64 {
			v = toFloat64(t)
		}
		return G.NewMatrix(g, dt, G.WithShape(t.Shape()...), G.WithName(name), G.WithValue(v))
	}
	an = mk(m.A, m.PEFTPrefix()+".lora_A.weight")
	bn = mk(m.B, m.PEFTPrefix()+".lora_B.weight")
	inj.params = append(inj.params,
		Param{Name: m.PEFTPrefix() + ".lora_A.weight", Tensor: m.A, Node: an},
		Param{Name: m.PEFTPrefix() + ".lora_B.weight", Tensor: m.B, Node: bn})
	return an, bn
}

// Wrap implements model.LinearHook: y ← y + s·(dropout(x)·Aᵀ)·Bᵀ.
func (inj *Injection) Wrap(g *G.ExprGraph, layer int, module string, x, y *G.Node) (*G.Node, error) {
	a := inj.adapter
	m := a.Module(layer, module)
	if m == nil {
		return y, nil
	}
	an, bn := inj.bind(g, m, x.Dtype())
	in := x
	if a.Config.Dropout > 0 {
		mask := make([]float32, x.Shape().TotalSize())
		for i := range mask {
			mask[i] = 1
		}
		a.masks = append(a.masks, &mask)
		var err error
		if in, err = G.ApplyOp(&hostMaskOp{mask: &mask}, x); err != nil {
			return nil, fmt.Errorf("lora %s: %w", m.PEFTPrefix(), err)
		}
	}
	xa, err := ops.Linear(in, an, nil) // (B·T, r) = x·Aᵀ
	if err != nil {
		return nil, fmt.Errorf("lora %s: %w", m.PEFTPrefix(), err)
	}
	out, err := G.ApplyOp(&lowRankAddOp{scale: &a.scale}, y, xa, bn) // (B·T, out) = y + s·(x·Aᵀ)·Bᵀ
	if err != nil {
		return nil, fmt.Errorf("lora %s: %w", m.PEFTPrefix(), err)
	}
	return out, nil
}

func toFloat64(t *tensor.Dense) *tensor.Dense {
	src := model.F32(t)
	dst := make([]float64, len(src))
	for i, v := range src {
		dst[i] = float64(v)
	}
	return tensor.New(tensor.WithShape(t.Shape()...), tensor.WithBacking(dst))
}
