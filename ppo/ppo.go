package ppo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/train"
)

// ValueHeadName is the value head in finetune.Model.Extra: a (1, C) matrix
// on the policy's final hidden states.
//
// The value function shares the policy's backbone (a "value head", as in
// Ziegler et al. 2019 and TRL's AutoModelForCausalLMWithValueHead) rather
// than being a second model initialised from the reward model (TRL's current
// PPOTrainer): one forward pass gives both log-probabilities and values, and
// no third copy of the network is trained. The value loss then also shapes
// the shared LoRA adapter, which VFCoef keeps small.
const ValueHeadName = "value"

// ValueHeadFile is where Run writes the trained value head (key
// "value.weight"), beside the policy adapter: it is needed to resume PPO but
// not to use the policy, so it stays out of the PEFT adapter.
const ValueHeadFile = "value_head.safetensors"

// SameAsPolicy and NoSFT are the RewardSFTAdapter values meaning that the
// reward model was trained on the policy's starting model or on the plain
// base (finetune's, shared by the RL stages).
const (
	SameAsPolicy = finetune.SameAsPolicy
	NoSFT        = finetune.NoSFT
)

// Keys of Config: the flags of `gotune ppo` and the keys under `ppo:` in a
// --config file. The adapter's and the loop's settings have lora's and
// train's keys.
const (
	KeyBase              = "base"
	KeyBaseDtype         = finetune.KeyBaseDtype
	KeySFTAdapter        = "sft-adapter"
	KeyRewardAdapter     = "reward-adapter"
	KeyRewardSFTAdapter  = "reward-sft-adapter"
	KeyPrompts           = "prompts"
	KeyEvalPrompts       = "eval-prompts"
	KeyEvalMax           = "eval-max"
	KeyOut               = "out"
	KeyResume            = "resume"
	KeyIterations        = "iterations"
	KeyRolloutBatch      = "rollout-batch"
	KeyMiniBatches       = "mini-batches"
	KeyPPOEpochs         = "ppo-epochs"
	KeyMaxPromptLength   = "max-prompt-length"
	KeyMaxNewTokens      = "max-new-tokens"
	KeyTemperature       = "temperature"
	KeyMissingEOSPenalty = "missing-eos-penalty"
	KeyKLEstimator       = "kl-estimator"
	KeyKLCoef            = "kl-coef"
	KeyAdaptiveKL        = "adaptive-kl"
	KeyKLTarget          = "kl-target"
	KeyKLHorizon         = "kl-horizon"
	KeyGamma             = "gamma"
	KeyLam               = "lam"
	KeyWhitenRewards     = "whiten-rewards"
	KeyClipRange         = "cliprange"
	KeyClipRangeValue    = "cliprange-value"
	KeyVFCoef            = "vf-coef"
	KeyValueHeadStd      = "value-head-std"
)

