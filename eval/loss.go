package eval

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// LossResult is the mean token loss of a model on a text or on the
// completions of an instructions dataset.
type LossResult struct {
	Loss       float64 `json:"loss"`           // mean negative log-likelihood per scored token (nats)
	Perplexity float64 `json:"perplexity"`     // exp(Loss)
	Tokens     int     `json:"tokens"`         // tokens scored: targets of the text, or completion tokens
	Rows       int     `json:"rows,omitempty"` // rows of the dataset scored (Data only)
	// Truncation is what fitting the rows to SeqLen did (Data only).
	Truncation data.TruncationReport `json:"-"`
}

// loadTextModel loads cfg.Model: a GGUF file with the tokenizer of its
// metadata, or a Hugging Face directory with its own tokenizer.json, else
// cfg.Tokenizer's.
func loadTextModel(cfg Config) (*model.Weights, *tokenizer.Tokenizer, error) {
	if mgguf.IsGGUF(cfg.Model) {
		if cfg.Tokenizer != "" {
			return nil, nil, fmt.Errorf("eval: %s: a GGUF file carries its tokenizer; %s does not apply", cfg.Model, KeyTokenizer)
		}
		w, tok, err := mgguf.Load(cfg.Model)
		if err != nil {
			return nil, nil, fmt.Errorf("eval: %w", err)
		}
		return w, tok, nil
	}
	w, err := hf.LoadModel(cfg.Model)
	if err != nil {
		return nil, nil, fmt.Errorf("eval: %w", err)
	}
	tokPath := cfg.Model
	if _, err := os.Stat(filepath.Join(cfg.Model, tokenizer.TokenizerFile)); err != nil {
		if cfg.Tokenizer == "" {
			return nil, nil, fmt.Errorf("eval: %s has no %s; give a tokenizer (%s)", cfg.Model, tokenizer.TokenizerFile, KeyTokenizer)
		}
		tokPath = cfg.Tokenizer
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, nil, fmt.Errorf("eval: %w", err)
	}
	return w, tok, nil
}

// textLoss scores cfg.Model on the text cfg.Text: documents encoded with
// special tokens, ended with EOS and concatenated; the stream is scored in
// windows of T tokens that overlap by one, so every token after the first
// is predicted once with up to T−1 tokens of context. The model
// directory's own tokenizer is used when present.
func textLoss(ctx context.Context, cfg Config) (*LossResult, error) {
	w, tok, err := loadTextModel(cfg)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > w.Config.VocabSize {
		return nil, fmt.Errorf("eval: the tokenizer has %d tokens, the model only %d", tok.VocabSize(), w.Config.VocabSize)
	}
	docs, err := finetune.ReadCorpus(cfg.Text)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	T := cfg.SeqLen
	if T == 0 {
		T = min(256, w.Config.MaxPositionEmbeddings)
	}
	if T < 2 || (w.Config.MaxPositionEmbeddings > 0 && T > w.Config.MaxPositionEmbeddings) {
		return nil, fmt.Errorf("eval: %s %d must be in [2, %d], the model's positions", KeySeqLen, T, w.Config.MaxPositionEmbeddings)
	}
	s := finetune.Windows{Stream: finetune.Tokenize(tok, docs), T: T}
	if s.Len() == 0 {
		return nil, fmt.Errorf("eval: %s holds fewer than two tokens", cfg.Text)
	}
	loss, n, err := finetune.TextLoss(ctx, w, s, cfg.BatchSize, int32(tok.PAD()))
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	return &LossResult{Loss: loss, Perplexity: math.Exp(loss), Tokens: n}, nil
}

// completionLoss scores cfg.Model, with cfg.Adapter when given, on the
// completion tokens of the instructions dataset cfg.Data, rendered and
// batched as SFT scores its held-out rows.
func completionLoss(ctx context.Context, cfg Config) (*LossResult, error) {
	m, err := finetune.Open(cfg.Model)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if cfg.Adapter != "" {
		if err := m.LoadAdapter(cfg.Adapter); err != nil {
			return nil, fmt.Errorf("eval: %w", err)
		}
	}
	enc, err := finetune.NewInstructionEncoder(m.Tokenizer, cfg.Template, false)
	if err != nil {
		return nil, fmt.Errorf("eval: %s: %w", KeyTemplate, err)
	}
	rows, err := data.ReadInstructions(cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if cfg.MaxRows > 0 && len(rows) > cfg.MaxRows {
		rows = rows[:cfg.MaxRows]
	}
	ex, err := enc.EncodeAll(rows, cfg.Data)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	if pos := m.Weights.Config.MaxPositionEmbeddings; pos > 0 && cfg.SeqLen > pos {
		return nil, fmt.Errorf("eval: %s %d exceeds the model's %d positions", KeySeqLen, cfg.SeqLen, pos)
	}
	opts, err := finetune.ScoringBatchOptions(cfg.BatchSize, cfg.SeqLen, data.TruncateKeepStart, m.Weights.Config, m.Tokenizer.PAD())
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	batcher, report, err := data.NewBatcher(ex, opts)
	if err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	batches := batcher.Epoch(0)
	res := &LossResult{Rows: len(rows), Truncation: report}
	for _, b := range batches {
		for _, w := range b.Weights {
			if w > 0 {
				res.Tokens++
			}
		}
	}
	if res.Tokens == 0 {
		return nil, fmt.Errorf("eval: %s: no completion token to score (%s)", cfg.Data, report)
	}
	if res.Loss, err = m.MeanLoss(ctx, "eval", batches); err != nil {
		return nil, fmt.Errorf("eval: %w", err)
	}
	res.Perplexity = math.Exp(res.Loss)
	return res, nil
}
