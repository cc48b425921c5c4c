// Package sft is supervised fine-tuning with LoRA: a frozen base model
// learns to answer instructions through a low-rank adapter (Hu et al.
// 2021), trained on the causal language-modelling loss of the completion
// tokens only, as Stanford Alpaca's train.py and TRL's SFTTrainer do
// (prompt tokens are masked out of the loss unless TrainOnInputs is set).
//
// For a row with prompt tokens p and completion tokens c, the loss of a
// batch is the mean negative log-likelihood over every completion token in
// it:
//
//	L = −Σ_rows Σ_{t∈c} log p(x_t | x_<t) / |{completion tokens}|
//
// Rows are rendered by a template (Alpaca, or a chat template of the
// tokenizer), truncated to MaxLen, grouped by length into batches of a few
// fixed shapes (one compiled program per shape) and shuffled per epoch.
// A conversational row (messages) is rendered whole, and the loss covers
// every assistant turn with its end-of-turn token, as TRL's
// assistant_only_loss does. With Packing, rows are packed into rows of
// MaxLen tokens, each document attending only to itself, with positions
// restarting at 0 (padding-free packing).
// Every EvalEvery updates the held-out loss and perplexity (exp of the
// loss) are logged as eval_loss and eval_perplexity. Checkpoints hold the
// adapter, the optimizer and the data position, so an interrupted run
// resumes exactly. The result is a PEFT adapter in <Out>/adapter.
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package sft

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// TaskType is the PEFT task_type of an SFT adapter.
const TaskType = "CAUSAL_LM"

// Keys of Config: the flags of `gotune sft` and the keys under `sft:` in a
// --config file. The adapter's and the loop's settings have lora's and
// train's keys.
const (
	KeyBase          = "base"
	KeyData          = "data"
	KeyEvalData      = "eval-data"
	KeyEvalFraction  = "eval-fraction"
	KeyEvalRows      = "eval-rows"
	KeyTemplate      = "template"
	KeyTrainOnInputs = "train-on-inputs"
	KeyBatchSize     = "batch-size"
	KeyMaxLen        = "max-len"
	KeyBuckets       = "buckets"
	KeyTruncation    = "truncation"
	KeyPacking       = "packing"
	KeyBaseDtype     = finetune.KeyBaseDtype
	KeyOut           = "out"
	KeyResume        = "resume"
)

// Config is one SFT run.
type Config struct {
	Base string // base model directory (Hugging Face layout with tokenizer.json)

	// Training rows: Rows when given, else the instructions dataset at
	// Data.
	Rows []data.Instruction
	Data string

	// Held-out rows: EvalRows when given, else the dataset at EvalData,
	// else an EvalFraction of the training rows split off by a seeded
	// shuffle.
	EvalRows     []data.Instruction
	EvalData     string
	EvalFraction float64
	EvalMax      int // held-out rows scored at most (0: all)

	Template      string // auto (the tokenizer's chat_template, else alpaca), alpaca, chatml, llama3 or jinja
	TrainOnInputs bool   // take the loss on prompt tokens too

	BatchSize  int    // rows per micro-batch
	MaxLen     int    // tokens per row at most (0: min(512, the model's positions))
	Buckets    []int  // allowed batch lengths T, ascending (nil: 64, 128, 256, 512 up to MaxLen, and MaxLen)
	Truncation string // data.TruncateKeepStart (the default, also "") or data.TruncateKeepEnd

	// Packing concatenates training rows into rows of MaxLen tokens
	// (padding-free packing: each row's positions restart at 0 and
	// attention is blocked between rows, so every row's loss is what it
	// is alone); held-out rows are scored unpacked.
	Packing bool

	// BaseDtype is how the frozen base's matrices are held:
	// finetune.BaseFloat32 (also "") or finetune.BaseBFloat16 (half the
	// memory; products still run in float32; exact for a bfloat16
	// checkpoint, rounded otherwise).
	BaseDtype string

	LoRA lora.Config

	Out    string // output directory: adapter/, state/, metrics.jsonl
	Resume bool   // continue from the checkpoint in Out
	Train  train.Config

	// afterStep, when set (tests), is called after each micro-batch;
	// inspect receives the trained model before Run returns.
	afterStep func(step, micro int)
	inspect   func(*finetune.Model)
}

