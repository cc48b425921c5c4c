package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/grpo"
)

var grpoCmd = &cobra.Command{
	Use:   "grpo",
	Short: "GRPO or RLOO of a LoRA policy with verifiable rewards",
	Long: `Train a policy by reinforcement learning with verifiable rewards, without a
critic: --base with --sft-adapter merged into it and a fresh LoRA adapter.
Every iteration takes --generation-batch-size / --num-generations prompts of
the instructions dataset --data (or of the built-in world), samples
--num-generations completions of each (prefilling the prompt once per
group), scores them with --reward-funcs (world: the built-in world's exact
checker; exact: the row's output column; format: one line ended by EOS;
command: --reward-command, one JSON object per completion on its stdin and
one score per line on its stdout; http: --reward-url, a JSON array of
those objects posted, a JSON array of scores back; model: a reward model
from "gotune reward"), weighted by --reward-weights, turns each group's rewards into
advantages (--advantage-estimator grpo or rloo, --scale-rewards group, batch
or none), and makes --num-iterations clipped updates (--epsilon,
--epsilon-high, --loss-type grpo, dapo or dr_grpo) with an optional k3 KL
penalty --beta to the reference (the adapter off). Options and metrics use
the names of TRL's GRPOTrainer (reward, reward_std, frac_reward_zero_std,
completions/mean_length, kl, clip_ratio/region_mean, rewards/<name>/mean,
…). The output directory receives adapter/ (PEFT, CAUSAL_LM; it applies on
top of the base with the SFT adapter merged), metrics.jsonl and the
resumable checkpoint in state/.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "grpo"
		cfg := grpo.DefaultConfig()
		cfg.Base, cfg.SFTAdapter, cfg.Out = cfgString(s, grpo.KeyBase), cfgString(s, grpo.KeySFTAdapter), cfgString(s, grpo.KeyOut)
		cfg.BaseDtype = cfgString(s, grpo.KeyBaseDtype)
		cfg.Data, cfg.EvalData, cfg.EvalMax = cfgString(s, grpo.KeyData), cfgString(s, grpo.KeyEvalData), cfgInt(s, grpo.KeyEvalMax)
		cfg.Iterations, cfg.NumGenerations = cfgInt(s, grpo.KeyIterations), cfgInt(s, grpo.KeyNumGenerations)
		cfg.GenerationBatchSize, cfg.NumIterations = cfgInt(s, grpo.KeyGenerationBatchSize), cfgInt(s, grpo.KeyNumIterations)
		cfg.MaxPromptLength, cfg.MaxCompletionLength = cfgInt(s, grpo.KeyMaxPromptLength), cfgInt(s, grpo.KeyMaxCompletionLength)
		cfg.Temperature, cfg.TopP = cfgFloat(s, grpo.KeyTemperature), cfgFloat(s, grpo.KeyTopP)
		cfg.Estimator, cfg.ScaleRewards, cfg.LossType = cfgString(s, grpo.KeyAdvantageEstimator), cfgString(s, grpo.KeyScaleRewards), cfgString(s, grpo.KeyLossType)
		cfg.Epsilon, cfg.EpsilonHigh, cfg.Beta = cfgFloat(s, grpo.KeyEpsilon), cfgFloat(s, grpo.KeyEpsilonHigh), cfgFloat(s, grpo.KeyBeta)
		cfg.RewardFuncs = cfgStringSlice(s, grpo.KeyRewardFuncs)
		cfg.RewardCommand, cfg.RewardTimeout = cfgString(s, grpo.KeyRewardCommand), cfgFloat(s, grpo.KeyRewardTimeout)
		cfg.RewardURL = cfgString(s, grpo.KeyRewardURL)
		cfg.RewardAdapter, cfg.RewardSFTAdapter = cfgString(s, grpo.KeyRewardAdapter), cfgString(s, grpo.KeyRewardSFTAdapter)
		cfg.RewardErrors, cfg.Resume = cfgString(s, grpo.KeyRewardErrors), cfgBool(s, grpo.KeyResume)
		var err error
		if cfg.RewardWeights, err = parseFloats(cfgStringSlice(s, grpo.KeyRewardWeights)); err != nil {
			return fmt.Errorf("grpo: %s: %w", grpo.KeyRewardWeights, err)
		}
		readFineTuneFlags(s, &cfg.LoRA, &cfg.Train)
		if len(cfg.RewardFuncs) == 0 { // the flag's documented default
			cfg.RewardFuncs = []string{grpo.RewardExact}
			if cfg.Data == "" {
				cfg.RewardFuncs = []string{grpo.RewardWorld}
			}
		}
		if cfg.Data == "" {
			if err := grpoWorldRows(s, &cfg); err != nil {
				return err
			}
		}
		res, err := grpo.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		var first, last float64
		if n := len(res.Batches); n > 0 {
			first, last = res.Batches[0]["reward"], res.Batches[n-1]["reward"]
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%d GRPO updates on %d prompts; mean reward %.3f → %.3f", res.Steps, res.Prompts, first, last)
		if r, ok := res.Eval["reward"]; ok {
			fmt.Fprintf(cmd.OutOrStdout(), ", held-out greedy reward %.3f on %d prompts", r, res.EvalPrompts)
		}
		if sec := res.RolloutTime.Seconds(); sec > 0 {
			fmt.Fprintf(cmd.OutOrStdout(), "; rollouts %.0f tokens/s", float64(res.RolloutTokens)/sec)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "; adapter in %s\n", res.AdapterDir)
		return nil
	},
}

// grpoWorldRows gives cfg --world-prompts tasks of the built-in world's
// Train split and, without --eval-data, 32 tasks of its Valid split.
func grpoWorldRows(s string, cfg *grpo.Config) error {
	n, err := worldCount(s, keyWorldPrompts, grpo.KeyData)
	if err != nil {
		return err
	}
	w := world.New(int64(cfgInt(s, keyWorldSeed)))
	cfg.Rows = w.Instructions(world.Train, n).Rows()
	if cfg.EvalData == "" {
		cfg.EvalRows = w.Instructions(world.Valid, 32).Rows()
	}
	return nil
}

// parseFloats reads a list of numbers given as flag values (nil for none).
func parseFloats(xs []string) ([]float64, error) {
	var out []float64
	for _, x := range xs {
		for _, f := range strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' }) {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a number", f)
			}
			out = append(out, v)
		}
	}
	return out, nil
}

func init() {
	d := grpo.DefaultConfig()
	f := grpoCmd.Flags()
	f.String(grpo.KeyBase, "models/base", "base model directory (Hugging Face layout)")
	f.String(grpo.KeySFTAdapter, "", "SFT adapter merged into the base before the policy adapter")
	f.String(grpo.KeyBaseDtype, d.BaseDtype, "how the frozen base's embeddings and linear weights are held while training and generating: float32, or bfloat16 (half the memory, half the bytes a generated token reads; products in float32)")
	f.String(grpo.KeyData, "", "instructions dataset (.arrow) of prompts and reference answers; default: the built-in world")
	f.Int(keyWorldPrompts, 400, "tasks of the built-in world when --data is not given")
	f.Int(keyWorldSeed, defaultWorldSeed, "seed of the built-in world")
	f.String(grpo.KeyEvalData, "", "held-out instructions dataset, answered greedily (default with the built-in world: 32 of its validation tasks)")
	f.Int(grpo.KeyEvalMax, d.EvalMax, "held-out rows evaluated at most (0: all)")
	f.Int(grpo.KeyIterations, d.Iterations, "generation batches")
	f.Int(grpo.KeyNumGenerations, d.NumGenerations, "completions per prompt, the group (num_generations)")
	f.Int(grpo.KeyGenerationBatchSize, d.GenerationBatchSize, "completions per generation batch, a multiple of --num-generations")
	f.Int(grpo.KeyNumIterations, d.NumIterations, "updates per generation batch (num_iterations, μ)")
	f.Int(grpo.KeyMaxPromptLength, d.MaxPromptLength, "prompts with more tokens are left out (0: the model's positions)")
	f.Int(grpo.KeyMaxCompletionLength, d.MaxCompletionLength, "completion tokens at most, EOS included")
	f.Float64(grpo.KeyTemperature, d.Temperature, "sampling temperature (1: exact on-policy)")
	f.Float64(grpo.KeyTopP, d.TopP, "nucleus sampling mass (1: off)")
	f.String(grpo.KeyAdvantageEstimator, d.Estimator, "advantage baseline: grpo (group mean) or rloo (leave-one-out)")
	f.String(grpo.KeyScaleRewards, d.ScaleRewards, "divide advantages by the std of the group, the batch, or none (Dr. GRPO)")
	f.String(grpo.KeyLossType, d.LossType, "loss aggregation: grpo (per sequence), dapo (per token) or dr_grpo (constant)")
	f.Float64(grpo.KeyEpsilon, d.Epsilon, "lower clip ε of the probability ratio")
	f.Float64(grpo.KeyEpsilonHigh, d.EpsilonHigh, "upper clip ε (DAPO's clip-higher; 0: --epsilon)")
	f.Float64(grpo.KeyBeta, d.Beta, "coefficient of the k3 KL penalty to the reference (0: none, no reference pass)")
	f.StringSlice(grpo.KeyRewardFuncs, nil, "reward functions: world, exact, format, command, http, model (default: world with the built-in world, exact with --data)")
	f.StringSlice(grpo.KeyRewardWeights, nil, "one weight per reward function (default: all 1)")
	f.String(grpo.KeyRewardCommand, "", "command of the command reward: JSON lines in, one score per line out")
	f.String(grpo.KeyRewardURL, "", "endpoint of the http reward: a JSON array of completions posted, a JSON array of scores back")
	f.Float64(grpo.KeyRewardTimeout, d.RewardTimeout, "seconds the reward command or endpoint may take per generation batch")
	f.String(grpo.KeyRewardAdapter, "", "reward model adapter (from gotune reward) of the model reward")
	f.String(grpo.KeyRewardSFTAdapter, grpo.SameAsPolicy, `SFT adapter the reward model was trained on: "" for the policy's own (weights shared), "none" for the plain base`)
	f.String(grpo.KeyRewardErrors, d.RewardErrors, "a failing reward: stop (name the prompt and completion) or zero (score 0, count in rewards/<name>/errors)")
	f.String(grpo.KeyOut, "runs/default/grpo", "output directory")
	f.Bool(grpo.KeyResume, false, "continue from the checkpoint in --out")
	// GRPO's updates follow from its iterations, so it has no --steps.
	addFineTuneFlags(f, d.LoRA, d.Train, loopFlagUsage{logEvery: "log metrics every N updates (0: once per generation batch)",
		seed: "seed of the prompt order, sampling, adapter init and dropout"})
	bindFlags(grpoCmd, "grpo")
	rootCmd.AddCommand(grpoCmd)
}
