// Package finetune is the model under fine-tuning, shared by every stage:
// a frozen base model and its tokenizer, one trainable LoRA adapter (plus
// optional whole tensors trained beside it, such as a reward model's score
// head), and the gorgonia programs built for it, one per purpose and batch
// shape. All programs bind the same weight tensors, so the base exists once
// in memory whatever the number of graphs, and switching the adapter off
// turns any program into the reference model.
//
// It also holds what several stages share, so that no stage imports
// another: opening a base with an SFT adapter merged (OpenMerged), the
// reward model's score head and scorer, dataset rows encoded as token
// sequences (Encoder, InstructionEncoder), text corpora read, packed into a
// token stream and cut into windows (ReadCorpus, Tokenize, Windows), and the
// token-loss programs that train and score on them (TokenLoss, WindowLoss,
// TextLoss, MeanLoss), and the training of mixture-of-experts models: the
// optional expert balance loss and the expert load each step logs (LogMoE).
//
// May import: the rest of the shared fine-tuning layer (finetune, train,
// lora), model/..., tokenizer/..., data/..., checkpoints/..., internal/blas
// and internal/kernel; never a stage, the pipeline, serve or cmd.
package finetune

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// Model is a base model with a trainable adapter and its programs.
type Model struct {
	BaseDir   string
	Weights   *model.Weights
	Tokenizer *tokenizer.Tokenizer
	Adapter   *lora.Adapter
	// Extra are whole tensors trained with the adapter and saved in its
	// modules_to_save (e.g. "score" (1, C) for a reward head).
	Extra lora.Extra

	programs map[string]*Program
	order    []*Program
	sums     map[string][]float32
	moeAlpha float64 // weight of the expert balance loss in trainable programs (SetMoEAuxLoss)
	ckpt     bool    // trainable programs recompute layers in the backward (SetGradientCheckpointing)
}

// Open loads a Hugging Face model directory (weights, config.json and
// tokenizer.json) or a GGUF file (weights dequantized to float32, the
// tokenizer rebuilt from its metadata). The model has no adapter until
// NewAdapter or LoadAdapter.
func Open(baseDir string) (*Model, error) {
	w, tok, err := mgguf.LoadBase(baseDir)
	if err != nil {
		return nil, err
	}
	return opened(baseDir, w, tok)
}

// OpenAs is Open holding the frozen base as dtype says (KeyBaseDtype). In
// bfloat16 a Hugging Face directory's matrices are rounded as they are
// read, so that they never all exist in float32 at once; a GGUF file's
// after loading.
func OpenAs(baseDir, dtype string) (*Model, error) {
	if err := CheckBaseDtype(dtype); err != nil {
		return nil, err
	}
	if dtype != BaseBFloat16 || mgguf.IsGGUF(baseDir) {
		m, err := Open(baseDir)
		if err != nil {
			return nil, err
		}
		if err := m.HoldBase(dtype); err != nil {
			return nil, err
		}
		return m, nil
	}
	w, _, err := hf.LoadModelWith(baseDir, hf.LoadOptions{BF16: true})
	if err != nil {
		return nil, err
	}
	debug.FreeOSMemory() // the loader's float32 scratch is garbage now
	tok, err := tokenizer.Load(baseDir)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", baseDir, err)
	}
	return opened(baseDir, w, tok)
}

// opened checks a loaded base's tokenizer against its vocabulary.
func opened(baseDir string, w *model.Weights, tok *tokenizer.Tokenizer) (*Model, error) {
	if tok.VocabSize() > w.Config.VocabSize {
		return nil, fmt.Errorf("open %s: tokenizer has %d tokens but the model's vocabulary is %d", baseDir, tok.VocabSize(), w.Config.VocabSize)
	}
	return New(baseDir, w, tok), nil
}

// New wraps weights and a tokenizer already in memory.
func New(baseDir string, w *model.Weights, tok *tokenizer.Tokenizer) *Model {
	return &Model{BaseDir: baseDir, Weights: w, Tokenizer: tok, Extra: lora.Extra{},
		programs: map[string]*Program{}, sums: map[string][]float32{}}
}

// NewAdapter attaches a freshly initialised adapter.
func (m *Model) NewAdapter(cfg lora.Config) error {
	if len(m.programs) > 0 {
		return fmt.Errorf("finetune: attach the adapter before building programs")
	}
	a, err := lora.New(m.Weights, cfg)
	if err != nil {
		return err
	}
	m.Adapter = a
	return nil
}

