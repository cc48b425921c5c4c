package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/ppo"
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
		cfg.Base, cfg.SFTAdapter, cfg.Out = cfgString(s, ppo.KeyBase), cfgString(s, ppo.KeySFTAdapter), cfgString(s, ppo.KeyOut)
		cfg.BaseDtype = cfgString(s, ppo.KeyBaseDtype)
		cfg.RewardAdapter, cfg.RewardSFTAdapter = cfgString(s, ppo.KeyRewardAdapter), cfgString(s, ppo.KeyRewardSFTAdapter)
		cfg.Prompts, cfg.EvalPrompts, cfg.EvalMax = cfgString(s, ppo.KeyPrompts), cfgString(s, ppo.KeyEvalPrompts), cfgInt(s, ppo.KeyEvalMax)
		cfg.Iterations, cfg.RolloutBatch = cfgInt(s, ppo.KeyIterations), cfgInt(s, ppo.KeyRolloutBatch)
		cfg.MiniBatches, cfg.Epochs = cfgInt(s, ppo.KeyMiniBatches), cfgInt(s, ppo.KeyPPOEpochs)
		cfg.MaxPromptLength, cfg.MaxNewTokens, cfg.Temperature = cfgInt(s, ppo.KeyMaxPromptLength), cfgInt(s, ppo.KeyMaxNewTokens), cfgFloat(s, ppo.KeyTemperature)
		cfg.MissingEOSPenalty, cfg.KLEstimator = cfgFloat(s, ppo.KeyMissingEOSPenalty), ppo.KLEstimator(cfgString(s, ppo.KeyKLEstimator))
		cfg.KLCoef, cfg.AdaptiveKL = cfgFloat(s, ppo.KeyKLCoef), cfgBool(s, ppo.KeyAdaptiveKL)
		cfg.KLTarget, cfg.KLHorizon = cfgFloat(s, ppo.KeyKLTarget), cfgFloat(s, ppo.KeyKLHorizon)
		cfg.Gamma, cfg.Lambda, cfg.WhitenRewards = cfgFloat(s, ppo.KeyGamma), cfgFloat(s, ppo.KeyLam), cfgBool(s, ppo.KeyWhitenRewards)
		cfg.ClipRange, cfg.ClipRangeValue, cfg.VFCoef = cfgFloat(s, ppo.KeyClipRange), cfgFloat(s, ppo.KeyClipRangeValue), cfgFloat(s, ppo.KeyVFCoef)
		cfg.ValueHeadStd, cfg.Resume = cfgFloat(s, ppo.KeyValueHeadStd), cfgBool(s, ppo.KeyResume)
		readFineTuneFlags(s, &cfg.LoRA, &cfg.Train)
		if cfg.Prompts == "" {
			if err := ppoWorldPrompts(s, &cfg); err != nil {
				return err
			}
		}
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

// ppoWorldPrompts gives cfg --world-prompts prompts of the built-in world's
// Train split and, without --eval-prompts, 32 prompts of its Valid split.
func ppoWorldPrompts(s string, cfg *ppo.Config) error {
	n, err := worldCount(s, keyWorldPrompts, ppo.KeyPrompts)
	if err != nil {
		return err
	}
	w := world.New(int64(cfgInt(s, keyWorldSeed)))
	cfg.PromptRows = w.Prompts(world.Train, n).Rows()
	if cfg.EvalPrompts == "" {
		cfg.EvalPromptRows = w.Prompts(world.Valid, 32).Rows()
	}
	return nil
}

