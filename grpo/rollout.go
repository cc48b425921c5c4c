package grpo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// prompt is one encoded row.
type prompt struct {
	row  data.Instruction
	idx  int    // row in its dataset (0-based)
	text string // the rendered prompt
	ids  []int
}

// prompts are the encoded rows of a dataset.
type prompts struct {
	items            []prompt
	dropped, longest int
}

// promptText renders a row as SFT's Alpaca template renders its prompt
// (finetune.InstructionEncoder): a system prompt opens it as its own
// paragraph.
func promptText(r data.Instruction) string {
	p := tokenizer.FormatAlpaca(r.Instruction, r.Input)
	if r.System != "" {
		p = r.System + "\n\n" + p
	}
	return p
}

// loadPrompts encodes rows (or the instructions dataset at path when rows
// is nil), leaving out prompts of more than limit tokens.
func loadPrompts(rows []data.Instruction, path, name string, m *finetune.Model, limit int) (prompts, error) {
	var out prompts
	if rows == nil {
		var err error
		if rows, err = data.ReadInstructions(path); err != nil {
			return out, fmt.Errorf("grpo: %w", err)
		}
		name = path
	}
	for i, r := range rows {
		text := promptText(r)
		ids := m.Tokenizer.Encode(text, true)
		if len(ids) > limit {
			out.dropped++
			continue
		}
		out.items = append(out.items, prompt{row: r, idx: i, text: text, ids: ids})
		out.longest = max(out.longest, len(ids))
	}
	if len(out.items) == 0 {
		return out, fmt.Errorf("grpo: no prompts left in %s (%d longer than %d tokens)", name, out.dropped, limit)
	}
	return out, nil
}

// genBatch is one generation batch with what its updates need; it is saved
// in checkpoints taken between its updates. Per-token arrays are (B·R),
// R = MaxCompletionLength, right-padded.
type genBatch struct {
	Iteration  int                `json:"iteration"`
	Seqs       [][]int            `json:"seqs"`          // (B) prompt + completion ids
	PromptLen  []int              `json:"prompt_len"`    // (B)
	Lengths    []int              `json:"lengths"`       // (B) completion tokens, EOS included
	Advantages []float64          `json:"advantages"`    // (B)
	Old        []float64          `json:"old,omitempty"` // log π_old, only when NumIterations > 1
	Ref        []float64          `json:"ref,omitempty"` // log π_ref, only when β > 0
	Stats      map[string]float64 `json:"stats"`         // the batch's metrics
}

func (b *genBatch) tokens() int {
	n := 0
	for _, l := range b.Lengths {
		n += l
	}
	return n
}

// runner holds a run's programs and its current generation batch.
type runner struct {
	cfg     Config
	policy  *finetune.Model
	engine  *generate.Engine
	funcs   []rewardFunc
	fwd     *finetune.Program // forward only: log-probs
	trainer *finetune.Program // the objective and its gradients
	obj     *Objective
	batch   *genBatch
	raw     json.RawMessage
	loop    *train.Loop
	comm    train.Comm // the ranks that share the sampling
	Bm, T   int
	R       int
	pad     int32
	eos     int
	vocab   int
}

