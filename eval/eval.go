// Package eval scores a model — a base model directory, with or without
// LoRA adapters — on a dataset, for `gotune eval` and for the pipeline:
//
//   - the mean token loss and perplexity of a text (Run with Config.Text):
//     the measure of pretraining;
//   - the mean loss of the completion tokens of an instructions dataset
//     (Run with Config.Data), rendered as SFT renders its rows: SFT's
//     held-out loss;
//   - exact match of the answers the model writes to tasks with known
//     answers, greedy and sampled, overall and per task family
//     (ExactMatch, ScoreModel);
//   - the paired comparison of two models on the same tasks (Compare,
//     with McNemar's exact test) and the standard error of a rate
//     (StdErr).
//
// Under mpirun the ranks share the windows, rows and tasks and gather the
// results (train.ShareWork): every rank gets one process's figures, and
// the command prints them on rank 0.
//
// May import: finetune, lora, train, model (and model/generate, model/hf),
// tokenizer, data, data/verify.
package eval

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gotune/gotune/finetune"
)

// Keys of Config: the flags of `gotune eval` and the keys under `eval:` in
// a --config file.
const (
	KeyModel     = "model"
	KeyText      = "text"
	KeyData      = "data"
	KeyAdapter   = "adapter"
	KeyTemplate  = "template"
	KeyMaxRows   = "max-rows"
	KeyTokenizer = "tokenizer"
	KeySeqLen    = "seq-len"
	KeyBatchSize = "batch-size"
)

// Config is one loss evaluation: a model on a text (Text) or on an
// instructions dataset (Data), exactly one of the two.
type Config struct {
	// Model is the model directory (config.json, model.safetensors and,
	// unless Tokenizer is given, tokenizer.json).
	Model string
	// Text is a text file (finetune.ReadCorpus): its documents are encoded
	// with special tokens, ended with EOS and packed into one stream, and
	// every token after the first is predicted once, in windows of SeqLen
	// tokens.
	Text string
	// Data is an instructions dataset (.arrow): rows are rendered with
	// Template as SFT renders them, and the loss is the mean over their
	// completion tokens.
	Data string
	// Adapter is a PEFT LoRA adapter applied to the model (with Data only).
	Adapter string
	// Template renders Data's rows: auto (the tokenizer's chat_template,
	// else alpaca, as SFT's default), alpaca, chatml, llama3 or jinja
	// (finetune.InstructionTemplates).
	Template string
	// MaxRows caps the rows of Data scored (0: all).
	MaxRows int
	// Tokenizer is used when the model directory has none (with Text).
	Tokenizer string
	// SeqLen is the window length with Text (0: min(256, the model's
	// positions)), the most tokens of a row with Data (0: min(512, the
	// model's positions)).
	SeqLen int
	// BatchSize is the windows or rows per forward pass.
	BatchSize int
}

// DefaultConfig renders rows as SFT does by default (the tokenizer's chat
// template, else Alpaca's) and scores 8 windows or rows per forward pass.
func DefaultConfig() Config {
	return Config{Template: finetune.TemplateAuto, BatchSize: 8}
}

// Validate reports the first invalid field, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Model == "":
		return fmt.Errorf("eval: %s: no model directory given", KeyModel)
	case c.Text == "" && c.Data == "":
		return fmt.Errorf("eval: give %s or %s, what to score the model on", KeyText, KeyData)
	case c.Text != "" && c.Data != "":
		return fmt.Errorf("eval: give %s or %s, not both", KeyText, KeyData)
	case c.Adapter != "" && c.Data == "":
		return fmt.Errorf("eval: %s applies to %s only", KeyAdapter, KeyData)
	case c.MaxRows != 0 && c.Data == "":
		return fmt.Errorf("eval: %s applies to %s only", KeyMaxRows, KeyData)
	case c.Tokenizer != "" && c.Text == "":
		return fmt.Errorf("eval: %s applies to %s only (a dataset is rendered with the model's own tokenizer)", KeyTokenizer, KeyText)
	case !slices.Contains(finetune.InstructionTemplates, c.Template):
		return fmt.Errorf("eval: %s %q (want one of %s)", KeyTemplate, c.Template, strings.Join(finetune.InstructionTemplates, ", "))
	case c.MaxRows < 0:
		return fmt.Errorf("eval: %s must be ≥ 0 (0: all), got %d", KeyMaxRows, c.MaxRows)
	case c.SeqLen < 0 || c.SeqLen == 1:
		return fmt.Errorf("eval: %s must be at least 2 (0: the default), got %d", KeySeqLen, c.SeqLen)
	case c.BatchSize <= 0:
		return fmt.Errorf("eval: %s must be positive, got %d", KeyBatchSize, c.BatchSize)
	}
	return nil
}

// Run validates cfg and scores the model on cfg.Text or cfg.Data.
func Run(ctx context.Context, cfg Config) (*LossResult, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Text != "" {
		return textLoss(ctx, cfg)
	}
	return completionLoss(ctx, cfg)
}