// LoadAdapter attaches an adapter saved in PEFT format, with its extra
// modules.
func (m *Model) LoadAdapter(dir string) error {
	if len(m.programs) > 0 {
		return fmt.Errorf("finetune: attach the adapter before building programs")
	}
	a, _, extra, err := lora.Load(dir, m.Weights)
	if err != nil {
		return err
	}
	m.Adapter = a
	for k, v := range extra {
		m.Extra[k] = v
	}
	return nil
}

// SetGradientCheckpointing makes the trainable programs built from now on
// recompute each decoder layer's activations in the backward pass
// (model.GraphOptions.Checkpoint; train.Config.GradientCheckpointing).
func (m *Model) SetGradientCheckpointing(on bool) error {
	if len(m.programs) > 0 {
		return fmt.Errorf("finetune: set %s before building programs", train.KeyGradientCheckpointing)
	}
	m.ckpt = on
	return nil
}

// KeyBaseDtype is the setting (flag and config key) of the fine-tuning
// stages that says how the frozen base is held: BaseFloat32 or
// BaseBFloat16 (HoldBase).
const KeyBaseDtype = "base-dtype"

// How the frozen base is held (KeyBaseDtype). BaseQ8_0 is for decoding
// only (generate, chat, serve: model.Weights.StoreQ8); the training
// stages refuse it.
const (
	BaseFloat32  = "float32"
	BaseBFloat16 = "bfloat16"
	BaseQ8_0     = "q8_0"
)

// CheckBaseDtype reports a base dtype the training stages do not hold a
// base in ("" is float32), naming the key.
func CheckBaseDtype(dtype string) error {
	if dtype == BaseQ8_0 {
		return fmt.Errorf("%s %q is for decoding only (generate, chat, serve); training holds the base in %s or %s", KeyBaseDtype, dtype, BaseFloat32, BaseBFloat16)
	}
	if dtype != "" && dtype != BaseFloat32 && dtype != BaseBFloat16 {
		return fmt.Errorf("%s %q is unknown (want %s or %s)", KeyBaseDtype, dtype, BaseFloat32, BaseBFloat16)
	}
	return nil
}

// CheckDecodeDtype reports a dtype the decoding commands do not hold a
// model in ("" is float32), naming the key.
func CheckDecodeDtype(dtype string) error {
	if dtype != "" && dtype != BaseFloat32 && dtype != BaseBFloat16 && dtype != BaseQ8_0 {
		return fmt.Errorf("%s %q is unknown (want %s, %s or %s)", KeyBaseDtype, dtype, BaseFloat32, BaseBFloat16, BaseQ8_0)
	}
	return nil
}

// HoldBase holds the frozen base as dtype says: StoreBaseBF16 for
// BaseBFloat16, nothing for BaseFloat32.
func (m *Model) HoldBase(dtype string) error {
	if err := CheckBaseDtype(dtype); err != nil {
		return err
	}
	if dtype == BaseBFloat16 {
		if _, err := m.StoreBaseBF16(); err != nil {
			return fmt.Errorf("%s: %w", KeyBaseDtype, err)
		}
	}
	return nil
}

// StoreBaseBF16 holds the frozen base's matrices in bfloat16
// (model.Weights.StoreBF16: the embeddings and linear weights, half their
// memory; products still run in float32) and returns the memory freed, in
// bytes. Call it before building programs. A bfloat16 checkpoint's weights
// are kept exactly; float32 ones are rounded. The base can no longer be
// merged into or exported from this Model.
func (m *Model) StoreBaseBF16() (int64, error) {
	if len(m.programs) > 0 {
		return 0, fmt.Errorf("finetune: store the base in bfloat16 before building programs")
	}
	n := m.Weights.StoreBF16(nil)
	debug.FreeOSMemory() // the float32 copies are garbage now
	return 2 * int64(n), nil
}

// MergeAdapter folds the attached adapter into the base weights and
// detaches it: the merged weights become the new frozen base (how a DPO or
// PPO policy starts from an SFT result while its reference is the SFT model).
func (m *Model) MergeAdapter() error {
	if m.Adapter == nil {
		return fmt.Errorf("finetune: no adapter to merge")
	}
	if len(m.programs) > 0 {
		return fmt.Errorf("finetune: merge the adapter before building programs")
	}
	if err := m.Adapter.Merge(m.Weights); err != nil {
		return err
	}
	m.Adapter = nil
	return nil
}

