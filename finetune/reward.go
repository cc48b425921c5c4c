package finetune

import (
	"context"
	"fmt"
	"path/filepath"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/ops"
)

// ScoreHead is a reward model's scalar head in finetune.Model.Extra and in
// the adapter's modules_to_save: a (1, C) matrix saved as
// base_model.model.score.weight, the name transformers gives the head of
// LlamaForSequenceClassification.
const ScoreHead = "score"

// RewardTaskType is the PEFT task_type of a reward adapter.
const RewardTaskType = "SEQ_CLS"

// ScoreNode adds the head to a graph: (B·T, C) hidden states times the
// (1, C) head, transposed, give a (B·T, 1) score at every position, of
// which only each sequence's last real token is read (a matrix–vector
// product is cheaper than gathering rows inside the graph, and keeps the
// gather, with its bounds, in plain Go).
func ScoreNode(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, error) {
	head, ok := extra[ScoreHead]
	if !ok {
		return nil, fmt.Errorf("the model has no %q head", ScoreHead)
	}
	return ops.Linear(g.Hidden, head, nil)
}

// FillRow writes one sequence into row b of a graph's inputs: its tokens,
// each position's next token as target, padding after.
func FillRow(in *model.Inputs, T, b int, ids []int, pad int32) {
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

// LoadRewardModel attaches a reward adapter (LoRA and score head, as the
// reward stage saves it) to m, whose weights must be those the adapter was
// trained on (the base, with the same SFT adapter merged when one was
// used).
func LoadRewardModel(m *Model, dir string) error {
	if err := m.LoadAdapter(dir); err != nil {
		return fmt.Errorf("reward model %s: %w", dir, err)
	}
	h, ok := m.Extra[ScoreHead]
	if !ok {
		return fmt.Errorf("reward model %s has no %q module: not a reward adapter", dir, ScoreHead)
	}
	if s := h.Shape(); len(s) != 2 || s[0] != 1 || s[1] != m.Weights.Config.HiddenSize {
		return fmt.Errorf("reward model %s: score head has shape %v, want (1, %d)", dir, s, m.Weights.Config.HiddenSize)
	}
	return nil
}

// Scorer reads a reward model's score at the last token of token
// sequences, B sequences of at most T tokens per forward pass.
type Scorer struct {
	m    *Model
	prog *Program
	out  *gorgonia.Node
	pad  int32
	B, T int
}

// NewScorer builds the forward-only scoring program of a model with a
// score head (LoadRewardModel, or the model being trained).
func NewScorer(m *Model, B, T int) (*Scorer, error) {
	p, err := m.Program("reward-score", B, T, false, func(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		s, err := ScoreNode(g, extra)
		return nil, []*gorgonia.Node{s}, err
	})
	if err != nil {
		return nil, fmt.Errorf("reward model: %w", err)
	}
	return &Scorer{m: m, prog: p, out: p.Out[0], pad: int32(m.Tokenizer.PAD()), B: B, T: T}, nil
}

// Score returns the score of every sequence, read at its last token, with
// adapter dropout off. Every sequence must hold 1…T tokens.
func (s *Scorer) Score(ctx context.Context, seqs [][]int) ([]float64, error) {
	for i, ids := range seqs {
		if len(ids) == 0 || len(ids) > s.T {
			return nil, fmt.Errorf("score: sequence %d has %d tokens, want 1…%d", i, len(ids), s.T)
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
			FillRow(in, s.T, b, ids, s.pad)
		}
		if err := s.prog.Run(); err != nil {
			return nil, fmt.Errorf("score: %w", err)
		}
		v := model.Value32(s.out)
		for b := 0; b < s.B && k+b < len(seqs); b++ {
			out[k+b] = float64(v[b*s.T+len(seqs[k+b])-1])
		}
	}
	return out, nil
}

// SameAsPolicy is the value of an RL stage's reward-sft-adapter meaning
// that the reward model was trained on the policy's starting model (its
// SFT adapter merged); NoSFT means the plain base.
const (
	SameAsPolicy = ""
	NoSFT        = "none"
)

// OpenPolicyBase opens the base with an SFT adapter merged ("" or NoSFT
// for none): the starting weights of an RL policy or of its reward model.
func OpenPolicyBase(base, sftAdapter string) (*Model, error) {
	if sftAdapter == NoSFT {
		sftAdapter = ""
	}
	return OpenMerged(base, sftAdapter)
}

// RewardSharesWeights reports whether a reward model trained on the base
// with rewardSFT (SameAsPolicy, NoSFT or an adapter directory) was trained
// on the policy's starting weights, the base with policySFT merged, so that
// it can read the policy's weights in place.
func RewardSharesWeights(policySFT, rewardSFT string) bool {
	switch rewardSFT {
	case SameAsPolicy:
		return true
	case NoSFT:
		return policySFT == ""
	}
	return policySFT != "" && filepath.Clean(rewardSFT) == filepath.Clean(policySFT)
}

// OpenRewardModel returns the reward model of an RL stage: the reward
// adapter (LoRA and score head) at adapterDir on the base it was trained on
// (see RewardSharesWeights), which is the policy's own weights, shared
// without a copy, when it can be; a base of its own is held as dtype says
// (HoldBase), as the policy's is.
func OpenRewardModel(policy *Model, base, policySFT, rewardSFT, adapterDir, dtype string) (*Model, error) {
	rm := New(base, policy.Weights, policy.Tokenizer)
	if !RewardSharesWeights(policySFT, rewardSFT) {
		var err error
		if rm, err = OpenPolicyBase(base, rewardSFT); err != nil {
			return nil, fmt.Errorf("reward model base: %w", err)
		}
		if err := rm.HoldBase(dtype); err != nil {
			return nil, fmt.Errorf("reward model base: %w", err)
		}
	}
	if err := LoadRewardModel(rm, adapterDir); err != nil {
		return nil, err
	}
	return rm, nil
}
