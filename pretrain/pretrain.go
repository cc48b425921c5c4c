// Package pretrain trains a LLaMA-architecture causal language model from
// scratch on a text corpus (every parameter trainable, next-token
// cross-entropy on packed documents), and measures the mean token loss and
// perplexity of any model directory on a text. It is how the embedded
// default base model is made.
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package pretrain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
	"gorgonia.org/gorgonia"
)

// Special tokens of a tokenizer trained here (the BPE trainer makes them
// the BOS, EOS and PAD tokens).
var Specials = []string{"<|bos|>", "<|eos|>", "<|pad|>"}

// Config is a pretraining run.
type Config struct {
	Corpus    string        // corpus file (see ReadCorpus); ignored when Docs is set
	Docs      []string      // documents given directly
	Preset    string        // model size (model.Preset): tiny, stories15M, small
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
	Train     train.Config
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
	if cfg.Out == "" {
		return nil, errors.New("pretrain: no output directory")
	}
	if cfg.SeqLen < 2 || cfg.BatchSize < 1 {
		return nil, fmt.Errorf("pretrain: sequence length %d and batch size %d must be at least 2 and 1", cfg.SeqLen, cfg.BatchSize)
	}
	cfg.Train.Dir = cfg.Out
	if err := cfg.Train.Validate(); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	resuming := cfg.Resume && train.HasCheckpoint(cfg.Out)
	if !resuming && train.HasCheckpoint(cfg.Out) {
		return nil, fmt.Errorf("pretrain: %s holds a training checkpoint; resume it or choose another output directory", cfg.Out)
	}
	docs := cfg.Docs
	if len(docs) == 0 {
		if cfg.Corpus == "" {
			return nil, errors.New("pretrain: no corpus")
		}
		var err error
		if docs, err = ReadCorpus(cfg.Corpus); err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}
	trainDocs, heldDocs := SplitHeldOut(docs, cfg.HeldOut)
	if len(trainDocs) == 0 {
		return nil, errors.New("pretrain: every document was held out")
	}

	// The tokenizer: the run's own when resuming, else the given one, else
	// one trained on the training documents.
	var tok *tokenizer.Tokenizer
	var err error
	switch {
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

	var mc model.Config
	if cfg.Model != nil {
		mc = *cfg.Model
		mc.VocabSize = tok.VocabSize()
	} else if mc, err = model.Preset(cfg.Preset, tok.VocabSize()); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	if cfg.SeqLen > mc.MaxPositionEmbeddings {
		return nil, fmt.Errorf("pretrain: sequence length %d exceeds the model's %d positions", cfg.SeqLen, mc.MaxPositionEmbeddings)
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

	stream := Windows{Stream: Tokenize(tok, trainDocs), T: cfg.SeqLen}
	if stream.Full() == 0 {
		return nil, fmt.Errorf("pretrain: the training documents hold %d tokens, fewer than one sequence of %d", len(stream.Stream), cfg.SeqLen+1)
	}
	held := Windows{Stream: Tokenize(tok, heldDocs), T: cfg.SeqLen}

	tr, err := newTrainer(w, cfg.BatchSize, cfg.SeqLen, int32(tok.PAD()))
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	order := &Order{Seed: cfg.Train.Seed, N: stream.Full()}
	loop := &train.Loop{
		Config:   cfg.Train,
		Params:   tr.params(),
		ZeroGrad: tr.prog.ZeroGrad,
		Step: func(ctx context.Context, step, micro int) (train.Metrics, error) {
			return tr.step(stream, order)
		},
		Hooks: train.Hooks{
			State:   order.MarshalState,
			Restore: order.RestoreState,
			Epoch:   order.Progress,
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
	prog    *model.Program
	eval    *model.Program
	weights []float32 // per-token loss weights bound to the graph
	nodes   []*gorgonia.Node
	pad     int32
	B, T    int
}

func newTrainer(w *model.Weights, B, T int, pad int32) (*trainer, error) {
	g, err := model.Build(w, model.GraphOptions{B: B, T: T, Trainable: func(string) bool { return true }})
	if err != nil {
		return nil, err
	}
	wn := g.InputVector("weights", B*T)
	loss := g.MeanNLL(wn)
	tr := &trainer{w: w, g: g, loss: loss, weights: g.Vector("weights"), pad: pad, B: B, T: T}
	for _, n := range w.Named() {
		node, ok := g.Params[n.Name]
		if !ok {
			return nil, fmt.Errorf("graph has no node for %s", n.Name)
		}
		tr.nodes = append(tr.nodes, node)
	}
	if tr.prog, err = g.Compile(loss, tr.nodes, loss); err != nil {
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
func (tr *trainer) step(s Windows, o *Order) (train.Metrics, error) {
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
func (tr *trainer) evaluate(ctx context.Context, s Windows, maxWindows int) (float64, int, error) {
	n := s.Len()
	if maxWindows > 0 {
		n = min(n, maxWindows)
	}
	var sum float64
	var count int
	for k := 0; k < n; k += tr.B {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}
		batch := 0
		for r := range tr.B {
			if k+r < n {
				batch += s.Fill(k+r, r, tr.g.In.Tokens, tr.g.In.Targets, tr.weights, tr.pad)
			} else {
				s.Fill(0, r, tr.g.In.Tokens, tr.g.In.Targets, tr.weights, tr.pad)
				clear(tr.weights[r*tr.T : (r+1)*tr.T])
			}
		}
		if err := tr.eval.Run(); err != nil {
			return 0, 0, err
		}
		// MeanNLL is the mean over the batch's weighted tokens.
		sum += float64(model.Value32(tr.loss)[0]) * float64(batch)
		count += batch
	}
	if count == 0 {
		return math.NaN(), 0, nil
	}
	return sum / float64(count), count, nil
}

// EvalResult is the figure `gotune eval` prints.
type EvalResult struct {
	Loss       float64 `json:"loss"`       // mean next-token negative log-likelihood (nats)
	Perplexity float64 `json:"perplexity"` // exp(loss)
	Tokens     int     `json:"tokens"`     // targets scored
}

// EvalOptions control Evaluate.
type EvalOptions struct {
	Tokenizer string // tokenizer to use when the model directory has none
	SeqLen    int    // window length T (0: min(256, max_position_embeddings))
	BatchSize int    // windows per forward pass (0: 8)
}

// Evaluate computes the mean token loss and perplexity of the model in dir
// on a text file (read as ReadCorpus does). Documents are encoded with
// special tokens, ended with EOS and concatenated; the stream is scored in
// windows of T tokens that overlap by one, so every token after the first
// is predicted once with up to T−1 tokens of context. The model
// directory's own tokenizer is used when present.
func Evaluate(ctx context.Context, dir, textFile string, opt EvalOptions) (*EvalResult, error) {
	var w *model.Weights
	var tok *tokenizer.Tokenizer
	var err error
	if mgguf.IsGGUF(dir) {
		// A GGUF file carries its tokenizer.
		w, tok, err = mgguf.Load(dir)
	} else {
		w, tok, err = loadModelDir(dir, opt.Tokenizer)
	}
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > w.Config.VocabSize {
		return nil, fmt.Errorf("eval: the tokenizer has %d tokens, the model only %d", tok.VocabSize(), w.Config.VocabSize)
	}
	docs, err := ReadCorpus(textFile)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	T, B := opt.SeqLen, opt.BatchSize
	if T == 0 {
		T = min(256, w.Config.MaxPositionEmbeddings)
	}
	if B == 0 {
		B = 8
	}
	if T < 2 || (w.Config.MaxPositionEmbeddings > 0 && T > w.Config.MaxPositionEmbeddings) {
		return nil, fmt.Errorf("eval: window length %d must be in [2, %d]", T, w.Config.MaxPositionEmbeddings)
	}
	s := Windows{Stream: Tokenize(tok, docs), T: T}
	if s.Len() == 0 {
		return nil, fmt.Errorf("eval: %s holds fewer than two tokens", textFile)
	}
	g, err := model.Build(w, model.GraphOptions{B: B, T: T})
	if err != nil {
		return nil, err
	}
	wn := g.InputVector("weights", B*T)
	loss := g.MeanNLL(wn)
	prog, err := g.Compile(nil, nil, loss)
	if err != nil {
		return nil, err
	}
	tr := &trainer{w: w, g: g, loss: loss, eval: prog, weights: g.Vector("weights"), pad: int32(tok.PAD()), B: B, T: T}
	mean, n, err := tr.evaluate(ctx, s, 0)
	if err != nil {
		return nil, err
	}
	return &EvalResult{Loss: mean, Perplexity: math.Exp(mean), Tokens: n}, nil
}

// loadModelDir loads a Hugging Face model directory and its tokenizer, or
// the tokenizer at tokPath when the directory has none.
func loadModelDir(dir, tokPath string) (*model.Weights, *tokenizer.Tokenizer, error) {
	w, err := hf.LoadModel(dir)
	if err != nil {
		return nil, nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, tokenizer.TokenizerFile)); err == nil {
		tokPath = dir
	} else if tokPath == "" {
		return nil, nil, fmt.Errorf("eval: %s has no %s; give a tokenizer", dir, tokenizer.TokenizerFile)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, nil, err
	}
	return w, tok, nil
}