// SaveAdapter writes the adapter (and extra modules) in PEFT format, with
// base_model_name_or_path pointing at the base directory.
func (m *Model) SaveAdapter(dir, taskType string) error {
	if m.Adapter == nil {
		return fmt.Errorf("finetune: no adapter to save")
	}
	return m.Adapter.Save(dir, m.BaseDir, taskType, m.Extra)
}

// CopyTokenizer writes the base model's tokenizer files into dir, so an
// adapter or export directory is usable on its own.
func (m *Model) CopyTokenizer(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return m.Tokenizer.Save(dir)
}

// Program is a compiled graph of one purpose and batch shape.
type Program struct {
	Name  string
	Graph *model.Graph
	Prog  *model.Program
	Loss  *gorgonia.Node
	Out   []*gorgonia.Node
	// Extra are the nodes of Model.Extra in this graph.
	Extra map[string]*gorgonia.Node

	inj       *lora.Injection
	params    []lora.Param
	trainable bool
	balance   *gorgonia.Node // the expert balance term added to Loss for training; nil when off
}

// Run executes the program (forward, plus backward when it has a loss).
func (p *Program) Run() error { return p.Prog.Run() }

// BuildFunc adds a program's heads to a freshly built graph and returns its
// loss (nil for a forward-only program) and outputs.
type BuildFunc func(g *model.Graph, extra map[string]*gorgonia.Node) (loss *gorgonia.Node, outputs []*gorgonia.Node, err error)

// Program returns the program named name for batches of B×T tokens,
// building and compiling it the first time. With train set, the program
// differentiates its loss with respect to the adapter and the extra
// tensors, plus the expert balance loss when SetMoEAuxLoss set a weight.
func (m *Model) Program(name string, B, T int, trainable bool, build BuildFunc) (*Program, error) {
	return m.program(name, B, T, trainable, false, build)
}

// PackedProgram is Program for packed batches (data.BatchOptions.Pack):
// its graph reads each token's position and segment (model.GraphOptions.
// Packed), so the documents packed into one row are computed as if each
// were alone.
func (m *Model) PackedProgram(name string, B, T int, trainable bool, build BuildFunc) (*Program, error) {
	return m.program(name, B, T, trainable, true, build)
}

func (m *Model) program(name string, B, T int, trainable, packed bool, build BuildFunc) (*Program, error) {
	key := fmt.Sprintf("%s/%dx%d/%v", name, B, T, trainable)
	if packed {
		key += "/packed"
	}
	if p, ok := m.programs[key]; ok {
		return p, nil
	}
	opt := model.GraphOptions{B: B, T: T, Packed: packed, Checkpoint: trainable && m.ckpt}
	var inj *lora.Injection
	if m.Adapter != nil {
		inj = m.Adapter.Hook()
		opt.Hook = inj
	}
	g, err := model.Build(m.Weights, opt)
	if err != nil {
		return nil, fmt.Errorf("program %s: %w", key, err)
	}
	extra := map[string]*gorgonia.Node{}
	for _, k := range m.extraNames() {
		t := m.Extra[k]
		extra[k] = gorgonia.NewTensor(g.G, tensor.Float32, t.Dims(), gorgonia.WithShape(t.Shape()...),
			gorgonia.WithName("extra."+k), gorgonia.WithValue(t))
	}
	loss, outs, err := build(g, extra)
	if err != nil {
		return nil, fmt.Errorf("program %s: %w", key, err)
	}
	p := &Program{Name: key, Graph: g, Loss: loss, Out: outs, Extra: extra, inj: inj, trainable: trainable}
	var wrt []*gorgonia.Node
	if trainable {
		if loss == nil {
			return nil, fmt.Errorf("program %s: a trainable program needs a loss", key)
		}
		// The gradients descend the loss plus the balance term; Loss
		// stays the stage's own loss, and LogMoE reports the term.
		if loss, p.balance, err = WithBalanceLoss(g, loss, m.moeAlpha); err != nil {
			return nil, fmt.Errorf("program %s: %w", key, err)
		}
		if inj != nil {
			p.params = inj.Params()
			for _, q := range p.params {
				wrt = append(wrt, q.Node)
			}
		}
		for _, k := range m.extraNames() {
			wrt = append(wrt, extra[k])
		}
	} else {
		loss = nil
		if p.Loss != nil {
			outs = append(outs, p.Loss)
		}
	}
	if p.Prog, err = g.Compile(loss, wrt, outs...); err != nil {
		return nil, fmt.Errorf("program %s: %w", key, err)
	}
	m.programs[key] = p
	m.order = append(m.order, p)
	return p, nil
}

