package grpo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/train"
)

// SameAsPolicy and NoSFT are the RewardSFTAdapter values meaning that the
// reward model was trained on the policy's starting model or on the plain
// base (finetune's, shared by the RL stages).
const (
	SameAsPolicy = finetune.SameAsPolicy
	NoSFT        = finetune.NoSFT
)

// Keys of Config: the flags of `gotune grpo` and the keys under `grpo:` in
// a --config file (TRL's GRPOConfig names with dashes where one exists).
// The adapter's and the loop's settings have lora's and train's keys.
const (
	KeyBase                = "base"
	KeyBaseDtype           = finetune.KeyBaseDtype
	KeySFTAdapter          = "sft-adapter"
	KeyData                = "data"
	KeyEvalData            = "eval-data"
	KeyEvalMax             = "eval-max"
	KeyOut                 = "out"
	KeyResume              = "resume"
	KeyIterations          = "iterations"
	KeyNumGenerations      = "num-generations"
	KeyGenerationBatchSize = "generation-batch-size"
	KeyNumIterations       = "num-iterations"
	KeyMaxPromptLength     = "max-prompt-length"
	KeyMaxCompletionLength = "max-completion-length"
	KeyTemperature         = "temperature"
	KeyTopP                = "top-p"
	KeyAdvantageEstimator  = "advantage-estimator"
	KeyScaleRewards        = "scale-rewards"
	KeyLossType            = "loss-type"
	KeyEpsilon             = "epsilon"
	KeyEpsilonHigh         = "epsilon-high"
	KeyBeta                = "beta"
	KeyRewardFuncs         = "reward-funcs"
	KeyRewardWeights       = "reward-weights"
	KeyRewardCommand       = "reward-command"
	KeyRewardTimeout       = "reward-timeout"
	KeyRewardURL           = "reward-url"
	KeyRewardAdapter       = "reward-adapter"
	KeyRewardSFTAdapter    = "reward-sft-adapter"
	KeyRewardErrors        = "reward-errors"
)

// Config is a GRPO or RLOO run (TRL's GRPOConfig names in the comments).
// The policy is the base with the SFT adapter merged (when given) plus a
// fresh LoRA adapter; the reference policy is the same graph with that
// adapter switched off. Prompts are instruction rows rendered with the
// Alpaca template, as SFT trains on them; their output column is the
// reference answer of the exact reward.
type Config struct {
	Base       string // base model directory
	SFTAdapter string // SFT adapter merged into the base before the policy adapter ("" for none)
	// BaseDtype is how the frozen base (merged with the SFT adapter) is
	// held while training and generating: finetune.BaseFloat32 (also "")
	// or finetune.BaseBFloat16 (half the memory of its matrices, and half
	// the bytes each generated token reads; products in float32). The
	// reward model holds its own base, when it has one, the same way.
	BaseDtype string
	// Prompts: Rows when given, else the instructions dataset at Data.
	Rows []data.Instruction
	Data string
	// Held-out rows, evaluated greedily with the reward functions
	// (eval_reward, …): EvalRows when given, else the dataset at EvalData
	// ("" for none).
	EvalRows []data.Instruction
	EvalData string
	EvalMax  int    // held-out rows evaluated at most (0: all)
	Out      string // stage directory: adapter/, state/, metrics.jsonl
	Resume   bool   // continue from the checkpoint in Out

	Iterations          int     // generation batches
	NumGenerations      int     // completions per prompt, G (num_generations)
	GenerationBatchSize int     // completions per generation batch, a multiple of G (generation_batch_size)
	NumIterations       int     // optimizer updates per generation batch, μ (num_iterations)
	MaxPromptLength     int     // prompts with more tokens are left out (0: only the model's positions limit them)
	MaxCompletionLength int     // completion tokens at most, EOS included (max_completion_length)
	Temperature         float64 // sampling temperature (temperature); see Run on τ ≠ 1
	TopP                float64 // nucleus sampling mass in (0, 1] (top_p)

	Estimator    string  // advantage baseline: EstimatorGRPO or EstimatorRLOO
	ScaleRewards string  // ScaleGroup, ScaleBatch or ScaleNone (scale_rewards)
	LossType     string  // LossGRPO, LossDAPO or LossDrGRPO (loss_type)
	Epsilon      float64 // lower clip ε (epsilon)
	EpsilonHigh  float64 // upper clip ε (epsilon_high; 0: Epsilon), DAPO's clip-higher
	Beta         float64 // KL coefficient β (beta; 0: no reference pass)

	RewardFuncs   []string  // reward functions, of RewardNames (reward_funcs)
	RewardWeights []float64 // one weight per reward function (reward_weights; nil: all 1)
	RewardCommand string    // command line of RewardCommand, split on white space
	RewardURL     string    // endpoint of RewardHTTP
	RewardTimeout float64   // seconds a reward command or endpoint may take per generation batch
	// RewardAdapter is the reward model of RewardModel (from gotune reward);
	// RewardSFTAdapter is the SFT adapter it was trained on (SameAsPolicy,
	// NoSFT or a directory), as in ppo.
	RewardAdapter, RewardSFTAdapter string
	RewardErrors                    string // ErrorsStop or ErrorsZero

	LoRA lora.Config
	// Train is the optimizer and bookkeeping; Run sets its Steps to
	// Iterations × NumIterations, and each update's generation batch is
	// split into GradAccum micro-batches. LogEvery 0 logs once per
	// generation batch.
	Train train.Config
}

