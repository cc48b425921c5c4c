package ppo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/model/ops"
	"github.com/gotune/gotune/train"
)

// Layouts. A rollout holds B responses; per-token arrays of the PPO core
// are (B·R), R = MaxNewTokens, right-padded, with Lengths[b] response
// tokens in row b. The graphs hold whole sequences, prompt then response,
// in (Bm·T) rows; response token j of a row whose prompt has P tokens is
// predicted at graph position P − 1 + j, where both its log-probability
// (TargetLogProbs) and its value (the state before the token) are read.

// rolloutBuf is one rollout with what the updates need; it is saved in
// checkpoints taken in the middle of its updates.
type rolloutBuf struct {
	Iteration  int          `json:"iteration"`
	KLCoef     float64      `json:"kl_coef"`     // β used to shape its rewards
	Seqs       [][]int      `json:"seqs"`        // (B) prompt + response ids
	PromptLen  []int        `json:"prompt_len"`  // (B)
	Lengths    []int        `json:"lengths"`     // (B) response tokens, EOS included
	Logprobs   []float64    `json:"logprobs"`    // (B·R) log π_old
	Values     []float64    `json:"values"`      // (B·R) V_old
	Advantages []float64    `json:"advantages"`  // (B·R) whitened Â
	Returns    []float64    `json:"returns"`     // (B·R) R = Â + V_old, before whitening
	Stats      RolloutStats `json:"stats"`       // objective/* metrics
	MeanLength float64      `json:"mean_length"` // mean response tokens
	EOSRate    float64      `json:"eos_rate"`    // share of responses ended by EOS
}

// samples are sampled responses with their log-probabilities, values and
// scores.
type samples struct {
	seqs              [][]int
	promptLen, length []int
	hasEOS            []bool
	logp, ref, values []float64 // (B·R)
	entropy           []float64 // (B) Σ_t H(π(·|s_t)) over the response
	scores            []float64 // (B) reward-model scores
}

// runner holds a PPO run's programs and rollout state.
type runner struct {
	cfg      Config
	policy   *finetune.Model
	engine   *generate.Engine
	fwd      *finetune.Program // forward only: log-probs and values
	trainer  *finetune.Program // clipped PPO loss and its gradients
	mb       *Minibatch
	scorer   *finetune.Scorer
	kl       KLController
	roll     *rolloutBuf
	rollJSON json.RawMessage
	loop     *train.Loop
	comm     train.Comm // the ranks that share the sampling
	Bm, T, R int
	pad      int32
	eos      int
	vocab    int
}

// valueNode adds the value head: (B·T, C) hidden states times the (1, C)
// head give a value at every position.
func valueNode(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, error) {
	return ops.Linear(g.Hidden, extra[ValueHeadName], nil)
}