// ForwardOf registers, under name, a forward-only program compiled on the
// graph of the trainable program p: it computes p's loss and outputs with
// no gradient, through the same operations, so it holds none of the
// activation buffers a graph of its own would (a 0.5 B model's forward
// pass over 512 tokens keeps over a gigabyte of them) and returns the same
// values. Program(name, B, T, false, …) then finds it, for p's batch
// shape. It refuses when a program of that name and shape exists.
func (m *Model) ForwardOf(name string, p *Program) (*Program, error) {
	if p == nil || !p.trainable {
		return nil, fmt.Errorf("finetune: forward program %s: the source is not a trainable program", name)
	}
	key := fmt.Sprintf("%s/%dx%d/%v", name, p.Graph.B, p.Graph.T, false)
	if p.Graph.In.Segments != nil {
		key += "/packed"
	}
	if _, ok := m.programs[key]; ok {
		return nil, fmt.Errorf("finetune: program %s exists already", key)
	}
	outs := slices.Clone(p.Out)
	if p.Loss != nil {
		outs = append(outs, p.Loss)
	}
	f := &Program{Name: key, Graph: p.Graph, Loss: p.Loss, Out: p.Out, Extra: p.Extra, inj: p.inj}
	var err error
	if f.Prog, err = p.Graph.Compile(nil, nil, outs...); err != nil {
		return nil, fmt.Errorf("program %s: %w", key, err)
	}
	m.programs[key] = f
	m.order = append(m.order, f)
	return f, nil
}

func (m *Model) extraNames() []string {
	names := make([]string, 0, len(m.Extra))
	for k := range m.Extra {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// Params are the trainable tensors (adapter A and B matrices, then extra
// modules) for the optimizer. A gradient is the sum over every trainable
// program, so batches of different shapes accumulate into one update.
func (m *Model) Params() []train.Param {
	var out []train.Param
	add := func(name string, t *tensor.Dense, grad func(p *Program) []float32, noDecay bool) {
		buf := make([]float32, t.Shape().TotalSize())
		m.sums[name] = buf
		out = append(out, train.Param{Name: name, Shape: t.Shape().Clone(), Value: model.F32(t), NoDecay: noDecay,
			Grad: func() []float32 {
				clear(buf)
				for _, p := range m.order {
					if g := grad(p); g != nil {
						for i, v := range g {
							buf[i] += v
						}
					}
				}
				return buf
			}})
	}
	if m.Adapter != nil {
		for _, mod := range m.Adapter.Modules {
			for _, half := range []struct {
				suffix string
				t      *tensor.Dense
			}{{".lora_A.weight", mod.A}, {".lora_B.weight", mod.B}} {
				name := mod.PEFTPrefix() + half.suffix
				add(name, half.t, func(p *Program) []float32 {
					for _, q := range p.params {
						if q.Name == name && p.Loss != nil && p.Prog != nil {
							return p.Prog.Grad(q.Node)
						}
					}
					return nil
				}, false)
			}
		}
	}
	for _, k := range m.extraNames() {
		k := k
		add("extra."+k, m.Extra[k], func(p *Program) []float32 {
			if n, ok := p.Extra[k]; ok {
				return p.Prog.Grad(n)
			}
			return nil
		}, false)
	}
	return out
}

// ZeroGrad clears the accumulated gradients of every program.
func (m *Model) ZeroGrad() {
	for _, p := range m.order {
		p.Prog.ZeroGrad()
	}
}

// AdapterDir is where a stage keeps its adapter inside its output directory.
func AdapterDir(stageDir string) string { return filepath.Join(stageDir, "adapter") }

// OpenMerged opens a base model directory and, when sftAdapter is not "",
// merges that adapter into it, leaving the model without an adapter: the
// usual start of RLHF, where the reward model and the policy both begin
// from the SFT result.
func OpenMerged(base, sftAdapter string) (*Model, error) {
	m, err := Open(base)
	if err != nil {
		return nil, err
	}
	if sftAdapter == "" {
		return m, nil
	}
	if err := m.LoadAdapter(sftAdapter); err != nil {
		return nil, fmt.Errorf("SFT adapter: %w", err)
	}
	if err := m.MergeAdapter(); err != nil {
		return nil, fmt.Errorf("merge %s: %w", sftAdapter, err)
	}
	clear(m.Extra) // an SFT adapter's extra modules are not part of the reward model
	return m, nil
}