// Config is a PPO run (TRL's PPOConfig names in the comments). The policy
// is the base with the SFT adapter merged (when given) plus a fresh LoRA
// adapter; the reference policy is the same graph with that adapter
// switched off.
type Config struct {
	Base       string // base model directory
	SFTAdapter string // SFT adapter merged into the base before the policy adapter ("" for none)
	// BaseDtype is how the frozen base (merged with the SFT adapter) is
	// held while training and generating: finetune.BaseFloat32 (also "")
	// or finetune.BaseBFloat16 (half the memory of its matrices, and half
	// the bytes each generated token reads; products in float32). The
	// reward model holds its own base, when it has one, the same way.
	BaseDtype     string
	RewardAdapter string // reward stage's adapter directory (LoRA + score head)
	// RewardSFTAdapter is the SFT adapter the reward model was trained on:
	// SameAsPolicy ("", the usual SFT → RM → PPO order) makes the reward
	// model share the policy's base weights in memory, with no copy; NoSFT
	// ("none") or another adapter loads a second copy of the base.
	RewardSFTAdapter string
	// Prompts: PromptRows when given, else the prompts dataset at Prompts.
	PromptRows []data.Prompt
	Prompts    string
	// Held-out prompts for eval_objective/*: EvalPromptRows when given,
	// else the dataset at EvalPrompts ("" for none).
	EvalPromptRows []data.Prompt
	EvalPrompts    string
	EvalMax        int    // held-out prompts evaluated at most (0: all)
	Out            string // stage directory: adapter/, value_head.safetensors, state/, metrics.jsonl
	Resume         bool   // continue from the checkpoint in Out

	Iterations      int     // rollout batches (total_episodes / batch_size)
	RolloutBatch    int     // responses per rollout (batch_size)
	MiniBatches     int     // optimizer minibatches per epoch (num_mini_batches)
	Epochs          int     // passes over each rollout (num_ppo_epochs)
	MaxPromptLength int     // prompts with more tokens are left out (0: only the model's positions limit them)
	MaxNewTokens    int     // response tokens at most, EOS included (response_length)
	Temperature     float64 // sampling temperature of rollouts (temperature); see Run on τ ≠ 1

	MissingEOSPenalty float64     // subtracted from the score of a response without EOS (missing_eos_penalty)
	KLEstimator       KLEstimator // k1 or k3 (kl_estimator)
	KLCoef            float64     // β, or its start with AdaptiveKL (kl_coef / init_kl_coef)
	AdaptiveKL        bool        // steer β towards KLTarget (adap_kl_ctrl)
	KLTarget          float64     // target KL per response (target)
	KLHorizon         float64     // responses over which β adapts (horizon)
	Gamma, Lambda     float64     // discount γ and GAE λ (gamma, lam); λ = 1 gives Monte Carlo returns
	WhitenRewards     bool        // whiten the shaped rewards before GAE (whiten_rewards)
	ClipRange         float64     // ε of the probability ratio (cliprange)
	ClipRangeValue    float64     // ε of the value change (cliprange_value)
	VFCoef            float64     // weight of the value loss (vf_coef)
	ValueHeadStd      float64     // standard deviation of the value head's initial weights (0: zeros)

	LoRA lora.Config
	// Train is the optimizer and bookkeeping; its Steps is set by Run to
	// Iterations × Epochs × MiniBatches, each minibatch is split into
	// GradAccum micro-batches, and LogEvery 0 logs once per rollout.
	Train train.Config
}

// DefaultConfig is the embedded default: 40 rollouts of 32 responses of up
// to 12 tokens at temperature 1, 2 epochs of 2 minibatches at a learning
// rate of 2·10⁻³ decaying linearly, β = 0.05 (k1),
// a missing-EOS penalty of 1, GAE with γ = 1 and λ = 0.95, TRL's clip ranges
// and value weight, and a rank-8 LoRA policy adapter on every linear module
// without dropout (dropout would make the ratio of new to old
// probabilities noisy, so PPO turns it off).
func DefaultConfig() Config {
	tc, lc := finetune.OnPolicyDefaults()
	return Config{
		Iterations: 40, RolloutBatch: 32, MiniBatches: 2, Epochs: 2, MaxNewTokens: 12, Temperature: 1,
		MissingEOSPenalty: 1, KLEstimator: K1, KLCoef: 0.05, KLTarget: 6, KLHorizon: 10000,
		Gamma: 1, Lambda: 0.95, ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 0.1,
		BaseDtype: finetune.BaseFloat32, LoRA: lc, Train: tc,
	}
}

