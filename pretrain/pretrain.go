// Package pretrain trains a LLaMA-architecture causal language model from
// scratch on a text corpus (every parameter trainable, next-token
// cross-entropy on packed documents; the corpus, its token stream and its
// windows are finetune's). It is how the embedded default base model is
// made.
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package pretrain

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
	"gorgonia.org/gorgonia"
)

// Special tokens of a tokenizer trained here (the BPE trainer makes them
// the BOS, EOS and PAD tokens).
var Specials = []string{"<|bos|>", "<|eos|>", "<|pad|>"}

// Keys of Config: the flags of `gotune pretrain` and the keys under
// `pretrain:` in a --config file. The loop's settings have train's keys.
const (
	KeyCorpus       = "corpus"
	KeyPreset       = "preset"
	KeyTokenizer    = "tokenizer"
	KeyVocabSize    = "vocab-size"
	KeySeqLen       = "seq-len"
	KeyBatchSize    = "batch-size"
	KeyHeldOut      = "held-out"
	KeyEvalWindows  = "eval-windows"
	KeyOut          = "out"
	KeyResume       = "resume"
	KeyModelSeed    = "model-seed"
	KeyAttention    = "attention"
	KeyGAUChunk     = "gau-chunk"
	KeyMaxPositions = "max-positions"
)

// Config is a pretraining run.
type Config struct {
	Corpus    string        // corpus file (see finetune.ReadCorpus); ignored when Docs is set
	Docs      []string      // documents given directly
	Preset    string        // model size (model.Preset, model.PresetNames)
	Model     *model.Config // an architecture to use instead of Preset (its vocabulary becomes the tokenizer's)
	Tokenizer string        // tokenizer.json or a directory holding one; "" trains a byte-level BPE on the corpus
	VocabSize int           // vocabulary of a trained tokenizer (0: the preset's)
	SeqLen    int           // T, tokens per sequence
	BatchSize int           // B, sequences per micro-batch
	HeldOut   float64       // fraction of documents held out for evaluation
	EvalMax   int           // held-out windows evaluated at most (0: all)
	Out       string        // model directory written (metrics.jsonl and state/ go there too)
	Resume    bool          // continue from the checkpoint in Out
	ModelSeed uint64        // initial weights
	Attention string        // gotune's attention option for a preset: "" or softmax, linear, gau (model.WithAttention)
	GAUChunk  int           // GAU's chunk length C (0: model.WithAttention's 256); Attention gau only
	// MaxPositions replaces the preset's max_position_embeddings (0: the
	// preset's own), so that a preset trains on windows longer than it was
	// declared for; an explicit Model sets its own.
	MaxPositions int
	Train        train.Config
}