// DefaultConfig is the embedded default: 40 generation batches of 8
// prompts × 4 completions of up to 12 tokens at temperature 1, one update
// per batch at a learning rate of 2·10⁻³ decaying linearly, GRPO
// advantages scaled by the group's std, TRL's dapo aggregation and ε = 0.2,
// β = 0 (TRL's current default: no reference model), the exact reward, and
// a rank-8 LoRA policy adapter on every linear module without dropout
// (dropout would make the ratio of new to old probabilities noisy).
func DefaultConfig() Config {
	tc, lc := finetune.OnPolicyDefaults()
	return Config{
		Iterations: 40, NumGenerations: 4, GenerationBatchSize: 32, NumIterations: 1, MaxCompletionLength: 12,
		Temperature: 1, TopP: 1, Estimator: EstimatorGRPO, ScaleRewards: ScaleGroup, LossType: LossDAPO,
		Epsilon: 0.2, RewardFuncs: []string{RewardExact}, RewardTimeout: 60, RewardErrors: ErrorsStop,
		BaseDtype: finetune.BaseFloat32, LoRA: lc, Train: tc,
	}
}

// Validate reports the first unusable setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Base == "":
		return fmt.Errorf("grpo: %s (the base model directory) is not set", KeyBase)
	case finetune.CheckBaseDtype(c.BaseDtype) != nil:
		return fmt.Errorf("grpo: %w", finetune.CheckBaseDtype(c.BaseDtype))
	case c.Rows == nil && c.Data == "":
		return fmt.Errorf("grpo: %s (an instructions dataset) is not set and no rows are given", KeyData)
	case c.Out == "":
		return fmt.Errorf("grpo: %s (the output directory) is not set", KeyOut)
	case c.Iterations <= 0:
		return fmt.Errorf("grpo: %s must be positive, got %d", KeyIterations, c.Iterations)
	case c.NumGenerations < 2:
		return fmt.Errorf("grpo: %s must be at least 2 (a group needs a baseline), got %d", KeyNumGenerations, c.NumGenerations)
	case c.GenerationBatchSize <= 0 || c.GenerationBatchSize%c.NumGenerations != 0:
		return fmt.Errorf("grpo: %s must be a positive multiple of %s %d, got %d", KeyGenerationBatchSize, KeyNumGenerations, c.NumGenerations, c.GenerationBatchSize)
	case c.NumIterations <= 0:
		return fmt.Errorf("grpo: %s must be positive, got %d", KeyNumIterations, c.NumIterations)
	case c.Train.GradAccum <= 0:
		return fmt.Errorf("grpo: %s must be positive, got %d", train.KeyGradAccum, c.Train.GradAccum)
	case c.GenerationBatchSize%c.Train.GradAccum != 0:
		return fmt.Errorf("grpo: %s %d must split into %d micro-batches (%s)", KeyGenerationBatchSize, c.GenerationBatchSize, c.Train.GradAccum, train.KeyGradAccum)
	case c.MaxCompletionLength <= 0:
		return fmt.Errorf("grpo: %s must be positive, got %d", KeyMaxCompletionLength, c.MaxCompletionLength)
	case c.MaxPromptLength < 0:
		return fmt.Errorf("grpo: %s must be ≥ 0 (0: the model's positions), got %d", KeyMaxPromptLength, c.MaxPromptLength)
	case c.EvalMax < 0:
		return fmt.Errorf("grpo: %s must be ≥ 0 (0: all), got %d", KeyEvalMax, c.EvalMax)
	case !(c.Temperature > 0) || math.IsInf(c.Temperature, 0):
		return fmt.Errorf("grpo: %s must be positive and finite (a group of greedy completions is all alike), got %v", KeyTemperature, c.Temperature)
	case !(c.TopP > 0 && c.TopP <= 1):
		return fmt.Errorf("grpo: %s must lie in (0, 1], got %v", KeyTopP, c.TopP)
	case !slices.Contains(Estimators, c.Estimator):
		return fmt.Errorf("grpo: %s must be one of %s, got %q", KeyAdvantageEstimator, strings.Join(Estimators, ", "), c.Estimator)
	case !slices.Contains(Scalings, c.ScaleRewards):
		return fmt.Errorf("grpo: %s must be one of %s, got %q", KeyScaleRewards, strings.Join(Scalings, ", "), c.ScaleRewards)
	case !slices.Contains(LossTypes, c.LossType):
		return fmt.Errorf("grpo: %s must be one of %s, got %q", KeyLossType, strings.Join(LossTypes, ", "), c.LossType)
	case !(c.Epsilon > 0 && c.Epsilon < 1):
		return fmt.Errorf("grpo: %s must lie in (0, 1), got %v", KeyEpsilon, c.Epsilon)
	case !(c.EpsilonHigh >= 0) || math.IsInf(c.EpsilonHigh, 0):
		return fmt.Errorf("grpo: %s must be ≥ 0 and finite (0: %s), got %v", KeyEpsilonHigh, KeyEpsilon, c.EpsilonHigh)
	case !(c.Beta >= 0) || math.IsInf(c.Beta, 0):
		return fmt.Errorf("grpo: %s must be ≥ 0 and finite, got %v", KeyBeta, c.Beta)
	case len(c.RewardFuncs) == 0:
		return fmt.Errorf("grpo: %s is empty: name at least one of %s", KeyRewardFuncs, strings.Join(RewardNames, ", "))
	case c.RewardWeights != nil && len(c.RewardWeights) != len(c.RewardFuncs):
		return fmt.Errorf("grpo: %s has %d weights for %d reward functions (%s)", KeyRewardWeights, len(c.RewardWeights), len(c.RewardFuncs), KeyRewardFuncs)
	case !slices.Contains([]string{ErrorsStop, ErrorsZero}, c.RewardErrors):
		return fmt.Errorf("grpo: %s must be %s or %s, got %q", KeyRewardErrors, ErrorsStop, ErrorsZero, c.RewardErrors)
	}
	for i, w := range c.RewardWeights {
		if math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("grpo: %s: weight %d is %v", KeyRewardWeights, i+1, w)
		}
	}
	for i, f := range c.RewardFuncs {
		if !slices.Contains(RewardNames, f) {
			return fmt.Errorf("grpo: %s: function %d is %q, want one of %s", KeyRewardFuncs, i+1, f, strings.Join(RewardNames, ", "))
		}
		if slices.Index(c.RewardFuncs, f) != i {
			return fmt.Errorf("grpo: %s names %q twice", KeyRewardFuncs, f)
		}
	}
	switch {
	case slices.Contains(c.RewardFuncs, RewardCommand) && strings.TrimSpace(c.RewardCommand) == "":
		return fmt.Errorf("grpo: %s is not set, and %s names %q", KeyRewardCommand, KeyRewardFuncs, RewardCommand)
	case slices.Contains(c.RewardFuncs, RewardHTTP) && !strings.HasPrefix(c.RewardURL, "http://") && !strings.HasPrefix(c.RewardURL, "https://"):
		return fmt.Errorf("grpo: %s must be an http:// or https:// URL, and %s names %q; got %q", KeyRewardURL, KeyRewardFuncs, RewardHTTP, c.RewardURL)
	case (slices.Contains(c.RewardFuncs, RewardCommand) || slices.Contains(c.RewardFuncs, RewardHTTP)) && !(c.RewardTimeout > 0):
		return fmt.Errorf("grpo: %s must be positive (seconds), got %v", KeyRewardTimeout, c.RewardTimeout)
	case slices.Contains(c.RewardFuncs, RewardModel) && c.RewardAdapter == "":
		return fmt.Errorf("grpo: %s is not set, and %s names %q", KeyRewardAdapter, KeyRewardFuncs, RewardModel)
	// A setting of a reward function that does not run would be ignored.
	case c.RewardCommand != "" && !slices.Contains(c.RewardFuncs, RewardCommand):
		return fmt.Errorf("grpo: %s is set, but %s does not name %q", KeyRewardCommand, KeyRewardFuncs, RewardCommand)
	case c.RewardURL != "" && !slices.Contains(c.RewardFuncs, RewardHTTP):
		return fmt.Errorf("grpo: %s is set, but %s does not name %q", KeyRewardURL, KeyRewardFuncs, RewardHTTP)
	case (c.RewardAdapter != "" || c.RewardSFTAdapter != SameAsPolicy) && !slices.Contains(c.RewardFuncs, RewardModel):
		return fmt.Errorf("grpo: %s or %s is set, but %s does not name %q", KeyRewardAdapter, KeyRewardSFTAdapter, KeyRewardFuncs, RewardModel)
	}
	if err := c.LoRA.Validate(); err != nil {
		return fmt.Errorf("grpo: %w", err)
	}
	if err := c.loop().Validate(); err != nil {
		return fmt.Errorf("grpo: %w", err)
	}
	return nil
}