// Validate reports the first unusable setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Base == "":
		return fmt.Errorf("ppo: %s (the base model directory) is not set", KeyBase)
	case finetune.CheckBaseDtype(c.BaseDtype) != nil:
		return fmt.Errorf("ppo: %w", finetune.CheckBaseDtype(c.BaseDtype))
	case c.RewardAdapter == "":
		return fmt.Errorf("ppo: %s (the reward model's adapter) is not set", KeyRewardAdapter)
	case c.PromptRows == nil && c.Prompts == "":
		return fmt.Errorf("ppo: %s (a prompts dataset) is not set and no prompts are given", KeyPrompts)
	case c.Out == "":
		return fmt.Errorf("ppo: %s (the output directory) is not set", KeyOut)
	case c.Iterations <= 0:
		return fmt.Errorf("ppo: %s must be positive, got %d", KeyIterations, c.Iterations)
	case c.RolloutBatch <= 0:
		return fmt.Errorf("ppo: %s must be positive, got %d", KeyRolloutBatch, c.RolloutBatch)
	case c.MiniBatches <= 0:
		return fmt.Errorf("ppo: %s must be positive, got %d", KeyMiniBatches, c.MiniBatches)
	case c.Epochs <= 0:
		return fmt.Errorf("ppo: %s must be positive, got %d", KeyPPOEpochs, c.Epochs)
	case c.Train.GradAccum <= 0:
		return fmt.Errorf("ppo: %s must be positive, got %d", train.KeyGradAccum, c.Train.GradAccum)
	case c.RolloutBatch%(c.MiniBatches*c.Train.GradAccum) != 0:
		return fmt.Errorf("ppo: %s %d must split into %d minibatches (%s) of %d micro-batches (%s)",
			KeyRolloutBatch, c.RolloutBatch, c.MiniBatches, KeyMiniBatches, c.Train.GradAccum, train.KeyGradAccum)
	case c.MaxNewTokens <= 0:
		return fmt.Errorf("ppo: %s must be positive, got %d", KeyMaxNewTokens, c.MaxNewTokens)
	case c.MaxPromptLength < 0:
		return fmt.Errorf("ppo: %s must be ≥ 0 (0: the model's positions), got %d", KeyMaxPromptLength, c.MaxPromptLength)
	case c.EvalMax < 0:
		return fmt.Errorf("ppo: %s must be ≥ 0 (0: all), got %d", KeyEvalMax, c.EvalMax)
	case !(c.Temperature >= 0) || math.IsInf(c.Temperature, 0):
		return fmt.Errorf("ppo: %s must be ≥ 0 and finite, got %v", KeyTemperature, c.Temperature)
	case !(c.KLCoef >= 0) || math.IsInf(c.KLCoef, 0):
		return fmt.Errorf("ppo: %s must be ≥ 0 and finite, got %v", KeyKLCoef, c.KLCoef)
	case !(c.MissingEOSPenalty >= 0) || math.IsInf(c.MissingEOSPenalty, 0):
		return fmt.Errorf("ppo: %s must be ≥ 0 and finite, got %v", KeyMissingEOSPenalty, c.MissingEOSPenalty)
	case !(c.ClipRange > 0):
		return fmt.Errorf("ppo: %s must be positive, got %v", KeyClipRange, c.ClipRange)
	case !(c.ClipRangeValue > 0):
		return fmt.Errorf("ppo: %s must be positive, got %v", KeyClipRangeValue, c.ClipRangeValue)
	case !(c.VFCoef >= 0) || math.IsInf(c.VFCoef, 0):
		return fmt.Errorf("ppo: %s must be ≥ 0 and finite, got %v", KeyVFCoef, c.VFCoef)
	case !(c.ValueHeadStd >= 0) || math.IsInf(c.ValueHeadStd, 0):
		return fmt.Errorf("ppo: %s must be ≥ 0 and finite, got %v", KeyValueHeadStd, c.ValueHeadStd)
	case !(c.Gamma >= 0 && c.Gamma <= 1):
		return fmt.Errorf("ppo: %s must lie in [0, 1], got %v", KeyGamma, c.Gamma)
	case !(c.Lambda >= 0 && c.Lambda <= 1):
		return fmt.Errorf("ppo: %s must lie in [0, 1], got %v", KeyLam, c.Lambda)
	}
	if err := c.KLEstimator.Validate(); err != nil {
		return err
	}
	if c.AdaptiveKL {
		if err := (&AdaptiveKL{Value: c.KLCoef, Target: c.KLTarget, Horizon: c.KLHorizon}).Validate(); err != nil {
			return err
		}
	}
	if err := c.LoRA.Validate(); err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	if err := c.loop().Validate(); err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	return nil
}