// DefaultConfig is the embedded default: the tiny preset on 128-token
// sequences, batch 16, 600 updates at a peak learning rate of 3·10⁻³ with
// 30 warmup updates and cosine decay to a tenth, weight decay 0.1.
func DefaultConfig() Config {
	tc := train.DefaultConfig()
	tc.Steps, tc.LR, tc.WarmupSteps, tc.MinLRRatio, tc.WeightDecay = 600, 3e-3, 30, 0.1, 0.1
	tc.Beta2 = 0.95
	tc.EvalEvery, tc.CheckpointEvery, tc.LogEvery = 100, 100, 10
	return Config{
		Preset: "tiny", SeqLen: 128, BatchSize: 16, HeldOut: 0.05, EvalMax: 64,
		ModelSeed: 1, Train: tc,
	}
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Out == "":
		return fmt.Errorf("pretrain: %s (the output model directory) is not set", KeyOut)
	case len(c.Docs) == 0 && c.Corpus == "":
		return fmt.Errorf("pretrain: %s (a corpus file) is not set and no documents are given", KeyCorpus)
	case c.VocabSize < 0:
		return fmt.Errorf("pretrain: %s must be ≥ 0 (0: the preset's), got %d", KeyVocabSize, c.VocabSize)
	case c.SeqLen < 2:
		return fmt.Errorf("pretrain: %s must be at least 2, got %d", KeySeqLen, c.SeqLen)
	case c.BatchSize <= 0:
		return fmt.Errorf("pretrain: %s must be positive, got %d", KeyBatchSize, c.BatchSize)
	case !(c.HeldOut >= 0 && c.HeldOut < 1):
		return fmt.Errorf("pretrain: %s must be in [0, 1), got %v", KeyHeldOut, c.HeldOut)
	case c.EvalMax < 0:
		return fmt.Errorf("pretrain: %s must be ≥ 0 (0: all), got %d", KeyEvalWindows, c.EvalMax)
	}
	if c.Model == nil {
		pc, err := model.Preset(c.Preset, 0)
		if err != nil {
			return fmt.Errorf("pretrain: %s: %w", KeyPreset, err)
		}
		if _, err := model.WithAttention(pc, c.Attention); err != nil {
			return fmt.Errorf("pretrain: %s: %w", KeyAttention, err)
		}
	} else if c.Attention != "" {
		return fmt.Errorf("pretrain: %s applies to a preset; the given architecture sets gotune_attention itself", KeyAttention)
	}
	if c.MaxPositions < 0 {
		return fmt.Errorf("pretrain: %s must be ≥ 0 (0: the preset's), got %d", KeyMaxPositions, c.MaxPositions)
	}
	if c.MaxPositions > 0 && c.Model != nil {
		return fmt.Errorf("pretrain: %s applies to a preset; the given architecture sets max_position_embeddings itself", KeyMaxPositions)
	}
	if c.GAUChunk < 0 || c.GAUChunk > 0 && c.Attention != model.AttentionGAU {
		return fmt.Errorf("pretrain: %s %d: want ≥ 0, and only with %s %s", KeyGAUChunk, c.GAUChunk, KeyAttention, model.AttentionGAU)
	}
	t := c.Train
	t.Dir = c.Out
	if err := t.Validate(); err != nil {
		return fmt.Errorf("pretrain: %w", err)
	}
	return nil
}

// Result summarises a finished run.
type Result struct {
	Params        int     // model parameters
	TrainTokens   int     // tokens in the training stream
	HeldOutTokens int     // targets in the held-out evaluation
	EvalLoss      float64 // final held-out mean token loss (NaN without held-out data)
}