func newRunner(ctx context.Context, cfg Config, policy, rm *finetune.Model, T int) (*runner, error) {
	r := &runner{cfg: cfg, policy: policy, T: T, R: cfg.MaxNewTokens,
		Bm: cfg.RolloutBatch / (cfg.MiniBatches * cfg.Train.GradAccum), pad: int32(policy.Tokenizer.PAD()),
		eos: policy.Tokenizer.EOS(), vocab: policy.Weights.Config.VocabSize}
	r.mb = &Minibatch{ClipRange: cfg.ClipRange, ClipRangeValue: cfg.ClipRangeValue, VFCoef: cfg.VFCoef}
	if cfg.AdaptiveKL {
		r.kl = &AdaptiveKL{Value: cfg.KLCoef, Target: cfg.KLTarget, Horizon: cfg.KLHorizon}
	} else {
		r.kl = &FixedKL{Value: cfg.KLCoef}
	}
	var err error
	if r.engine, err = newEngine(policy); err != nil {
		return nil, err
	}
	r.fwd, err = policy.Program("ppo-forward", r.Bm, T, false, func(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		v, err := valueNode(g, extra)
		return nil, []*gorgonia.Node{g.TargetLogProbs(), v}, err
	})
	if err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	r.trainer, err = policy.Program("ppo-train", r.Bm, T, true, func(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		v, err := valueNode(g, extra)
		if err != nil {
			return nil, nil, err
		}
		return g.FuncLoss("ppo", r.mb.Loss, g.TargetLogProbs(), v), nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	if r.scorer, err = finetune.NewScorer(rm, r.Bm, T); err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	return r, ctx.Err()
}

// newHead returns a (1, C) head drawn from N(0, std²), or zeros for std 0.
func newHead(C int, std float64, seed uint64) *tensor.Dense {
	t := model.NewTensor(1, C)
	if std > 0 {
		rng := rand.New(rand.NewPCG(seed, 0x7a1e))
		w := model.F32(t)
		for i := range w {
			w[i] = float32(rng.NormFloat64() * std)
		}
	}
	return t
}

// sample generates one response per prompt with the live policy (greedy
// when greedy is set, else at the configured temperature), then computes
// the policy's log-probabilities, values and entropies, the reference
// policy's log-probabilities (the adapter switched off) and the reward
// model's scores.
//
// Under mpirun the ranks share the prompts in groups of Bm, the forward
// passes' groups (train.ShareWork), and gather the samples: a response's
// seed is its prompt's place in prompts, so any number of ranks samples
// what one process does.
func (r *runner) sample(ctx context.Context, prompts [][]int, iter int, greedy bool) (*samples, error) {
	B := len(prompts)
	groups, err := train.ShareWork(ctx, r.comm, (B+r.Bm-1)/r.Bm, func(lo, hi int) ([]sampleGroup, error) {
		if lo == hi {
			return []sampleGroup{}, nil
		}
		// One call for the rank's whole part, generated together; its
		// forward groups start at a multiple of Bm, as one process's do.
		first, last := lo*r.Bm, min(hi*r.Bm, B)
		s, err := r.sampleLocal(ctx, prompts[first:last], first, iter, greedy)
		if err != nil {
			return nil, err
		}
		out := make([]sampleGroup, 0, hi-lo)
		for a := 0; a < last-first; a += r.Bm {
			b := min(a+r.Bm, last-first)
			out = append(out, sampleGroup{Seqs: s.seqs[a:b], PromptLen: s.promptLen[a:b], Length: s.length[a:b], HasEOS: s.hasEOS[a:b],
				Logp: s.logp[a*r.R : b*r.R], Ref: s.ref[a*r.R : b*r.R], Values: s.values[a*r.R : b*r.R], Entropy: s.entropy[a:b], Scores: s.scores[a:b]})
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	s := &samples{}
	for _, g := range groups {
		n := len(g.Seqs)
		if len(g.PromptLen) != n || len(g.Length) != n || len(g.HasEOS) != n || len(g.Entropy) != n || len(g.Scores) != n ||
			len(g.Logp) != n*r.R || len(g.Ref) != n*r.R || len(g.Values) != n*r.R {
			return nil, fmt.Errorf("ppo: rollout %d: a rank sent an inconsistent group of %d samples", iter, n)
		}
		s.seqs, s.promptLen, s.length = append(s.seqs, g.Seqs...), append(s.promptLen, g.PromptLen...), append(s.length, g.Length...)
		s.hasEOS, s.entropy, s.scores = append(s.hasEOS, g.HasEOS...), append(s.entropy, g.Entropy...), append(s.scores, g.Scores...)
		s.logp, s.ref, s.values = append(s.logp, g.Logp...), append(s.ref, g.Ref...), append(s.values, g.Values...)
	}
	if len(s.seqs) != B {
		return nil, fmt.Errorf("ppo: rollout %d: %d samples gathered for %d prompts", iter, len(s.seqs), B)
	}
	return s, nil
}

// sampleGroup is samples of up to Bm prompts, what a rank sends the others.
type sampleGroup struct {
	Seqs              [][]int
	PromptLen, Length []int
	HasEOS            []bool
	Logp, Ref, Values []float64
	Entropy, Scores   []float64
}

// sampleLocal is sample on prompts alone, prompts[0] being prompt first of
// the rollout.
func (r *runner) sampleLocal(ctx context.Context, prompts [][]int, first, iter int, greedy bool) (*samples, error) {
	B := len(prompts)
	reqs := make([]generate.Request, B)
	for i, p := range prompts {
		o := generate.Options{MaxTokens: r.R, Temperature: r.cfg.Temperature, Seed: finetune.SampleSeed(r.cfg.Train.Seed, iter, first+i)}
		if greedy {
			o.Temperature = 0
		}
		if r.eos >= 0 {
			o.StopTokens = []int{r.eos}
		}
		reqs[i] = generate.Request{Prompt: p, Options: o}
	}
	r.policy.Adapter.SetEnabled(true)
	r.policy.Adapter.SetDropoutActive(false)
	out, err := r.engine.Generate(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("ppo: rollout %d: %w", iter, err)
	}
	s := &samples{seqs: make([][]int, B), promptLen: make([]int, B), length: make([]int, B), hasEOS: make([]bool, B),
		logp: make([]float64, B*r.R), ref: make([]float64, B*r.R), values: make([]float64, B*r.R),
		entropy: make([]float64, B)}
	for i, o := range out {
		resp := o.Tokens
		if o.FinishReason == generate.FinishStop && r.eos >= 0 {
			resp = append(resp, r.eos)
			s.hasEOS[i] = true
		}
		if len(resp) == 0 || len(resp) > r.R {
			return nil, fmt.Errorf("ppo: rollout %d: response %d has %d tokens, want 1…%d", iter, first+i, len(resp), r.R)
		}
		s.seqs[i] = append(append(make([]int, 0, len(prompts[i])+len(resp)), prompts[i]...), resp...)
		s.promptLen[i], s.length[i] = len(prompts[i]), len(resp)
	}
	if err := r.forward(ctx, s, false); err != nil {
		return nil, err
	}
	r.policy.Adapter.SetEnabled(false)
	err = r.forward(ctx, s, true)
	r.policy.Adapter.SetEnabled(true)
	if err != nil {
		return nil, err
	}
	if s.scores, err = r.scorer.Score(ctx, s.seqs); err != nil {
		return nil, fmt.Errorf("ppo: rollout %d: %w", iter, err)
	}
	return s, nil
}

// forward runs the forward program over the samples in groups of Bm and
// gathers each response token's log-probability into s.logp (s.ref for the
// reference pass), and, on the policy pass, its value and entropy.
func (r *runner) forward(ctx context.Context, s *samples, ref bool) error {
	in := r.fwd.Graph.In
	B := len(s.seqs)
	for k := 0; k < B; k += r.Bm {
		if err := ctx.Err(); err != nil {
			return err
		}
		for b := range r.Bm {
			finetune.FillRow(in, r.T, b, s.seqs[min(k+b, B-1)], r.pad) // a partial group repeats its last sequence
		}
		if err := r.fwd.Run(); err != nil {
			return fmt.Errorf("ppo: forward: %w", err)
		}
		logp, values := model.Value32(r.fwd.Out[0]), model.Value32(r.fwd.Out[1])
		_, ent := r.fwd.Graph.TokenStats()
		for b := 0; b < r.Bm && k+b < B; b++ {
			row := k + b
			for j := range s.length[row] {
				pos, at := b*r.T+s.promptLen[row]-1+j, row*r.R+j
				if ref {
					s.ref[at] = float64(logp[pos])
					continue
				}
				s.logp[at] = float64(logp[pos])
				s.values[at] = float64(values[pos])
				s.entropy[row] += float64(ent[pos])
			}
		}
	}
	return nil
}

// shape turns samples into shaped rewards and objective/* statistics, with
// the entropy of the policy's distributions (summed over each response,
// averaged over responses) as objective/entropy.
func (r *runner) shape(s *samples) (Shaped, error) {
	sh, err := Shape(Rollout{T: r.R, Lengths: s.length, Logprobs: s.logp, RefLogprobs: s.ref, Scores: s.scores, HasEOS: s.hasEOS},
		ShapeConfig{Estimator: r.cfg.KLEstimator, KLCoef: r.kl.Coef(), MissingEOSPenalty: r.cfg.MissingEOSPenalty})
	if err != nil {
		return sh, err
	}
	var ent float64
	for _, e := range s.entropy {
		ent += e
	}
	sh.Stats.Entropy = ent / float64(len(s.entropy))
	return sh, nil
}

// rollout samples responses to prompts, shapes their rewards, estimates
// advantages (GAE, Schulman et al. 2016) and returns, whitens the
// advantages, and adapts the KL coefficient.
func (r *runner) rollout(ctx context.Context, iter int, prompts [][]int) error {
	s, err := r.sample(ctx, prompts, iter, false)
	if err != nil {
		return err
	}
	sh, err := r.shape(s)
	if err != nil {
		return fmt.Errorf("ppo: rollout %d: %w", iter, err)
	}
	mask := Mask(s.length, r.R)
	rewards := sh.Rewards
	if r.cfg.WhitenRewards {
		rewards = Whiten(rewards, mask, false)
	}
	adv, ret, err := GAE(rewards, s.values, s.length, r.R, r.cfg.Gamma, r.cfg.Lambda)
	if err != nil {
		return fmt.Errorf("ppo: rollout %d: %w", iter, err)
	}
	buf := &rolloutBuf{Iteration: iter, KLCoef: r.kl.Coef(), Seqs: s.seqs, PromptLen: s.promptLen, Lengths: s.length,
		Logprobs: s.logp, Values: s.values, Advantages: Whiten(adv, mask, true), Returns: ret, Stats: sh.Stats}
	for b, n := range s.length {
		buf.MeanLength += float64(n) / float64(len(s.length))
		if s.hasEOS[b] {
			buf.EOSRate += 1 / float64(len(s.length))
		}
	}
	r.kl.Update(sh.Stats.KL, len(prompts))
	raw, err := json.Marshal(buf)
	if err != nil {
		return fmt.Errorf("ppo: rollout %d: %w", iter, err)
	}
	r.roll, r.rollJSON = buf, raw
	return nil
}

// update runs forward and backward on micro-batch micro of minibatch k of
// PPO epoch epoch over the current rollout. Each epoch visits the rollout's
// responses in its own seeded order.
func (r *runner) update(epoch, k, micro, step int) (train.Metrics, error) {
	buf := r.roll
	B := len(buf.Seqs)
	perm := rand.New(rand.NewPCG(r.cfg.Train.Seed^0x99c0, uint64(buf.Iteration)<<20|uint64(epoch))).Perm(B)
	start := k*(B/r.cfg.MiniBatches) + micro*r.Bm
	rows := perm[start : start+r.Bm]

	N := r.Bm * r.T
	mb := r.mb
	mb.OldLogprobs, mb.Advantages = make([]float64, N), make([]float64, N)
	mb.OldValues, mb.Returns, mb.Mask = make([]float64, N), make([]float64, N), make([]float64, N)
	in := r.trainer.Graph.In
	tokens := 0
	for b, row := range rows {
		finetune.FillRow(in, r.T, b, buf.Seqs[row], r.pad)
		for j := range buf.Lengths[row] {
			pos, at := b*r.T+buf.PromptLen[row]-1+j, row*r.R+j
			mb.OldLogprobs[pos], mb.Advantages[pos] = buf.Logprobs[at], buf.Advantages[at]
			mb.OldValues[pos], mb.Returns[pos], mb.Mask[pos] = buf.Values[at], buf.Returns[at], 1
		}
		tokens += buf.Lengths[row]
	}
	if r.cfg.LoRA.Dropout > 0 {
		r.policy.Adapter.SeedDropout(r.cfg.Train.Seed, uint64(step*r.cfg.Train.GradAccum+micro)+1)
		r.policy.Adapter.ResampleDropout()
	}
	if err := r.trainer.Run(); err != nil {
		return nil, fmt.Errorf("ppo: update: %w", err)
	}
	var avg UpdateAverager
	avg.Add(mb.Last)
	met := train.Metrics(avg.Map())
	for k, v := range buf.Stats.Map() {
		met[k] = v
	}
	met[train.KeyLoss] = mb.Last.PolicyLoss + r.cfg.VFCoef*mb.Last.ValueLoss
	met[train.KeyTokens] = float64(tokens)
	met["objective/kl_coef"] = buf.KLCoef
	met["episode"] = float64((buf.Iteration + 1) * B)
	met["val/mean_length"] = buf.MeanLength
	met["val/eos_rate"] = buf.EOSRate
	return met, nil
}

// evaluate generates greedy responses to held-out prompts and returns their
// objective/* statistics under the current KL coefficient.
func (r *runner) evaluate(ctx context.Context, prompts [][]int) (RolloutStats, error) {
	s, err := r.sample(ctx, prompts, -1, true)
	if err != nil {
		return RolloutStats{}, err
	}
	sh, err := r.shape(s)
	return sh.Stats, err
}

// savedState is the stage's part of a checkpoint.
type savedState struct {
	KLCoef  float64         `json:"kl_coef"`           // β of the controller
	Rollout json.RawMessage `json:"rollout,omitempty"` // the rollout being trained on, mid-rollout only
}

// state returns the checkpoint state; at a rollout boundary the next update
// makes a new rollout, so the old one is left out.
func (r *runner) state(boundary bool) (json.RawMessage, error) {
	s := savedState{KLCoef: r.kl.Coef()}
	if !boundary && r.roll != nil {
		s.Rollout = r.rollJSON
	}
	return json.Marshal(s)
}

// restore puts back a state written by state, checking the rollout against
// the run's shapes.
func (r *runner) restore(raw json.RawMessage) error {
	var s savedState
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if !(s.KLCoef >= 0) {
		return fmt.Errorf("kl coefficient %v", s.KLCoef)
	}
	switch c := r.kl.(type) {
	case *FixedKL:
		c.Value = s.KLCoef
	case *AdaptiveKL:
		c.Value = s.KLCoef
	}
	r.roll, r.rollJSON = nil, nil
	if len(s.Rollout) == 0 {
		return nil
	}
	var buf rolloutBuf
	if err := json.Unmarshal(s.Rollout, &buf); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	if err := r.checkRollout(&buf); err != nil {
		return fmt.Errorf("rollout %d: %w", buf.Iteration, err)
	}
	r.roll, r.rollJSON = &buf, s.Rollout
	return nil
}

// checkRollout validates a rollout read from a checkpoint.
func (r *runner) checkRollout(b *rolloutBuf) error {
	B := r.cfg.RolloutBatch
	if b.Iteration < 0 || len(b.Seqs) != B || len(b.PromptLen) != B || len(b.Lengths) != B {
		return fmt.Errorf("holds %d sequences, want %d", len(b.Seqs), B)
	}
	for _, a := range [][]float64{b.Logprobs, b.Values, b.Advantages, b.Returns} {
		if len(a) != B*r.R {
			return fmt.Errorf("per-token array of %d values, want %d", len(a), B*r.R)
		}
	}
	return finetune.CheckSequences(b.Seqs, b.PromptLen, b.Lengths, r.R, r.T, r.vocab)
}