// loop is the loop's configuration as Run uses it.
func (c Config) loop() train.Config {
	t := c.Train
	t.Dir = c.Out
	t.Steps = c.Iterations * c.NumIterations
	if t.LogEvery == 0 {
		t.LogEvery = c.NumIterations
	}
	return t
}

// epsHigh is the upper clip ε.
func (c Config) epsHigh() float64 {
	if c.EpsilonHigh == 0 {
		return c.Epsilon
	}
	return c.EpsilonHigh
}

// weights are the reward functions' weights.
func (c Config) weights() []float64 {
	if c.RewardWeights != nil {
		return c.RewardWeights
	}
	w := make([]float64, len(c.RewardFuncs))
	for i := range w {
		w[i] = 1
	}
	return w
}

// Result summarises a finished run.
type Result struct {
	Prompts, EvalPrompts int                  // prompts used
	Dropped              int                  // prompts longer than MaxPromptLength, left out
	Steps                int                  // optimizer updates
	SeqLen               int                  // T of the graphs: longest prompt + MaxCompletionLength
	Batches              []map[string]float64 // the metrics of every generation batch made by this call (not those before a resume)
	Eval                 train.Metrics        // last held-out metrics (nil without held-out rows)
	AdapterDir           string               // the policy adapter (on top of the base with SFTAdapter merged)
	RolloutTime          time.Duration        // time spent sampling, scoring and computing reference log-probs
	RolloutTokens        int                  // completion tokens sampled
	Rewards              map[string]float64   // the last batch's metrics (reward, rewards/<name>/mean, …)
}