// loop is the loop's configuration as Run uses it: Steps from the
// iterations, LogEvery 0 resolved to once per rollout, Dir the stage
// directory.
func (c Config) loop() train.Config {
	t := c.Train
	per := c.updatesPerRollout()
	t.Dir = c.Out
	t.Steps = c.Iterations * per
	if t.LogEvery == 0 {
		t.LogEvery = per
	}
	return t
}

// updatesPerRollout is the number of optimizer updates made on one rollout.
func (c Config) updatesPerRollout() int { return c.Epochs * c.MiniBatches }

// Result summarises a finished run.
type Result struct {
	Prompts, EvalPrompts int            // prompts used
	Dropped              int            // prompts longer than MaxPromptLength, left out
	Steps                int            // optimizer updates
	SeqLen               int            // T of the graphs: longest prompt + MaxNewTokens
	Last                 RolloutStats   // objective/* of the last rollout
	KLCoef               float64        // β at the end
	Eval                 train.Metrics  // last held-out metrics (nil without EvalPrompts)
	AdapterDir           string         // the policy adapter (it applies on top of the base with SFTAdapter merged)
	ValueHead            string         // the value head file
	Rollouts             []RolloutStats // objective/* of every rollout made by this call (not those before a resume)
}

// Run trains the policy with PPO (Schulman et al. 2017) against the reward
// model, as in Ziegler et al. 2019 and Ouyang et al. 2022: every iteration
// samples RolloutBatch responses with the generation engine (which reads the
// live policy adapter), scores them with the reward model at their last
// token, shapes per-token rewards with the KL penalty to the reference
// policy, estimates advantages with GAE, and makes Epochs passes of
// MiniBatches clipped policy and value updates over the rollout.
//
// The log-probabilities the losses and the KL use are those of the model's
// own distribution (temperature 1), as computed by the training graph; a
// Temperature other than 1 therefore samples slightly off-policy. Set it to
// 1 for exact on-policy PPO.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	// Under mpirun only rank 0 writes to Out (see train.Comm).
	out, cleanup, err := train.RankDir(cfg.Out)
	if err != nil {
		return Result{}, fmt.Errorf("ppo: %w", err)
	}
	defer cleanup()
	cfg.Out = out
	per := cfg.updatesPerRollout()
	cfg.Train = cfg.loop()
	resuming := cfg.Resume && train.HasCheckpoint(cfg.Out)
	if !resuming && train.HasCheckpoint(cfg.Out) {
		return Result{}, fmt.Errorf("ppo: %s holds a training checkpoint; resume it or choose another output directory", cfg.Out)
	}

	policy, err := finetune.OpenPolicyBase(cfg.Base, cfg.SFTAdapter)
	if err != nil {
		return Result{}, err
	}
	if err := policy.HoldBase(cfg.BaseDtype); err != nil {
		return Result{}, fmt.Errorf("ppo: %w", err)
	}
	if err := policy.SetMoEAuxLoss(cfg.Train.MoEAuxLossAlpha); err != nil {
		return Result{}, fmt.Errorf("ppo: %w", err)
	}
	if err := policy.SetGradientCheckpointing(cfg.Train.GradientCheckpointing); err != nil {
		return Result{}, fmt.Errorf("ppo: %w", err)
	}
	rm, err := finetune.OpenRewardModel(policy, cfg.Base, cfg.SFTAdapter, cfg.RewardSFTAdapter, cfg.RewardAdapter, cfg.BaseDtype)
	if err != nil {
		return Result{}, fmt.Errorf("ppo: %w", err)
	}
	enc, err := finetune.NewSequenceEncoder(policy.Tokenizer)
	if err != nil {
		return Result{}, fmt.Errorf("ppo: %w", err)
	}
	maxPos := policy.Weights.Config.MaxPositionEmbeddings
	limit := cfg.MaxPromptLength
	if maxPos > 0 && (limit == 0 || limit > maxPos-cfg.MaxNewTokens) {
		limit = maxPos - cfg.MaxNewTokens
	}
	if limit <= 0 {
		return Result{}, fmt.Errorf("ppo: %d new tokens leave no room for a prompt in the model's %d positions", cfg.MaxNewTokens, maxPos)
	}
	src := filePrompts(cfg.Prompts)
	if cfg.PromptRows != nil {
		src = givenPrompts("the training prompts", cfg.PromptRows)
	}
	var evalSrc promptSource // none when its name is ""
	switch {
	case cfg.EvalPromptRows != nil:
		evalSrc = givenPrompts("the held-out prompts", cfg.EvalPromptRows)
	case cfg.EvalPrompts != "":
		evalSrc = filePrompts(cfg.EvalPrompts)
	}
	prompts, dropped, longest, err := loadPrompts(src, enc, limit)
	if err != nil {
		return Result{}, err
	}
	var evalPrompts [][]int
	if evalSrc.name != "" {
		var d, l int
		if evalPrompts, d, l, err = loadPrompts(evalSrc, enc, limit); err != nil {
			return Result{}, err
		}
		dropped += d
		longest = max(longest, l)
		if cfg.EvalMax > 0 && len(evalPrompts) > cfg.EvalMax {
			evalPrompts = evalPrompts[:cfg.EvalMax]
		}
	}
	res := Result{Prompts: len(prompts), EvalPrompts: len(evalPrompts), Dropped: dropped, Steps: cfg.Train.Steps,
		SeqLen: longest + cfg.MaxNewTokens, AdapterDir: finetune.AdapterDir(cfg.Out), ValueHead: filepath.Join(cfg.Out, ValueHeadFile)}

	if err := policy.NewAdapter(cfg.LoRA); err != nil {
		return res, fmt.Errorf("ppo: %w", err)
	}
	policy.Extra[ValueHeadName] = newHead(policy.Weights.Config.HiddenSize, cfg.ValueHeadStd, cfg.Train.Seed)
	r, err := newRunner(ctx, cfg, policy, rm, res.SeqLen)
	if err != nil {
		return res, err
	}
	order := &finetune.PromptOrder{N: len(prompts), Seed: cfg.Train.Seed}
	loop := &train.Loop{
		Config:   cfg.Train,
		Params:   policy.Params(),
		ZeroGrad: policy.ZeroGrad,
		Step: policy.LogMoE(func(ctx context.Context, step, micro int) (train.Metrics, error) {
			iter := step / per
			if r.roll == nil || r.roll.Iteration != iter {
				idx := order.Batch(iter, cfg.RolloutBatch)
				batch := make([][]int, len(idx))
				for i, k := range idx {
					batch[i] = prompts[k]
				}
				if err := r.rollout(ctx, iter, batch); err != nil {
					return nil, err
				}
				res.Rollouts = append(res.Rollouts, r.roll.Stats)
			}
			within := step % per
			return r.update(within/cfg.MiniBatches, within%cfg.MiniBatches, micro, step)
		}),
		Hooks: train.Hooks{
			// The ranks share each rollout's prompts (runner.sample) and then
			// its updates' micro-batches; no data position moves.
			Skip: func(step, micro int) error { return nil },
			State: func() (json.RawMessage, error) {
				return r.state(r.loop.StepsDone()%per == 0)
			},
			Restore: r.restore,
			Epoch:   func() float64 { return float64(r.loop.StepsDone()) / float64(per) },
			SaveFiles: func(dir string) error {
				return saveOutputs(dir, policy)
			},
		},
	}
	r.loop, r.comm = loop, loop.Communicator()
	if len(evalPrompts) > 0 {
		loop.Eval = func(ctx context.Context) (train.Metrics, error) {
			s, err := r.evaluate(ctx, evalPrompts)
			if err != nil {
				return nil, err
			}
			res.Eval = train.Metrics(s.Map())
			return res.Eval, nil
		}
	}
	if resuming {
		if err := loop.Resume(); err != nil {
			return res, fmt.Errorf("ppo: %w", err)
		}
	}
	if err := loop.Run(ctx); err != nil {
		return res, err
	}
	if r.roll != nil {
		res.Last = r.roll.Stats
	}
	res.KLCoef = r.kl.Coef()
	if err := saveOutputs(cfg.Out, policy); err != nil {
		return res, err
	}
	if err := policy.CopyTokenizer(res.AdapterDir); err != nil {
		return res, fmt.Errorf("ppo: %w", err)
	}
	return res, nil
}