func newRunner(cfg Config, policy *finetune.Model, funcs []rewardFunc, T int) (*runner, error) {
	r := &runner{cfg: cfg, policy: policy, funcs: funcs, T: T, R: cfg.MaxCompletionLength,
		Bm: cfg.GenerationBatchSize / cfg.Train.GradAccum, pad: int32(policy.Tokenizer.PAD()),
		eos: policy.Tokenizer.EOS(), vocab: policy.Weights.Config.VocabSize,
		obj: &Objective{EpsLow: cfg.Epsilon, EpsHigh: cfg.epsHigh(), Beta: cfg.Beta}}
	var err error
	if r.engine, err = generate.New(policy.Weights, nil); err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	r.engine.SetAdapter(policy.Adapter)
	if cfg.NumIterations > 1 || cfg.Beta > 0 {
		r.fwd, err = policy.Program("grpo-forward", r.Bm, T, false, func(g *model.Graph, _ map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
			return nil, []*gorgonia.Node{g.TargetLogProbs()}, nil
		})
		if err != nil {
			return nil, fmt.Errorf("grpo: %w", err)
		}
	}
	r.trainer, err = policy.Program("grpo-train", r.Bm, T, true, func(g *model.Graph, _ map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		return g.FuncLoss("grpo", r.obj.Loss, g.TargetLogProbs()), nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("grpo: %w", err)
	}
	return r, nil
}

// completions samples G completions of every prompt (greedy: one), with
// the live policy; ps[0] is prompt first of the batch, whose place seeds
// the sampling.
func (r *runner) completions(ctx context.Context, iter int, ps []prompt, first, G int, greedy bool) ([]Sample, error) {
	reqs := make([]generate.Request, 0, len(ps)*G)
	for _, p := range ps {
		for range G {
			o := generate.Options{MaxTokens: r.R, Temperature: r.cfg.Temperature, TopP: r.cfg.TopP,
				Seed: finetune.SampleSeed(r.cfg.Train.Seed, iter, first*G+len(reqs))}
			if greedy {
				o.Temperature, o.TopP = 0, 0
			}
			if r.eos >= 0 {
				o.StopTokens = []int{r.eos}
			}
			reqs = append(reqs, generate.Request{Prompt: p.ids, Options: o})
		}
	}
	r.policy.Adapter.SetEnabled(true)
	r.policy.Adapter.SetDropoutActive(false)
	out, err := r.engine.GenerateShared(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("grpo: generation batch %d: %w", iter, err)
	}
	ss := make([]Sample, len(out))
	for i, o := range out {
		p := ps[i/G]
		resp := o.Tokens
		ended := o.FinishReason == generate.FinishStop && r.eos >= 0
		if ended {
			resp = append(resp, r.eos)
		}
		if len(resp) == 0 || len(resp) > r.R {
			return nil, fmt.Errorf("grpo: generation batch %d: completion %d has %d tokens, want 1…%d", iter, i, len(resp), r.R)
		}
		ss[i] = Sample{Row: p.idx, Instruction: p.row.Instruction, Input: p.row.Input, Answer: p.row.Output,
			Prompt: p.text, Completion: r.policy.Tokenizer.Decode(o.Tokens, true), Ended: ended,
			IDs: append(append(make([]int, 0, len(p.ids)+len(resp)), p.ids...), resp...)}
	}
	return ss, nil
}

// group is one prompt's samples with their scores, what a rank sends the
// others.
type group struct {
	Samples []Sample
	Scores  [][]float64 // by reward function, then sample
	Errs    []int       // by reward function: the rank's samples scored 0 after an error (on its first group)
}

// sample samples G completions of every prompt of ps (greedy: one) and
// scores them with every reward function. The ranks share the prompts
// (train.ShareWork): each samples and scores its contiguous part, and all
// get every group in order. Seeds follow a completion's place in ps, so
// any number of ranks samples what one process does.
func (r *runner) sample(ctx context.Context, iter int, ps []prompt, G int, greedy bool) (ss []Sample, scores [][]float64, errs []int, err error) {
	gs, err := train.ShareWork(ctx, r.comm, len(ps), func(lo, hi int) ([]group, error) {
		if lo == hi {
			return []group{}, nil
		}
		ss, err := r.completions(ctx, iter, ps[lo:hi], lo, G, greedy)
		if err != nil {
			return nil, err
		}
		scores, errs, err := scoreAll(ctx, r.funcs, ss, r.cfg.RewardErrors)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			if iter < 0 {
				return nil, fmt.Errorf("grpo: held-out rows: %w", err)
			}
			return nil, fmt.Errorf("grpo: generation batch %d: %w", iter, err)
		}
		out := make([]group, hi-lo)
		for i := range out {
			out[i] = group{Samples: ss[i*G : (i+1)*G], Scores: make([][]float64, len(scores))}
			for k := range scores {
				out[i].Scores[k] = scores[k][i*G : (i+1)*G]
			}
		}
		out[0].Errs = errs
		return out, nil
	})
	if err != nil {
		return nil, nil, nil, err
	}
	scores, errs = make([][]float64, len(r.funcs)), make([]int, len(r.funcs))
	for _, g := range gs {
		if len(g.Samples) != G || len(g.Scores) != len(r.funcs) {
			return nil, nil, nil, fmt.Errorf("a rank sent a group of %d samples with %d reward functions' scores, want %d and %d", len(g.Samples), len(g.Scores), G, len(r.funcs))
		}
		ss = append(ss, g.Samples...)
		for k := range r.funcs {
			if len(g.Scores[k]) != G {
				return nil, nil, nil, fmt.Errorf("a rank sent %d scores of reward function %s for a group of %d", len(g.Scores[k]), r.funcs[k].name, G)
			}
			scores[k] = append(scores[k], g.Scores[k]...)
			if k < len(g.Errs) {
				errs[k] += g.Errs[k]
			}
		}
	}
	return ss, scores, errs, nil
}