// Run trains the policy with GRPO (Shao et al. 2024) or RLOO (Ahmadian et
// al. 2024): every iteration takes GenerationBatchSize/NumGenerations
// prompts, samples NumGenerations completions of each with the generation
// engine (which reads the live policy adapter and prefills each prompt
// once for its group), scores them with the reward functions, turns every
// group's rewards into advantages, and makes NumIterations updates of the
// clipped objective over the batch, with importance ratios against the
// sampling policy's log-probabilities when NumIterations > 1.
//
// Log-probabilities are the model's own (temperature 1, no top-p), as the
// training graph computes them; a Temperature other than 1 or a TopP
// below 1 therefore samples slightly off-policy, as in ppo.
//
// Under mpirun the ranks share every generation batch's prompts and
// held-out rows (each samples and scores its contiguous part, then all
// gather the results), the log-probabilities of its micro-batches, and
// then its updates' micro-batches, as sft does (train.Comm). A
// completion's seed depends on its place in the batch, not on the rank, so
// N ranks sample the same completions as one process.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	// Under mpirun only rank 0 writes to Out (see train.Comm).
	out, cleanup, err := train.RankDir(cfg.Out)
	if err != nil {
		return Result{}, fmt.Errorf("grpo: %w", err)
	}
	defer cleanup()
	cfg.Out = out
	mu := cfg.NumIterations
	cfg.Train = cfg.loop()
	resuming := cfg.Resume && train.HasCheckpoint(cfg.Out)
	if !resuming && train.HasCheckpoint(cfg.Out) {
		return Result{}, fmt.Errorf("grpo: %s holds a training checkpoint; resume it or choose another output directory", cfg.Out)
	}
	policy, err := finetune.OpenPolicyBase(cfg.Base, cfg.SFTAdapter)
	if err != nil {
		return Result{}, fmt.Errorf("grpo: %w", err)
	}
	if err := policy.HoldBase(cfg.BaseDtype); err != nil {
		return Result{}, fmt.Errorf("grpo: %w", err)
	}
	if err := policy.SetMoEAuxLoss(cfg.Train.MoEAuxLossAlpha); err != nil {
		return Result{}, fmt.Errorf("grpo: %w", err)
	}
	if err := policy.SetGradientCheckpointing(cfg.Train.GradientCheckpointing); err != nil {
		return Result{}, fmt.Errorf("grpo: %w", err)
	}
	maxPos := policy.Weights.Config.MaxPositionEmbeddings
	limit := cfg.MaxPromptLength
	if maxPos > 0 && (limit == 0 || limit > maxPos-cfg.MaxCompletionLength) {
		limit = maxPos - cfg.MaxCompletionLength
	}
	if limit <= 0 {
		return Result{}, fmt.Errorf("grpo: %s %d leaves no room for a prompt in the model's %d positions", KeyMaxCompletionLength, cfg.MaxCompletionLength, maxPos)
	}
	trainSet, err := loadPrompts(cfg.Rows, cfg.Data, "the training rows", policy, limit)
	if err != nil {
		return Result{}, err
	}
	res := Result{Prompts: len(trainSet.items), Dropped: trainSet.dropped, Steps: cfg.Train.Steps, AdapterDir: finetune.AdapterDir(cfg.Out)}
	longest := trainSet.longest
	var held prompts
	if cfg.EvalRows != nil || cfg.EvalData != "" {
		if held, err = loadPrompts(cfg.EvalRows, cfg.EvalData, "the held-out rows", policy, limit); err != nil {
			return res, err
		}
		if cfg.EvalMax > 0 && len(held.items) > cfg.EvalMax {
			held.items = held.items[:cfg.EvalMax]
		}
		res.Dropped += held.dropped
		longest = max(longest, held.longest)
		res.EvalPrompts = len(held.items)
	}
	res.SeqLen = longest + cfg.MaxCompletionLength

	funcs, err := rewardFuncs(cfg, policy, res.SeqLen)
	if err != nil {
		return res, err
	}
	if err := policy.NewAdapter(cfg.LoRA); err != nil {
		return res, fmt.Errorf("grpo: %w", err)
	}
	r, err := newRunner(cfg, policy, funcs, res.SeqLen)
	if err != nil {
		return res, err
	}
	order := &finetune.PromptOrder{N: len(trainSet.items), Seed: cfg.Train.Seed}
	P := cfg.GenerationBatchSize / cfg.NumGenerations
	loop := &train.Loop{
		Config:   cfg.Train,
		Params:   policy.Params(),
		ZeroGrad: policy.ZeroGrad,
		Step: policy.LogMoE(func(ctx context.Context, step, micro int) (train.Metrics, error) {
			iter := step / mu
			if r.batch == nil || r.batch.Iteration != iter {
				idx := order.Batch(iter, P)
				ps := make([]prompt, len(idx))
				for i, k := range idx {
					ps[i] = trainSet.items[k]
				}
				start := time.Now()
				if err := r.generate(ctx, iter, ps); err != nil {
					return nil, err
				}
				res.RolloutTime += time.Since(start)
				res.RolloutTokens += r.batch.tokens()
				res.Batches = append(res.Batches, r.batch.Stats)
			}
			return r.update(micro, step)
		}),
		Hooks: train.Hooks{
			// The ranks share each generation batch's prompts (runner.sample)
			// and then its micro-batches; no data position moves.
			Skip:    func(step, micro int) error { return nil },
			State:   func() (json.RawMessage, error) { return r.state(r.loop.StepsDone()%mu == 0) },
			Restore: r.restore,
			Epoch:   func() float64 { return float64(r.loop.StepsDone()/mu*P) / float64(len(trainSet.items)) },
			SaveFiles: func(dir string) error {
				return saveAdapter(dir, policy)
			},
		},
	}
	r.loop, r.comm = loop, loop.Communicator()
	if len(held.items) > 0 {
		loop.Eval = func(ctx context.Context) (train.Metrics, error) {
			m, err := r.evaluate(ctx, held.items)
			if err != nil {
				return nil, err
			}
			res.Eval = m
			return m, nil
		}
	}
	if resuming {
		if err := loop.Resume(); err != nil {
			return res, fmt.Errorf("grpo: %w", err)
		}
	}
	if err := loop.Run(ctx); err != nil {
		return res, err
	}
	if r.batch != nil {
		res.Rewards = r.batch.Stats
	}
	if err := saveAdapter(cfg.Out, policy); err != nil {
		return res, err
	}
	if err := policy.CopyTokenizer(res.AdapterDir); err != nil {
		return res, fmt.Errorf("grpo: %w", err)
	}
	return res, nil
}

