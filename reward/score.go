package reward

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/tokenizer"
)

// ScoreConfig is a `gotune reward score` run.
type ScoreConfig struct {
	Base       string // base model directory
	SFTAdapter string // SFT adapter the reward model was trained on ("" for none)
	Adapter    string // reward adapter directory (Run's <out>/adapter)
	Data       string // dataset to score
	Out        string // dataset written (may equal Data)
	BatchSize  int    // sequences per forward pass
	MaxLength  int    // tokens per sequence at most (0: the model's positions); longer ones keep their end
}

// ScoreResult summarises a scoring run.
type ScoreResult struct {
	Kind      data.Kind
	Rows      int
	Columns   []string // columns added or replaced
	Truncated int      // sequences cut to MaxLength (their first tokens dropped)
	Mean      float64  // mean of every score written
}

// Score adds reward-model scores to a dataset: an instructions dataset
// gets a "reward" column, the score of the output as the completion of the
// Alpaca-formatted instruction and input; a preferences dataset gets
// "score_chosen" and "score_rejected". A prompts dataset has no completion
// to score and is refused.
func Score(ctx context.Context, cfg ScoreConfig) (ScoreResult, error) {
	if cfg.Base == "" || cfg.Adapter == "" || cfg.Data == "" || cfg.Out == "" {
		return ScoreResult{}, errors.New("reward score: base, adapter, data and out are all needed")
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 8
	}
	m, err := finetune.OpenMerged(cfg.Base, cfg.SFTAdapter)
	if err != nil {
		return ScoreResult{}, err
	}
	if err := finetune.LoadRewardModel(m, cfg.Adapter); err != nil {
		return ScoreResult{}, err
	}
	enc, err := finetune.NewSequenceEncoder(m.Tokenizer)
	if err != nil {
		return ScoreResult{}, err
	}
	kind, err := detectKind(cfg.Data)
	if err != nil {
		return ScoreResult{}, err
	}
	res := ScoreResult{Kind: kind}
	var seqs [][]int
	var names []string
	switch kind {
	case data.KindInstructions, data.KindGeneratedInstructions:
		err = data.StreamInstructions(cfg.Data, func(row int, r data.Instruction) error {
			prompt := enc.Tok.Encode(tokenizer.FormatAlpaca(r.Instruction, r.Input), true)
			c, err := enc.Completion(r.Output, nil, nil)
			if err != nil {
				return fmt.Errorf("%s: row %d: %w", cfg.Data, row+1, err)
			}
			seqs = append(seqs, concat(prompt, c))
			return nil
		})
		names = []string{"reward"}
	case data.KindPreferences:
		var chosen, rejected [][]int
		err = data.StreamPreferences(cfg.Data, func(row int, p data.Preference) error {
			pr, err := encodePair(enc, p, row)
			if err != nil {
				return fmt.Errorf("%s: row %d: %w", cfg.Data, row+1, err)
			}
			chosen, rejected = append(chosen, pr.Chosen), append(rejected, pr.Rejected)
			return nil
		})
		seqs = append(chosen, rejected...)
		names = []string{data.ColScoreChosen, data.ColScoreRejected}
	default:
		return res, fmt.Errorf("reward score: %s is a %s dataset, which has no completions to score", cfg.Data, kind)
	}
	if err != nil {
		return res, fmt.Errorf("reward score: %w", err)
	}
	if len(seqs) == 0 {
		return res, fmt.Errorf("reward score: %s has no rows", cfg.Data)
	}
	limit := cfg.MaxLength
	if pos := m.Weights.Config.MaxPositionEmbeddings; limit <= 0 || (pos > 0 && limit > pos) {
		limit = pos
	}
	T := 0
	for i, s := range seqs {
		if limit > 0 && len(s) > limit {
			seqs[i] = s[len(s)-limit:]
			res.Truncated++
		}
		T = max(T, len(seqs[i]))
	}
	sc, err := finetune.NewScorer(m, cfg.BatchSize, T)
	if err != nil {
		return res, err
	}
	scores, err := sc.Score(ctx, seqs)
	if err != nil {
		return res, err
	}
	cols := map[string][]float64{}
	n := len(scores) / len(names)
	for i, name := range names {
		cols[name] = scores[i*n : (i+1)*n]
	}
	if err := data.AddFloat64Columns(cfg.Data, cfg.Out, cols); err != nil {
		return res, fmt.Errorf("reward score: %w", err)
	}
	var sum float64
	for _, v := range scores {
		sum += v
	}
	res.Rows, res.Columns, res.Mean = n, names, sum/float64(len(scores))
	if math.IsNaN(res.Mean) {
		return res, errors.New("reward score: the model produced NaN scores")
	}
	return res, nil
}

// detectKind reads a dataset's schema and names its kind.
func detectKind(path string) (data.Kind, error) {
	ds, err := data.OpenDataset(path)
	if err != nil {
		return "", fmt.Errorf("reward: %w", err)
	}
	defer ds.Close()
	k, err := data.DetectKind(ds.Schema())
	if err != nil {
		return "", fmt.Errorf("reward: %s: %w", path, err)
	}
	return k, nil
}