// Run pretrains a model and writes it to cfg.Out as a Hugging Face model
// directory (config.json, model.safetensors, generation_config.json,
// tokenizer.json, tokenizer_config.json).
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Under mpirun only rank 0 writes to Out (see train.Comm).
	out, cleanup, err := train.RankDir(cfg.Out)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	defer cleanup()
	cfg.Out = out
	cfg.Train.Dir = cfg.Out
	resuming := cfg.Resume && train.HasCheckpoint(cfg.Out)
	if !resuming && train.HasCheckpoint(cfg.Out) {
		return nil, fmt.Errorf("pretrain: %s holds a training checkpoint; resume it or choose another output directory", cfg.Out)
	}
	docs := cfg.Docs
	if len(docs) == 0 {
		var err error
		if docs, err = finetune.ReadCorpus(cfg.Corpus); err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}
	trainDocs, heldDocs := SplitHeldOut(docs, cfg.HeldOut)
	if len(trainDocs) == 0 {
		return nil, errors.New("pretrain: every document was held out")
	}

	// The tokenizer: the run's own when resuming, else the given one, else
	// one trained on the training documents. Under mpirun rank 0 alone
	// makes it (only its Out holds the run's own) and sends it to the
	// others.
	var tok *tokenizer.Tokenizer
	comm := train.World()
	switch {
	case comm.Rank() != 0:
	case resuming:
		tok, err = tokenizer.Load(cfg.Out)
	case cfg.Tokenizer != "":
		tok, err = tokenizer.Load(cfg.Tokenizer)
	default:
		vocab := cfg.VocabSize
		if vocab == 0 && cfg.Model != nil {
			vocab = cfg.Model.VocabSize
		}
		if vocab == 0 {
			pc, perr := model.Preset(cfg.Preset, 0)
			if perr != nil {
				return nil, fmt.Errorf("pretrain: %w", perr)
			}
			vocab = pc.VocabSize
		}
		tok, err = tokenizer.Train(trainDocs, vocab, Specials)
	}
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	if comm.Size() > 1 {
		if tok, err = shareTokenizer(comm, tok); err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}

	var mc model.Config
	if cfg.Model != nil {
		mc = *cfg.Model
		mc.VocabSize = tok.VocabSize()
	} else if mc, err = model.Preset(cfg.Preset, tok.VocabSize()); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	} else if mc, err = model.WithAttention(mc, cfg.Attention); err != nil {
		return nil, fmt.Errorf("pretrain: %s: %w", KeyAttention, err)
	} else {
		if cfg.GAUChunk > 0 {
			mc.GAUChunk = cfg.GAUChunk
		}
		if cfg.MaxPositions > 0 {
			mc.MaxPositionEmbeddings = cfg.MaxPositions
		}
	}
	if cfg.SeqLen > mc.MaxPositionEmbeddings {
		return nil, fmt.Errorf("pretrain: %s %d exceeds the model's %d positions (%s sets a preset's)", KeySeqLen, cfg.SeqLen, mc.MaxPositionEmbeddings, KeyMaxPositions)
	}
	if id := tok.BOS(); id >= 0 {
		mc.BOSTokenID = id
	}
	if id := tok.EOS(); id >= 0 {
		mc.EOSTokenID = id
	}
	w, err := model.NewRandom(mc, cfg.ModelSeed)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	if !resuming {
		if err := tok.Save(cfg.Out); err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}

	stream := finetune.Windows{Stream: finetune.Tokenize(tok, trainDocs), T: cfg.SeqLen}
	if stream.Full() == 0 {
		return nil, fmt.Errorf("pretrain: the training documents hold %d tokens, fewer than one sequence of %d", len(stream.Stream), cfg.SeqLen+1)
	}
	held := finetune.Windows{Stream: finetune.Tokenize(tok, heldDocs), T: cfg.SeqLen}

	if err := finetune.CheckMoEAuxLoss(&mc, cfg.Train.MoEAuxLossAlpha); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	tr, err := newTrainer(w, cfg.BatchSize, cfg.SeqLen, int32(tok.PAD()), cfg.Train.MoEAuxLossAlpha, cfg.Train.GradientCheckpointing)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	order := &Order{Seed: cfg.Train.Seed, N: stream.Full()}
	step := train.StepFunc(func(ctx context.Context, step, micro int) (train.Metrics, error) {
		return tr.step(stream, order)
	})
	if finetune.HasMoE(&mc) { // a dense model's steps need no expert bookkeeping
		step = finetune.LogMoE(step, func() []finetune.TrainGraph { return []finetune.TrainGraph{{Graph: tr.g, Balance: tr.balance}} })
	}
	loop := &train.Loop{
		Config:   cfg.Train,
		Params:   tr.params(),
		ZeroGrad: tr.prog.ZeroGrad,
		Step:     step,
		Hooks: train.Hooks{
			State:   order.MarshalState,
			Restore: order.RestoreState,
			Epoch:   order.Progress,
			// Another rank's micro-batch: take its windows off the order unseen.
			Skip: func(step, micro int) error {
				for range tr.B {
					order.Next()
				}
				return nil
			},
			// Each checkpoint is also a loadable model directory.
			SaveFiles: func(dir string) error { return saveModel(dir, w, tok) },
		},
	}
	res := &Result{Params: w.NumParams(), TrainTokens: len(stream.Stream), EvalLoss: math.NaN()}
	if held.Len() > 0 {
		loop.Eval = func(ctx context.Context) (train.Metrics, error) {
			loss, n, err := tr.evaluate(ctx, held, cfg.EvalMax)
			if err != nil {
				return nil, err
			}
			res.EvalLoss, res.HeldOutTokens = loss, n
			return train.Metrics{"loss": loss, "perplexity": math.Exp(loss)}, nil
		}
	}
	if resuming {
		if err := loop.Resume(); err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}
	if err := loop.Run(ctx); err != nil {
		return nil, err
	}
	if err := saveModel(cfg.Out, w, tok); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	return res, nil
}

// saveModel writes the weights and the tokenizer as one model directory.
func saveModel(dir string, w *model.Weights, tok *tokenizer.Tokenizer) error {
	if err := hf.SaveModel(dir, w, hf.SaveOptions{}); err != nil {
		return err
	}
	return tok.Save(dir)
}