// saveAdapter writes the policy adapter (PEFT, CAUSAL_LM) into dir/adapter.
func saveAdapter(dir string, policy *finetune.Model) error {
	if err := policy.SaveAdapter(finetune.AdapterDir(dir), "CAUSAL_LM"); err != nil {
		return fmt.Errorf("grpo: %w", err)
	}
	return nil
}

// rewardFuncs builds the configured reward functions; the reward model
// reads the policy's weights in place when it was trained on them.
func rewardFuncs(cfg Config, policy *finetune.Model, T int) ([]rewardFunc, error) {
	var out []rewardFunc
	for _, name := range cfg.RewardFuncs {
		switch name {
		case RewardWorld:
			out = append(out, rowFunc(name, worldReward))
		case RewardExact:
			out = append(out, rowFunc(name, exactReward))
		case RewardFormat:
			out = append(out, rowFunc(name, formatReward))
		case RewardCommand:
			out = append(out, commandReward(strings.Fields(cfg.RewardCommand), time.Duration(cfg.RewardTimeout*float64(time.Second))))
		case RewardHTTP:
			out = append(out, httpReward(cfg.RewardURL, time.Duration(cfg.RewardTimeout*float64(time.Second))))
		case RewardModel:
			rm, err := finetune.OpenRewardModel(policy, cfg.Base, cfg.SFTAdapter, cfg.RewardSFTAdapter, cfg.RewardAdapter, cfg.BaseDtype)
			if err != nil {
				return nil, fmt.Errorf("grpo: %s: %w", KeyRewardAdapter, err)
			}
			s, err := finetune.NewScorer(rm, min(cfg.GenerationBatchSize, 8), T)
			if err != nil {
				return nil, fmt.Errorf("grpo: %w", err)
			}
			out = append(out, modelReward(s))
		}
	}
	return out, nil
}