// DefaultConfig is the embedded default: LoRA r = 8, α = 16 on q, k, v, o
// (no dropout, as PEFT's default) with the tokenizer's chat template, or
// the Alpaca template when it has none, batches of 8,
// 300 updates at a peak learning rate of 3·10⁻³ (cosine decay to a tenth
// after 20 warmup updates; the best of 10⁻³, 3·10⁻³ and 10⁻² for the tiny
// default base; models of billions of parameters want 10⁻⁴ to 3·10⁻⁴),
// evaluation and checkpoints every 50 updates, 5 % held out.
func DefaultConfig() Config {
	tc := train.DefaultConfig()
	tc.Steps, tc.LR, tc.WarmupSteps, tc.MinLRRatio = 300, 3e-3, 20, 0.1
	tc.LogEvery, tc.EvalEvery, tc.CheckpointEvery = 10, 50, 50
	return Config{
		EvalFraction: 0.05, EvalMax: 256, Template: TemplateAuto,
		BatchSize: 8, Truncation: data.TruncateKeepStart, BaseDtype: finetune.BaseFloat32, LoRA: lora.DefaultConfig(), Train: tc,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Base == "":
		return fmt.Errorf("sft: %s (the base model directory) is not set", KeyBase)
	case finetune.CheckBaseDtype(c.BaseDtype) != nil:
		return fmt.Errorf("sft: %w", finetune.CheckBaseDtype(c.BaseDtype))
	case c.Out == "":
		return fmt.Errorf("sft: %s (the output directory) is not set", KeyOut)
	case c.Rows == nil && c.Data == "":
		return fmt.Errorf("sft: %s (an instructions dataset) is not set and no rows are given", KeyData)
	case !(c.EvalFraction >= 0 && c.EvalFraction < 1):
		return fmt.Errorf("sft: %s must be in [0, 1), got %g", KeyEvalFraction, c.EvalFraction)
	case c.EvalMax < 0:
		return fmt.Errorf("sft: %s must be ≥ 0 (0: all), got %d", KeyEvalRows, c.EvalMax)
	case !slices.Contains(Templates, c.Template):
		return fmt.Errorf("sft: %s %q is unknown (want one of %s)", KeyTemplate, c.Template, strings.Join(Templates, ", "))
	case c.BatchSize <= 0:
		return fmt.Errorf("sft: %s must be positive, got %d", KeyBatchSize, c.BatchSize)
	case c.MaxLen < 0:
		return fmt.Errorf("sft: %s must be ≥ 0 (0: min(512, the model's positions)), got %d", KeyMaxLen, c.MaxLen)
	case c.Truncation != "" && c.Truncation != data.TruncateKeepStart && c.Truncation != data.TruncateKeepEnd:
		return fmt.Errorf("sft: %s %q is unknown (want %s or %s)", KeyTruncation, c.Truncation, data.TruncateKeepStart, data.TruncateKeepEnd)
	}
	for i, b := range c.Buckets {
		if b <= 0 || (i > 0 && b <= c.Buckets[i-1]) {
			return fmt.Errorf("sft: %s %v must be positive and ascending", KeyBuckets, c.Buckets)
		}
	}
	if c.Packing && c.Buckets != nil {
		return fmt.Errorf("sft: %s %v cannot be set with %s: packed rows all have %s tokens", KeyBuckets, c.Buckets, KeyPacking, KeyMaxLen)
	}
	if c.Packing && c.Train.MoEAuxLossAlpha > 0 {
		// The balance loss is per sequence: a packed row would mix its
		// documents' expert loads.
		return fmt.Errorf("sft: %s is not implemented with %s: its sequence-level balance loss would span packed rows", KeyPacking, train.KeyMoEAuxLossAlpha)
	}
	if err := c.LoRA.Validate(); err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	t := c.Train
	t.Dir = c.Out
	if err := t.Validate(); err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	return nil
}

