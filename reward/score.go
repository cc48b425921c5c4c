package reward

import (
	"context"
	"errors"
	"fmt"
	"math"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/ops"
	"github.com/gotune/gotune/tokenizer"
)

// HeadName is the reward model's scalar head in finetune.Model.Extra and in
// the adapter's modules_to_save: a (1, C) matrix saved as
// base_model.model.score.weight, the name transformers gives the head of
// LlamaForSequenceClassification.
const HeadName = "score"

// TaskType is the PEFT task_type of a reward adapter.
const TaskType = "SEQ_CLS"

// scoreNode adds the head to a graph: (B·T, C) hidden states times the
// (1, C) head, transposed, give a (B·T, 1) score at every position, of
// which only each sequence's last real token is read (a matrix–vector
// product is cheaper than gathering rows inside the graph, and keeps the
// gather, with its bounds, in plain Go).
func scoreNode(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, error) {
	head, ok := extra[HeadName]
	if !ok {
		return nil, fmt.Errorf("the model has no %q head", HeadName)
	}
	return ops.Linear(g.Hidden, head, nil)
}

// fillRow writes one sequence into row b of a graph's inputs: its tokens,
// each position's next token as target, padding after.
func fillRow(in *model.Inputs, T, b int, ids []int, pad int32) {
	for t := range T {
		i := b*T + t
		in.Tokens[i], in.Targets[i] = pad, pad
		if t < len(ids) {
			in.Tokens[i] = int32(ids[t])
		}
		if t+1 < len(ids) {
			in.Targets[i] = int32(ids[t+1])
		}
	}
}

// Load attaches a reward adapter saved by Run (LoRA and score head) to m,
// whose weights must be those the adapter was trained on (the base, with
// the same SFT adapter merged when one was used).
func Load(m *finetune.Model, dir string) error {
	if err := m.LoadAdapter(dir); err != nil {
		return fmt.Errorf("reward: load %s: %w", dir, err)
	}
	h, ok := m.Extra[HeadName]
	if !ok {
		return fmt.Errorf("reward: %s has no %q module: not a reward adapter", dir, HeadName)
	}
	if s := h.Shape(); len(s) != 2 || s[0] != 1 || s[1] != m.Weights.Config.HiddenSize {
		return fmt.Errorf("reward: %s: score head has shape %v, want (1, %d)", dir, s, m.Weights.Config.HiddenSize)
	}
	return nil
}

// Scorer reads a reward model's score at the last token of token
// sequences, B sequences of at most T tokens per forward pass.
type Scorer struct {
	m    *finetune.Model
	prog *finetune.Program
	out  *gorgonia.Node
	pad  int32
	B, T int
}

// NewScorer builds the forward-only scoring program of a model with a
// score head (Load, or the model being trained).
func NewScorer(m *finetune.Model, B, T int) (*Scorer, error) {
	p, err := m.Program("reward-score", B, T, false, func(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		s, err := scoreNode(g, extra)
		return nil, []*gorgonia.Node{s}, err
	})
	if err != nil {
		return nil, fmt.Errorf("reward: %w", err)
	}
	return &Scorer{m: m, prog: p, out: p.Out[0], pad: int32(m.Tokenizer.PAD()), B: B, T: T}, nil
}

// Score returns the score of every sequence, read at its last token, with
// adapter dropout off. Every sequence must hold 1…T tokens.
func (s *Scorer) Score(ctx context.Context, seqs [][]int) ([]float64, error) {
	for i, ids := range seqs {
		if len(ids) == 0 || len(ids) > s.T {
			return nil, fmt.Errorf("reward: sequence %d has %d tokens, want 1…%d", i, len(ids), s.T)
		}
	}
	if s.m.Adapter != nil {
		s.m.Adapter.SetDropoutActive(false)
	}
	in := s.prog.Graph.In
	out := make([]float64, len(seqs))
	for k := 0; k < len(seqs); k += s.B {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for b := range s.B {
			ids := seqs[min(k+b, len(seqs)-1)] // repeat the last sequence in a partial batch
			fillRow(in, s.T, b, ids, s.pad)
		}
		if err := s.prog.Run(); err != nil {
			return nil, fmt.Errorf("reward: score: %w", err)
		}
		v := model.Value32(s.out)
		for b := 0; b < s.B && k+b < len(seqs); b++ {
			out[k+b] = float64(v[b*s.T+len(seqs[k+b])-1])
		}
	}
	return out, nil
}

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
	m, err := OpenBase(cfg.Base, cfg.SFTAdapter)
	if err != nil {
		return ScoreResult{}, err
	}
	if err := Load(m, cfg.Adapter); err != nil {
		return ScoreResult{}, err
	}
	enc, err := NewEncoder(m.Tokenizer)
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
			pr, err := enc.EncodePair(p, row)
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
	sc, err := NewScorer(m, cfg.BatchSize, T)
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