// rewards combines the samples' scores into rewards and adds the
// rewards/<name>/… metrics to stats.
func (r *runner) rewards(ss []Sample, scores [][]float64, errs []int, stats map[string]float64) ([]float64, error) {
	for k, f := range r.funcs {
		var m, ss2 float64
		for _, v := range scores[k] {
			m += v / float64(len(ss))
		}
		for _, v := range scores[k] {
			ss2 += (v - m) * (v - m)
		}
		stats["rewards/"+f.name+"/mean"] = m
		stats["rewards/"+f.name+"/std"] = math.Sqrt(ss2 / float64(max(1, len(ss)-1))) // Bessel-corrected, as torch.std
		if r.cfg.RewardErrors == ErrorsZero {
			stats["rewards/"+f.name+"/errors"] = float64(errs[k])
		}
	}
	return Combine(scores, r.cfg.weights())
}

// generate makes the generation batch of iteration iter: samples,
// rewards, advantages, and the log-probabilities the updates compare
// against.
func (r *runner) generate(ctx context.Context, iter int, ps []prompt) error {
	G := r.cfg.NumGenerations
	ss, scores, errs, err := r.sample(ctx, iter, ps, G, false)
	if err != nil {
		return err
	}
	stats := map[string]float64{}
	rw, err := r.rewards(ss, scores, errs, stats)
	if err != nil {
		return fmt.Errorf("grpo: generation batch %d: %w", iter, err)
	}
	adv, gs, err := Advantages(rw, G, r.cfg.Estimator, r.cfg.ScaleRewards)
	if err != nil {
		return fmt.Errorf("grpo: generation batch %d: %w", iter, err)
	}
	b := &genBatch{Iteration: iter, Advantages: adv, Stats: stats}
	minL, maxL, clipped := r.R, 0, 0
	for i, s := range ss {
		pl := len(ps[i/G].ids)
		n := len(s.IDs) - pl
		b.Seqs, b.PromptLen, b.Lengths = append(b.Seqs, s.IDs), append(b.PromptLen, pl), append(b.Lengths, n)
		minL, maxL = min(minL, n), max(maxL, n)
		if !s.Ended {
			clipped++
		}
	}
	B := float64(len(ss))
	stats["reward"], stats["reward_std"], stats["frac_reward_zero_std"] = gs.Reward, gs.RewardStd, gs.FracZeroStd
	stats["completions/mean_length"] = float64(b.tokens()) / B
	stats["completions/min_length"], stats["completions/max_length"] = float64(minL), float64(maxL)
	stats["completions/clipped_ratio"] = float64(clipped) / B
	if r.cfg.NumIterations > 1 {
		if b.Old, err = r.logProbs(ctx, b); err != nil {
			return err
		}
	}
	if r.cfg.Beta > 0 {
		r.policy.Adapter.SetEnabled(false)
		b.Ref, err = r.logProbs(ctx, b)
		r.policy.Adapter.SetEnabled(true)
		if err != nil {
			return err
		}
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("grpo: generation batch %d: %w", iter, err)
	}
	r.batch, r.raw = b, raw
	return nil
}