// Result summarises a run.
type Result struct {
	TrainRows, EvalRows int                   // rows in each set (before truncation)
	Truncation          data.TruncationReport // what fitting the training rows to MaxLen did
	Shapes              []int                 // batch lengths T compiled
	TrainableParams     int                   // adapter parameters
	BaseEvalLoss        float64               // held-out loss of the base model (adapter off); NaN without held-out rows
	EvalLoss            float64               // held-out loss after training
	EvalPerplexity      float64               // exp(EvalLoss)
	AdapterDir          string                // where the adapter was written
}

// Run fine-tunes the base model and writes the adapter to <Out>/adapter.
// Cancelling ctx checkpoints the last completed update and returns
// ctx.Err(); Resume continues from there.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Under mpirun only rank 0 writes to Out (see train.Comm).
	out, cleanup, err := train.RankDir(cfg.Out)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	defer cleanup()
	cfg.Out = out
	cfg.Train.Dir = cfg.Out
	resuming := cfg.Resume && train.HasCheckpoint(cfg.Out)
	if !resuming && train.HasCheckpoint(cfg.Out) {
		return nil, fmt.Errorf("sft: %s holds a training checkpoint; resume it or choose another output directory", cfg.Out)
	}

	m, err := finetune.OpenAs(cfg.Base, cfg.BaseDtype)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	if err := m.SetMoEAuxLoss(cfg.Train.MoEAuxLossAlpha); err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	if err := m.SetGradientCheckpointing(cfg.Train.GradientCheckpointing); err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	enc, err := finetune.NewInstructionEncoder(m.Tokenizer, cfg.Template, cfg.TrainOnInputs)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	trainRows, evalRows, err := loadRows(cfg)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	if cfg.EvalMax > 0 && len(evalRows) > cfg.EvalMax {
		evalRows = evalRows[:cfg.EvalMax]
	}
	opts, err := batchOptions(cfg, m.Weights.Config, m.Tokenizer.PAD())
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	trainEx, err := enc.EncodeAll(trainRows, cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	evalEx, err := enc.EncodeAll(evalRows, cfg.EvalData)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	batcher, report, err := data.NewBatcher(trainEx, opts)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	if batcher.Examples() == 0 {
		return nil, fmt.Errorf("sft: no training row is left after fitting to %d tokens (%s)", opts.MaxLen, report)
	}
	evalOpts := opts
	evalOpts.Shuffle, evalOpts.Pack = false, false
	if cfg.Packing {
		evalOpts.Buckets = finetune.LengthBuckets(opts.MaxLen)
	}
	evalBatcher, _, err := data.NewBatcher(evalEx, evalOpts)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	evalBatches := evalBatcher.Epoch(0)

	if err := m.NewAdapter(cfg.LoRA); err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	tr := &trainer{m: m, seed: cfg.Train.Seed}
	// Every program is built up front in a fixed order, so that each
	// graph's dropout masks have the same place in the adapter's stream in
	// a fresh and in a resumed run.
	res := &Result{TrainRows: len(trainRows), EvalRows: len(evalRows), Truncation: report,
		BaseEvalLoss: math.NaN(), EvalLoss: math.NaN(), EvalPerplexity: math.NaN()}
	if res.Shapes, err = tr.build(cfg.BatchSize, shapes(trainEx, opts), evalShapes(evalBatches), cfg.Packing); err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	params := m.Params()
	for _, p := range params {
		res.TrainableParams += len(p.Value)
	}

	if len(evalBatches) > 0 {
		m.Adapter.SetEnabled(false)
		res.BaseEvalLoss, err = tr.evaluate(ctx, evalBatches)
		m.Adapter.SetEnabled(true)
		if err != nil {
			return nil, err
		}
	}

	cur := newCursor(batcher)
	loop := &train.Loop{
		Config:   cfg.Train,
		Params:   params,
		ZeroGrad: m.ZeroGrad,
		Step: m.LogMoE(func(ctx context.Context, step, micro int) (train.Metrics, error) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			met, err := tr.step(cur.next(), uint64(step*cfg.Train.GradAccum+micro), cfg.LoRA.Dropout > 0)
			if err == nil && cfg.afterStep != nil {
				cfg.afterStep(step, micro)
			}
			return met, err
		}),
		Hooks: train.Hooks{
			State:   cur.marshal,
			Restore: cur.restore,
			Epoch:   cur.progress,
			// Another rank's micro-batch: take it off the cursor unseen.
			Skip: func(step, micro int) error { cur.next(); return nil },
			SaveFiles: func(dir string) error {
				return m.SaveAdapter(finetune.AdapterDir(dir), TaskType)
			},
		},
	}
	if len(evalBatches) > 0 {
		loop.Eval = func(ctx context.Context) (train.Metrics, error) {
			loss, err := tr.evaluate(ctx, evalBatches)
			if err != nil {
				return nil, err
			}
			res.EvalLoss, res.EvalPerplexity = loss, math.Exp(loss)
			return train.Metrics{"loss": loss, "perplexity": math.Exp(loss)}, nil
		}
	}
	if resuming {
		if err := loop.Resume(); err != nil {
			return nil, fmt.Errorf("sft: %w", err)
		}
	}
	if err := loop.Run(ctx); err != nil {
		return nil, err
	}
	if len(evalBatches) > 0 && math.IsNaN(res.EvalLoss) {
		// A resumed run that had already finished evaluates once here.
		if res.EvalLoss, err = tr.evaluate(ctx, evalBatches); err != nil {
			return nil, err
		}
		res.EvalPerplexity = math.Exp(res.EvalLoss)
	}
	res.AdapterDir = finetune.AdapterDir(cfg.Out)
	err = atomicfile.ReplaceDir(res.AdapterDir, func(tmp string) error {
		if err := m.SaveAdapter(tmp, TaskType); err != nil {
			return err
		}
		return m.CopyTokenizer(tmp)
	})
	if err != nil {
		return nil, fmt.Errorf("sft: save adapter: %w", err)
	}
	if cfg.inspect != nil {
		cfg.inspect(m)
	}
	return res, nil
}

