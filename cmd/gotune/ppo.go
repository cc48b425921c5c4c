package main

import (
	"fmt"

	"github.com/gotune/gotune/ppo"
	"github.com/spf13/cobra"
)

var ppoCmd = &cobra.Command{
	Use:   "ppo",
	Short: "PPO-RLHF of a LoRA policy against a reward model",
	Long: `Train a policy with PPO: --base with --sft-adapter merged into it and a
fresh LoRA adapter; the reference policy is the same model with that adapter
off. Every iteration samples --rollout-batch responses of up to
--max-new-tokens tokens to prompts of --prompts (or of the built-in world),
scores them with the reward model (--reward-adapter, made by "gotune
reward", on the same base weights) at their last token, subtracts
--missing-eos-penalty from responses that did not end, adds a per-token KL
penalty (k1 or k3, fixed or adaptive coefficient), estimates advantages with
GAE(gamma, lam), and makes --ppo-epochs passes of --mini-batches clipped
policy and value updates. Metrics use TRL's names (objective/kl,
objective/scores, policy/clipfrac_avg, …). The output directory receives
adapter/ (PEFT, CAUSAL_LM; it applies on top of the base with the SFT adapter
merged), value_head.safetensors, metrics.jsonl and the resumable checkpoint
in state/.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "ppo"
		cfg := ppo.DefaultConfig()
		cfg.Base, cfg.SFTAdapter, cfg.Out = cfgString(s, "base"), cfgString(s, "sft-adapter"), cfgString(s, "out")
		cfg.RewardAdapter, cfg.RewardSFTAdapter = cfgString(s, "reward-adapter"), cfgString(s, "reward-sft-adapter")
		cfg.Prompts, cfg.EvalPrompts, cfg.EvalMax = cfgString(s, "prompts"), cfgString(s, "eval-prompts"), cfgInt(s, "eval-max")
		cfg.WorldPrompts, cfg.WorldSeed = cfgInt(s, "world-prompts"), int64(cfgInt(s, "world-seed"))
		cfg.Iterations, cfg.RolloutBatch, cfg.MiniBatches, cfg.Epochs = cfgInt(s, "iterations"), cfgInt(s, "rollout-batch"), cfgInt(s, "mini-batches"), cfgInt(s, "ppo-epochs")
		cfg.MaxPromptLength, cfg.MaxNewTokens, cfg.Temperature = cfgInt(s, "max-prompt-length"), cfgInt(s, "max-new-tokens"), cfgFloat(s, "temperature")
		cfg.MissingEOSPenalty, cfg.KLEstimator, cfg.KLCoef = cfgFloat(s, "missing-eos-penalty"), ppo.KLEstimator(cfgString(s, "kl-estimator")), cfgFloat(s, "kl-coef")
		cfg.AdaptiveKL, cfg.KLTarget, cfg.KLHorizon = cfgBool(s, "adaptive-kl"), cfgFloat(s, "kl-target"), cfgFloat(s, "kl-horizon")
		cfg.Gamma, cfg.Lambda, cfg.WhitenRewards = cfgFloat(s, "gamma"), cfgFloat(s, "lam"), cfgBool(s, "whiten-rewards")
		cfg.ClipRange, cfg.ClipRangeValue, cfg.VFCoef = cfgFloat(s, "cliprange"), cfgFloat(s, "cliprange-value"), cfgFloat(s, "vf-coef")
		cfg.ValueHeadStd, cfg.Resume = cfgFloat(s, "value-head-std"), cfgBool(s, "resume")
		readLoRA(s, &cfg.LoRA)
		readTrain(s, &cfg.Train)
		res, err := ppo.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		first := res.Last
		if len(res.Rollouts) > 0 {
			first = res.Rollouts[0]
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%d PPO updates on %d prompts; reward-model score %.3f → %.3f, KL %.3f nats, β %.4g; adapter in %s\n",
			res.Steps, res.Prompts, first.Scores, res.Last.Scores, res.Last.KL, res.KLCoef, res.AdapterDir)
		return nil
	},
}

func init() {
	d := ppo.DefaultConfig()
	f := ppoCmd.Flags()
	f.String("base", "models/base", "base model directory (Hugging Face layout)")
	f.String("sft-adapter", "", "SFT adapter merged into the base before the policy adapter")
	f.String("reward-adapter", "runs/default/reward/adapter", "reward model adapter (from gotune reward)")
	f.String("reward-sft-adapter", ppo.SameAsPolicy, `SFT adapter the reward model was trained on: "" for the policy's own (weights shared), "none" for the plain base`)
	f.String("prompts", "", "prompts dataset (.arrow); default: the built-in world")
	f.Int("world-prompts", 400, "prompts of the built-in world when --prompts is not given")
	f.Int("world-seed", int(d.WorldSeed), "seed of the built-in world")
	f.String("eval-prompts", "", "held-out prompts for eval_objective/* (default with the built-in world: 32 of its validation prompts)")
	f.Int("eval-max", d.EvalMax, "held-out prompts evaluated at most (0: all)")
	f.Int("iterations", d.Iterations, "rollouts (total episodes / rollout batch)")
	f.Int("rollout-batch", d.RolloutBatch, "responses per rollout (TRL batch_size)")
	f.Int("mini-batches", d.MiniBatches, "minibatches per PPO epoch (num_mini_batches)")
	f.Int("ppo-epochs", d.Epochs, "passes over each rollout (num_ppo_epochs)")
	f.Int("max-prompt-length", d.MaxPromptLength, "prompts with more tokens are left out (0: the model's positions)")
	f.Int("max-new-tokens", d.MaxNewTokens, "response tokens at most, EOS included (response_length)")
	f.Float64("temperature", d.Temperature, "sampling temperature of rollouts (1: exact on-policy)")
	f.Float64("missing-eos-penalty", d.MissingEOSPenalty, "subtracted from the score of a response without EOS")
	f.String("kl-estimator", string(d.KLEstimator), "per-token KL estimator: k1 or k3")
	f.Float64("kl-coef", d.KLCoef, "KL penalty coefficient β (its start with --adaptive-kl)")
	f.Bool("adaptive-kl", d.AdaptiveKL, "adapt β towards --kl-target (Ziegler et al. 2019)")
	f.Float64("kl-target", d.KLTarget, "target KL per response of the adaptive controller")
	f.Float64("kl-horizon", d.KLHorizon, "horizon (responses) of the adaptive controller")
	f.Float64("gamma", d.Gamma, "discount γ")
	f.Float64("lam", d.Lambda, "GAE λ (1: Monte Carlo returns)")
	f.Bool("whiten-rewards", d.WhitenRewards, "whiten the shaped rewards before GAE")
	f.Float64("cliprange", d.ClipRange, "clip range ε of the probability ratio")
	f.Float64("cliprange-value", d.ClipRangeValue, "clip range of the value change")
	f.Float64("vf-coef", d.VFCoef, "weight of the value loss")
	f.Float64("value-head-std", d.ValueHeadStd, "standard deviation of the value head's initial weights (0: zeros)")
	f.String("out", "runs/default/ppo", "output directory")
	addLoRAFlags(ppoCmd, d.LoRA.R, d.LoRA.Alpha, d.LoRA.Dropout, d.LoRA.Targets)
	addTrainFlags(ppoCmd, d.Train, false)
	ppoCmd.Flags().Lookup("log-every").Usage = "log metrics every N updates (0: once per rollout)"
	bindFlags(ppoCmd, "ppo")
	rootCmd.AddCommand(ppoCmd)
}