// saveOutputs writes the policy adapter (PEFT, CAUSAL_LM, without the
// value head) into dir/adapter and the value head into dir/ValueHeadFile.
func saveOutputs(dir string, policy *finetune.Model) error {
	if err := policy.Adapter.Save(finetune.AdapterDir(dir), policy.BaseDir, "CAUSAL_LM", nil); err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	v := policy.Extra[ValueHeadName]
	t := safetensors.Tensor{Name: ValueHeadName + ".weight", Shape: v.Shape().Clone(), Data: model.F32(v)}
	if err := safetensors.WriteFile(filepath.Join(dir, ValueHeadFile), []safetensors.Tensor{t}, nil, safetensors.F32); err != nil {
		return fmt.Errorf("ppo: value head: %w", err)
	}
	return nil
}

// promptSource calls fn with every row of a prompts dataset.
type promptSource struct {
	name   string
	stream func(fn func(row int, p data.Prompt) error) error
}

func filePrompts(path string) promptSource {
	return promptSource{path, func(fn func(int, data.Prompt) error) error { return data.StreamPrompts(path, fn) }}
}

func givenPrompts(name string, rows []data.Prompt) promptSource {
	return promptSource{name, func(fn func(int, data.Prompt) error) error {
		for i, p := range rows {
			if err := fn(i, p); err != nil {
				return err
			}
		}
		return nil
	}}
}