// loadRows gathers the training and held-out rows per Config's order of
// precedence.
func loadRows(cfg Config) (trainRows, evalRows []data.Instruction, err error) {
	trainRows = cfg.Rows
	if trainRows == nil {
		if trainRows, err = data.ReadInstructions(cfg.Data); err != nil {
			return nil, nil, err
		}
	}
	switch {
	case cfg.EvalRows != nil:
		evalRows = cfg.EvalRows
	case cfg.EvalData != "":
		if evalRows, err = data.ReadInstructions(cfg.EvalData); err != nil {
			return nil, nil, err
		}
	default:
		trainRows, evalRows = splitHeldOut(trainRows, cfg.EvalFraction, cfg.Train.Seed)
	}
	if len(trainRows) == 0 {
		return nil, nil, errors.New("no training rows")
	}
	return trainRows, evalRows, nil
}

// splitHeldOut moves round(fraction·n) rows, chosen by a shuffle seeded
// with seed, to the held-out set (at least one when fraction > 0 and there
// are two rows or more); both sets keep the dataset order.
func splitHeldOut(rows []data.Instruction, fraction float64, seed uint64) (trainRows, held []data.Instruction) {
	n := int(math.Round(fraction * float64(len(rows))))
	if fraction > 0 && n == 0 && len(rows) > 1 {
		n = 1
	}
	if n == 0 {
		return rows, nil
	}
	perm := rand.New(rand.NewPCG(seed, 0x5f7)).Perm(len(rows))
	out := make([]bool, len(rows))
	for _, i := range perm[:n] {
		out[i] = true
	}
	for i, r := range rows {
		if out[i] {
			held = append(held, r)
		} else {
			trainRows = append(trainRows, r)
		}
	}
	return trainRows, held
}