func init() {
	d := ppo.DefaultConfig()
	f := ppoCmd.Flags()
	f.String(ppo.KeyBase, "models/base", "base model directory (Hugging Face layout)")
	f.String(ppo.KeySFTAdapter, "", "SFT adapter merged into the base before the policy adapter")
	f.String(ppo.KeyBaseDtype, d.BaseDtype, "how the frozen base's embeddings and linear weights are held while training and generating: float32, or bfloat16 (half the memory, half the bytes a generated token reads; products in float32)")
	f.String(ppo.KeyRewardAdapter, "runs/default/reward/adapter", "reward model adapter (from gotune reward)")
	f.String(ppo.KeyRewardSFTAdapter, ppo.SameAsPolicy, `SFT adapter the reward model was trained on: "" for the policy's own (weights shared), "none" for the plain base`)
	f.String(ppo.KeyPrompts, "", "prompts dataset (.arrow); default: the built-in world")
	f.Int(keyWorldPrompts, 400, "prompts of the built-in world when --prompts is not given")
	f.Int(keyWorldSeed, defaultWorldSeed, "seed of the built-in world")
	f.String(ppo.KeyEvalPrompts, "", "held-out prompts for eval_objective/* (default with the built-in world: 32 of its validation prompts)")
	f.Int(ppo.KeyEvalMax, d.EvalMax, "held-out prompts evaluated at most (0: all)")
	f.Int(ppo.KeyIterations, d.Iterations, "rollouts (total episodes / rollout batch)")
	f.Int(ppo.KeyRolloutBatch, d.RolloutBatch, "responses per rollout (TRL batch_size)")
	f.Int(ppo.KeyMiniBatches, d.MiniBatches, "minibatches per PPO epoch (num_mini_batches)")
	f.Int(ppo.KeyPPOEpochs, d.Epochs, "passes over each rollout (num_ppo_epochs)")
	f.Int(ppo.KeyMaxPromptLength, d.MaxPromptLength, "prompts with more tokens are left out (0: the model's positions)")
	f.Int(ppo.KeyMaxNewTokens, d.MaxNewTokens, "response tokens at most, EOS included (response_length)")
	f.Float64(ppo.KeyTemperature, d.Temperature, "sampling temperature of rollouts (1: exact on-policy)")
	f.Float64(ppo.KeyMissingEOSPenalty, d.MissingEOSPenalty, "subtracted from the score of a response without EOS")
	f.String(ppo.KeyKLEstimator, string(d.KLEstimator), "per-token KL estimator: k1 or k3")
	f.Float64(ppo.KeyKLCoef, d.KLCoef, "KL penalty coefficient β (its start with --adaptive-kl)")
	f.Bool(ppo.KeyAdaptiveKL, d.AdaptiveKL, "adapt β towards --kl-target (Ziegler et al. 2019)")
	f.Float64(ppo.KeyKLTarget, d.KLTarget, "target KL per response of the adaptive controller")
	f.Float64(ppo.KeyKLHorizon, d.KLHorizon, "horizon (responses) of the adaptive controller")
	f.Float64(ppo.KeyGamma, d.Gamma, "discount γ")
	f.Float64(ppo.KeyLam, d.Lambda, "GAE λ (1: Monte Carlo returns)")
	f.Bool(ppo.KeyWhitenRewards, d.WhitenRewards, "whiten the shaped rewards before GAE")
	f.Float64(ppo.KeyClipRange, d.ClipRange, "clip range ε of the probability ratio")
	f.Float64(ppo.KeyClipRangeValue, d.ClipRangeValue, "clip range of the value change")
	f.Float64(ppo.KeyVFCoef, d.VFCoef, "weight of the value loss")
	f.Float64(ppo.KeyValueHeadStd, d.ValueHeadStd, "standard deviation of the value head's initial weights (0: zeros)")
	f.String(ppo.KeyOut, "runs/default/ppo", "output directory")
	f.Bool(ppo.KeyResume, false, "continue from the checkpoint in --out")
	// PPO's updates follow from its iterations, so it has no --steps.
	addFineTuneFlags(f, d.LoRA, d.Train, loopFlagUsage{logEvery: "log metrics every N updates (0: once per rollout)",
		seed: "seed of the data order, sampling, adapter and head init, and dropout"})
	bindFlags(ppoCmd, "ppo")
	rootCmd.AddCommand(ppoCmd)
}
