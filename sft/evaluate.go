package sft

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
)

// EvalConfig names what Evaluate scores: a base model, optionally with an
// adapter, on an instructions dataset, encoded as SFT encodes its rows.
type EvalConfig struct {
	Base    string // base model directory
	Adapter string // PEFT adapter directory applied to the base ("" for none)
	Data    string // instructions dataset (.arrow)
	Max     int    // rows scored at most (0: all)

	Template   string // as Config.Template ("" for alpaca)
	BatchSize  int    // rows per forward pass (0: 8)
	MaxLen     int    // tokens per row at most (0: min(512, the model's positions))
	Truncation string // as Config.Truncation
}

// EvalResult is the mean loss of the completion tokens.
type EvalResult struct {
	Rows       int                   `json:"rows"`
	Tokens     int                   `json:"tokens"` // completion tokens scored
	Loss       float64               `json:"loss"`   // mean negative log-likelihood per completion token
	Perplexity float64               `json:"perplexity"`
	Truncation data.TruncationReport `json:"-"`
}

// Evaluate computes the mean completion-token loss of the model on the
// dataset, exactly as an SFT run scores its held-out rows.
func Evaluate(ctx context.Context, cfg EvalConfig) (*EvalResult, error) {
	if cfg.Base == "" || cfg.Data == "" {
		return nil, errors.New("sft eval: a base model directory and a dataset are needed")
	}
	if cfg.Template == "" {
		cfg.Template = TemplateAlpaca
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 8
	}
	if cfg.Truncation == "" {
		cfg.Truncation = data.TruncateKeepStart
	}
	m, err := finetune.Open(cfg.Base)
	if err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	if cfg.Adapter != "" {
		err = m.LoadAdapter(cfg.Adapter)
	} else {
		// The programs are built with an adapter; a disabled one leaves
		// the base model as it is.
		if err = m.NewAdapter(lora.DefaultConfig()); err == nil {
			m.Adapter.SetEnabled(false)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	enc, err := newEncoder(m.Tokenizer, cfg.Template, false)
	if err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	rows, err := data.ReadInstructions(cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	if cfg.Max > 0 && len(rows) > cfg.Max {
		rows = rows[:cfg.Max]
	}
	ex, err := enc.encodeAll(rows, cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	opts, err := batchOptions(Config{BatchSize: cfg.BatchSize, MaxLen: cfg.MaxLen, Truncation: cfg.Truncation}, m.Weights.Config, m.Tokenizer.PAD())
	if err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	opts.Shuffle = false
	batcher, report, err := data.NewBatcher(ex, opts)
	if err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	batches := batcher.Epoch(0)
	res := &EvalResult{Rows: len(rows), Truncation: report, Loss: math.NaN(), Perplexity: math.NaN()}
	for _, b := range batches {
		for _, w := range b.Weights {
			if w > 0 {
				res.Tokens++
			}
		}
	}
	if res.Tokens == 0 {
		return nil, fmt.Errorf("sft eval: %s: no completion token to score (%s)", cfg.Data, report)
	}
	tr := &trainer{m: m}
	if _, err := tr.build(cfg.BatchSize, nil, evalShapes(batches)); err != nil {
		return nil, fmt.Errorf("sft eval: %w", err)
	}
	if res.Loss, err = tr.evaluate(ctx, batches); err != nil {
		return nil, err
	}
	res.Perplexity = math.Exp(res.Loss)
	return res, nil
}