// loadPrompts encodes a prompts dataset, leaving out prompts of more than
// limit tokens; it returns the prompts kept, how many were left out and the
// longest kept.
func loadPrompts(src promptSource, enc *finetune.SequenceEncoder, limit int) (out [][]int, dropped, longest int, err error) {
	path := src.name
	err = src.stream(func(row int, p data.Prompt) error {
		ids, err := enc.Prompt(p.Prompt, p.Messages)
		if err != nil {
			return fmt.Errorf("%s: row %d: %w", path, row+1, err)
		}
		if len(ids) == 0 {
			return fmt.Errorf("%s: row %d: the prompt encodes to no tokens", path, row+1)
		}
		if len(ids) > limit {
			dropped++
			return nil
		}
		out = append(out, ids)
		longest = max(longest, len(ids))
		return nil
	})
	if err != nil {
		return nil, 0, 0, fmt.Errorf("ppo: %w", err)
	}
	if len(out) == 0 {
		return nil, dropped, 0, fmt.Errorf("ppo: no prompts left in %s (%d longer than %d tokens)", path, dropped, limit)
	}
	return out, dropped, longest, nil
}

// engine returns the generation engine over the policy's weights, reading
// the live policy adapter.
func newEngine(policy *finetune.Model) (*generate.Engine, error) {
	e, err := generate.New(policy.Weights, nil)
	if err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	e.SetAdapter(policy.Adapter)
	return e, nil
}