// batchOptions are the scoring batches of finetune.ScoringBatchOptions,
// with the configured buckets when given, shuffled by the training seed;
// packed into rows of MaxLen tokens with Packing.
func batchOptions(cfg Config, mc model.Config, pad int) (data.BatchOptions, error) {
	opts, err := finetune.ScoringBatchOptions(cfg.BatchSize, cfg.MaxLen, cfg.Truncation, mc, pad)
	if err != nil {
		return opts, err
	}
	if cfg.Buckets != nil {
		opts.Buckets = slices.Clone(cfg.Buckets)
	}
	if cfg.Packing {
		opts.Pack, opts.Buckets = true, nil
	}
	opts.Seed, opts.Shuffle = int64(cfg.Train.Seed), true
	return opts, opts.Validate()
}

func evalShapes(batches []data.Batch) []int {
	var out []int
	for _, b := range batches {
		if !slices.Contains(out, b.T) {
			out = append(out, b.T)
		}
	}
	slices.Sort(out)
	return out
}

// evalProgram names the forward-only programs of held-out scoring.
const evalProgram = "sft-eval"

// trainer holds the compiled programs, one per batch length: a training
// program (loss and adapter gradients) and a forward-only one for
// evaluation.
type trainer struct {
	m     *finetune.Model
	seed  uint64
	train map[int]*finetune.Program
	eval  map[int]*finetune.Program
}

// build compiles the training programs of trainShapes (packed ones with
// packed) and the evaluation programs of evalShapes, in ascending order,
// and returns every length. An evaluation shape that has an unpacked
// training program is compiled on its graph (finetune.Model.ForwardOf).
func (tr *trainer) build(B int, trainShapes, evalShapes []int, packed bool) ([]int, error) {
	tr.train, tr.eval = map[int]*finetune.Program{}, map[int]*finetune.Program{}
	program := tr.m.Program
	if packed {
		program = tr.m.PackedProgram
	}
	for _, T := range trainShapes {
		p, err := program("sft", B, T, true, finetune.TokenLoss)
		if err != nil {
			return nil, err
		}
		tr.train[T] = p
	}
	for _, T := range evalShapes {
		var p *finetune.Program
		var err error
		if t := tr.train[T]; t != nil && !packed {
			// Scored through the training graph of that shape: the same
			// operations and values, without a second set of activation
			// buffers.
			p, err = tr.m.ForwardOf(evalProgram, t)
		} else {
			p, err = tr.m.Program(evalProgram, B, T, false, finetune.TokenLoss)
		}
		if err != nil {
			return nil, err
		}
		tr.eval[T] = p
	}
	all := slices.Clone(trainShapes)
	for _, T := range evalShapes {
		if !slices.Contains(all, T) {
			all = append(all, T)
		}
	}
	slices.Sort(all)
	return all, nil
}

// step runs forward and backward on one micro-batch; draw is the index of
// the micro-batch in the whole run, which seeds its dropout masks.
func (tr *trainer) step(b data.Batch, draw uint64, dropout bool) (train.Metrics, error) {
	p := tr.train[b.T]
	if p == nil {
		return nil, fmt.Errorf("no program for batch length %d", b.T)
	}
	finetune.LoadBatch(p, b)
	if dropout {
		tr.m.Adapter.SeedDropout(tr.seed, draw)
		tr.m.Adapter.ResampleDropout()
	}
	if err := p.Run(); err != nil {
		return nil, err
	}
	tokens := 0
	for _, n := range b.Lengths {
		tokens += n
	}
	return train.Metrics{train.KeyLoss: float64(model.Value32(p.Loss)[0]), train.KeyTokens: float64(tokens)}, nil
}

// evaluate is the mean loss over every completion token of the held-out
// batches, with dropout off, on the evaluation programs build compiled.
func (tr *trainer) evaluate(ctx context.Context, batches []data.Batch) (float64, error) {
	for _, b := range batches {
		if tr.eval[b.T] == nil || b.B != tr.eval[b.T].Graph.B {
			return 0, fmt.Errorf("no evaluation program for %d×%d batches", b.B, b.T)
		}
	}
	return tr.m.MeanLoss(ctx, evalProgram, batches)
}