// logProbs returns the current model's log-probability of every completion
// token of the batch, (B·R).
func (r *runner) logProbs(ctx context.Context, b *genBatch) ([]float64, error) {
	// The ranks share the forward passes (train.ShareWork), each a chunk of
	// Bm rows as one process runs it, so the values are the same.
	B := len(b.Seqs)
	chunks := (B + r.Bm - 1) / r.Bm
	parts, err := train.ShareWork(ctx, r.comm, chunks, func(lo, hi int) ([][]float64, error) {
		out := make([][]float64, 0, hi-lo)
		for c := lo; c < hi; c++ {
			lp, err := r.chunkLogProbs(ctx, b, c*r.Bm)
			if err != nil {
				return nil, err
			}
			out = append(out, lp)
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]float64, 0, B*r.R)
	for _, p := range parts {
		out = append(out, p...)
	}
	if len(out) != B*r.R {
		return nil, fmt.Errorf("grpo: %d log-probs gathered for %d sequences of %d tokens", len(out), B, r.R)
	}
	return out, nil
}

// chunkLogProbs is logProbs of the Bm rows from k on, (rows·R).
func (r *runner) chunkLogProbs(ctx context.Context, b *genBatch, k int) ([]float64, error) {
	in := r.fwd.Graph.In
	B := len(b.Seqs)
	out := make([]float64, min(r.Bm, B-k)*r.R)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for i := range r.Bm {
		finetune.FillRow(in, r.T, i, b.Seqs[min(k+i, B-1)], r.pad)
	}
	if err := r.fwd.Run(); err != nil {
		return nil, fmt.Errorf("grpo: forward: %w", err)
	}
	lp := model.Value32(r.fwd.Out[0])
	for i := 0; i < r.Bm && k+i < B; i++ {
		row := k + i
		for j := range b.Lengths[row] {
			out[i*r.R+j] = float64(lp[i*r.T+b.PromptLen[row]-1+j])
		}
	}
	return out, nil
}

// update runs forward and backward on micro-batch micro of the current
// generation batch.
func (r *runner) update(micro, step int) (train.Metrics, error) {
	b := r.batch
	w, err := SequenceWeights(r.cfg.LossType, b.Lengths, r.R)
	if err != nil {
		return nil, fmt.Errorf("grpo: generation batch %d: %w", b.Iteration, err)
	}
	N := r.Bm * r.T
	o := r.obj
	o.Advantage, o.Weight, o.Old, o.Ref = make([]float64, N), make([]float64, N), nil, nil
	if b.Old != nil {
		o.Old = make([]float64, N)
	}
	if b.Ref != nil {
		o.Ref = make([]float64, N)
	}
	in := r.trainer.Graph.In
	tokens := 0
	scale := float64(r.cfg.Train.GradAccum) // the loop averages micro-batches; the weights sum over the batch
	for i := range r.Bm {
		row := micro*r.Bm + i
		finetune.FillRow(in, r.T, i, b.Seqs[row], r.pad)
		for j := range b.Lengths[row] {
			pos, at := i*r.T+b.PromptLen[row]-1+j, row*r.R+j
			o.Advantage[pos], o.Weight[pos] = b.Advantages[row], scale*w[row]
			if o.Old != nil {
				o.Old[pos] = b.Old[at]
			}
			if o.Ref != nil {
				o.Ref[pos] = b.Ref[at]
			}
		}
		tokens += b.Lengths[row]
	}
	if r.cfg.LoRA.Dropout > 0 {
		r.policy.Adapter.SeedDropout(r.cfg.Train.Seed, uint64(step*r.cfg.Train.GradAccum+micro)+1)
		r.policy.Adapter.ResampleDropout()
	}
	if err := r.trainer.Run(); err != nil {
		return nil, fmt.Errorf("grpo: update: %w", err)
	}
	met := train.Metrics{}
	for k, v := range b.Stats {
		met[k] = v
	}
	s := o.Last
	met[train.KeyLoss] = s.Loss
	met[train.KeyTokens] = float64(tokens)
	met["clip_ratio/low_mean"], met["clip_ratio/high_mean"], met["clip_ratio/region_mean"] = s.ClipLow, s.ClipHigh, s.ClipAny
	if r.cfg.Beta > 0 {
		met["kl"] = s.KL
	}
	return met, nil
}

// evaluate generates one greedy completion per held-out prompt and returns
// the reward functions' means (logged as eval_reward, eval_rewards/…).
func (r *runner) evaluate(ctx context.Context, ps []prompt) (train.Metrics, error) {
	ss, scores, errs, err := r.sample(ctx, -1, ps, 1, true)
	if err != nil {
		return nil, err
	}
	stats := map[string]float64{}
	rw, err := r.rewards(ss, scores, errs, stats)
	if err != nil {
		return nil, fmt.Errorf("grpo: held-out rows: %w", err)
	}
	var mean, ended float64
	for i, v := range rw {
		mean += v / float64(len(rw))
		if ss[i].Ended {
			ended += 1 / float64(len(rw))
		}
	}
	m := train.Metrics{"reward": mean, "completions/clipped_ratio": 1 - ended}
	for k, v := range stats {
		if !strings.HasSuffix(k, "/std") {
			m[k] = v
		}
	}
	return m, nil
}

// savedState is the stage's part of a checkpoint: the generation batch
// being trained on, between its updates only.
type savedState struct {
	Batch json.RawMessage `json:"batch,omitempty"`
}

// state returns the checkpoint state; at a batch boundary the next update
// makes a new batch, so the old one is left out.
func (r *runner) state(boundary bool) (json.RawMessage, error) {
	var s savedState
	if !boundary && r.batch != nil {
		s.Batch = r.raw
	}
	return json.Marshal(s)
}

// restore puts back a state written by state, checking the batch against
// the run's shapes.
func (r *runner) restore(raw json.RawMessage) error {
	var s savedState
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	r.batch, r.raw = nil, nil
	if len(s.Batch) == 0 {
		return nil
	}
	var b genBatch
	if err := json.Unmarshal(s.Batch, &b); err != nil {
		return fmt.Errorf("generation batch: %w", err)
	}
	if err := r.checkBatch(&b); err != nil {
		return fmt.Errorf("generation batch %d: %w", b.Iteration, err)
	}
	r.batch, r.raw = &b, s.Batch
	return nil
}

// checkBatch validates a generation batch read from a checkpoint.
func (r *runner) checkBatch(b *genBatch) error {
	B := r.cfg.GenerationBatchSize
	if b.Iteration < 0 || len(b.Seqs) != B || len(b.PromptLen) != B || len(b.Lengths) != B || len(b.Advantages) != B {
		return fmt.Errorf("holds %d sequences, want %d", len(b.Seqs), B)
	}
	if (b.Old != nil) != (r.cfg.NumIterations > 1) || b.Old != nil && len(b.Old) != B*r.R {
		return fmt.Errorf("%d old log-probs for %s %d", len(b.Old), KeyNumIterations, r.cfg.NumIterations)
	}
	if (b.Ref != nil) != (r.cfg.Beta > 0) || b.Ref != nil && len(b.Ref) != B*r.R {
		return fmt.Errorf("%d reference log-probs for %s %v", len(b.Ref), KeyBeta, r.cfg.Beta)
	}
	return finetune.CheckSequences(b.Seqs, b.PromptLen, b.Lengths, r.R, r.T, r.vocab)
}