// trainer holds the model graph with a training program (mean token
// cross-entropy and its gradient for every parameter) and a forward-only
// program for evaluation, plus their host input buffers.
type trainer struct {
	w       *model.Weights
	g       *model.Graph
	loss    *gorgonia.Node
	balance *gorgonia.Node // the expert balance term added to loss for training; nil when off
	prog    *model.Program
	eval    *model.Program
	weights []float32 // per-token loss weights bound to the graph
	nodes   []*gorgonia.Node
	pad     int32
	B, T    int
}

func newTrainer(w *model.Weights, B, T int, pad int32, moeAlpha float64, checkpoint bool) (*trainer, error) {
	g, err := model.Build(w, model.GraphOptions{B: B, T: T, Trainable: func(string) bool { return true }, Checkpoint: checkpoint})
	if err != nil {
		return nil, err
	}
	loss, _, err := finetune.TokenLoss(g, nil)
	if err != nil {
		return nil, err
	}
	tr := &trainer{w: w, g: g, loss: loss, weights: g.Vector(finetune.WeightsInput), pad: pad, B: B, T: T}
	for _, n := range w.Named() {
		node, ok := g.Params[n.Name]
		if !ok {
			return nil, fmt.Errorf("graph has no node for %s", n.Name)
		}
		tr.nodes = append(tr.nodes, node)
	}
	total, balance, err := finetune.WithBalanceLoss(g, loss, moeAlpha)
	if err != nil {
		return nil, err
	}
	tr.balance = balance
	if tr.prog, err = g.Compile(total, tr.nodes, loss); err != nil {
		return nil, err
	}
	if tr.eval, err = g.Compile(nil, nil, loss); err != nil {
		return nil, err
	}
	return tr, nil
}

// params lists every weight as a trainable parameter; norm weights are
// exempt from weight decay, as in most LLaMA training recipes.
func (tr *trainer) params() []train.Param {
	var ps []train.Param
	for i, n := range tr.w.Named() {
		node := tr.nodes[i]
		ps = append(ps, train.Param{
			Name:    n.Name,
			Shape:   []int(n.Tensor.Shape()),
			Value:   model.F32(n.Tensor),
			Grad:    func() []float32 { return tr.prog.Grad(node) },
			NoDecay: n.Tensor.Dims() == 1,
		})
	}
	return ps
}

// step runs forward and backward on the next B windows of the order.
func (tr *trainer) step(s finetune.Windows, o *Order) (train.Metrics, error) {
	for r := range tr.B {
		s.Fill(o.Next(), r, tr.g.In.Tokens, tr.g.In.Targets, tr.weights, tr.pad)
	}
	if err := tr.prog.Run(); err != nil {
		return nil, err
	}
	return train.Metrics{train.KeyLoss: float64(model.Value32(tr.loss)[0]), train.KeyTokens: float64(tr.B * tr.T)}, nil
}

// evaluate returns the mean token loss over the first max windows of s
// (all when max is 0) and the number of targets scored.
func (tr *trainer) evaluate(ctx context.Context, s finetune.Windows, maxWindows int) (float64, int, error) {
	return finetune.WindowLoss(ctx, tr.g, tr.eval.Run, tr.loss, s, maxWindows, tr.pad)
}

// shareTokenizer gives every rank rank 0's tokenizer: its tokenizer.json
// and tokenizer_config.json as Save writes them, broadcast.
func shareTokenizer(comm train.Comm, tok *tokenizer.Tokenizer) (*tokenizer.Tokenizer, error) {
	var files [2][]byte
	if comm.Rank() == 0 {
		dir, err := os.MkdirTemp("", "gotune-tokenizer-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		if err := tok.Save(dir); err != nil {
			return nil, err
		}
		for i, name := range []string{tokenizer.TokenizerFile, tokenizer.ConfigFile} {
			if files[i], err = os.ReadFile(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
		}
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(files); err != nil {
		return nil, fmt.Errorf("rank 0's tokenizer: %w", err)
	}
	raw, err := train.BcastFromRoot(comm, buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("rank 0's tokenizer: %w", err)
	}
	if comm.Rank() == 0 {
		return tok, nil
	}
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&files); err != nil {
		return nil, fmt.Errorf("rank %d: rank 0's tokenizer: %w", comm.Rank(), err)
	}
	t, err := tokenizer.Parse(files[0], files[1])
	if err != nil {
		return nil, fmt.Errorf("rank %d: rank 0's tokenizer: %w", comm.Rank(), err)
	}
	return t, nil
}
