package main

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/dpo"
	"github.com/spf13/cobra"
)

var dpoCmd = &cobra.Command{
	Use:   "dpo",
	Short: "Direct preference optimisation of a LoRA adapter on preference pairs",
	Long: `Train a LoRA adapter with a DPO loss (Rafailov et al. 2023) on preference
pairs (prompt, chosen, rejected). The policy starts from the SFT result:
--sft-adapter is merged into --base (the merged model is written to
<out>/base and becomes the DPO adapter's base), and the reference is the same
model with the DPO adapter switched off. Pairs come from --data (a
preferences Arrow dataset, or any file 'gotune data import' reads, plain or
conversational) or, without it, from --world-pairs pairs of the built-in
world. With --precompute-ref the reference log-probabilities are computed
once and stored as ref_chosen_logps/ref_rejected_logps columns in
<out>/data/. Metrics with TRL's names (rewards/accuracies, …, and eval_ ones
on the held-out pairs) go to <out>/metrics.jsonl; the adapter to
<out>/adapter/.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "dpo"
		cfg := dpo.DefaultConfig()
		cfg.Base, cfg.SFTAdapter, cfg.Out = cfgString(s, dpo.KeyBase), cfgString(s, dpo.KeySFTAdapter), cfgString(s, dpo.KeyOut)
		cfg.Data, cfg.EvalData = cfgString(s, dpo.KeyData), cfgString(s, dpo.KeyEvalData)
		cfg.HeldOut, cfg.EvalMax = cfgFloat(s, dpo.KeyEvalFraction), cfgInt(s, dpo.KeyEvalPairs)
		cfg.Resume, cfg.PrecomputeRef = cfgBool(s, dpo.KeyResume), cfgBool(s, dpo.KeyPrecomputeRef)
		cfg.BaseDtype = cfgString(s, dpo.KeyBaseDtype)
		cfg.Pairs, cfg.MaxLen = cfgInt(s, dpo.KeyPairs), cfgInt(s, dpo.KeyMaxLen)
		cfg.Truncation, cfg.ChatTemplate = cfgString(s, dpo.KeyTruncation), cfgString(s, dpo.KeyChatTemplate)
		if b := cfgStringSlice(s, dpo.KeyBuckets); len(b) > 0 {
			buckets, err := parseInts(b)
			if err != nil {
				return fmt.Errorf("--%s: %w", dpo.KeyBuckets, err)
			}
			cfg.Buckets = buckets
		}
		lc := &cfg.Loss
		lc.Type, lc.Beta, lc.LabelSmoothing = dpo.LossType(cfgString(s, dpo.KeyLossType)), cfgFloat(s, dpo.KeyBeta), cfgFloat(s, dpo.KeyLabelSmoothing)
		lc.Gamma, lc.SFTWeight = cfgFloat(s, dpo.KeySimPOGamma), cfgFloat(s, dpo.KeyRPOAlpha)
		readFineTuneFlags(s, &cfg.LoRA, &cfg.Train)
		if cfg.Data == "" {
			if err := dpoWorldPairs(s, &cfg); err != nil {
				return err
			}
		}
		res, err := dpo.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		if e := res.Eval; e != nil {
			fmt.Fprintf(cmd.OutOrStdout(), "trained on %d pairs; held-out (%d pairs): rewards/accuracies %.3f, rewards/margins %.4f, loss %.4f; chosen preferred by the policy on %.1f%%, by the start on %.1f%%; adapter in %s\n",
				res.TrainPairs, e.Pairs, e.Metrics.RewardsAccuracies, e.Metrics.RewardsMargins, e.Metrics.Loss,
				100*e.PolicyPrefersChosen, 100*e.ReferencePrefersChosen, res.AdapterDir)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "trained on %d pairs (no held-out pairs); adapter in %s\n", res.TrainPairs, res.AdapterDir)
		}
		return nil
	},
}

// dpoWorldPairs gives cfg --world-pairs pairs of the built-in world's Train
// split and, without --eval-data, --world-eval-pairs pairs of its Valid
// split (none when 0: then an --eval-fraction of the training pairs is held
// out).
func dpoWorldPairs(s string, cfg *dpo.Config) error {
	n, err := worldCount(s, keyWorldPairs, dpo.KeyData)
	if err != nil {
		return err
	}
	held := cfgInt(s, keyWorldEvalPairs)
	if held < 0 {
		return fmt.Errorf("%s: %s must be ≥ 0, got %d", s, keyWorldEvalPairs, held)
	}
	w := world.New(int64(cfgInt(s, keyWorldSeed)))
	cfg.Rows = w.Preferences(world.Train, n).Rows()
	if cfg.EvalData == "" && held > 0 {
		cfg.EvalRows = w.Preferences(world.Valid, held).Rows()
	}
	return nil
}

func init() {
	d := dpo.DefaultConfig()
	types := make([]string, 0, 5)
	for _, t := range dpo.LossTypes() {
		types = append(types, string(t))
	}
	f := dpoCmd.Flags()
	f.String(dpo.KeyBase, "", "base model directory (default: the SFT adapter's base_model_name_or_path)")
	f.String(dpo.KeySFTAdapter, "", "SFT adapter merged into the base before training: the policy's start and the reference")
	f.String(dpo.KeyData, "", "preference dataset (.arrow, or a file to import); default: the built-in world")
	f.String(dpo.KeyEvalData, "", "held-out preference dataset")
	f.Float64(dpo.KeyEvalFraction, d.HeldOut, "fraction of --data held out when --eval-data is not given")
	f.Int(dpo.KeyEvalPairs, d.EvalMax, "held-out pairs evaluated at most (0: all)")
	f.Int(keyWorldPairs, 2000, "training pairs of the built-in world when --data is not given")
	f.Int(keyWorldEvalPairs, 128, "held-out pairs of the built-in world's valid split")
	f.Int64(keyWorldSeed, defaultWorldSeed, "seed of the built-in world")
	f.String(dpo.KeyLossType, string(d.Loss.Type), "loss: "+strings.Join(types, ", "))
	f.Float64(dpo.KeyBeta, d.Loss.Beta, "β, the strength of the KL constraint to the reference (SimPO: reward scale)")
	f.Float64(dpo.KeyLabelSmoothing, d.Loss.LabelSmoothing, "ε, assumed label-noise rate: cDPO with sigmoid, rDPO with robust")
	f.Float64(dpo.KeySimPOGamma, d.Loss.Gamma, "SimPO's target reward margin γ")
	f.Float64(dpo.KeyRPOAlpha, d.Loss.SFTWeight, "weight of the chosen completions' NLL added to the loss (0: off)")
	f.Bool(dpo.KeyPrecomputeRef, d.PrecomputeRef, "compute the reference log-probs once and store them as dataset columns")
	f.String(dpo.KeyBaseDtype, d.BaseDtype, "how the frozen base's embeddings and linear weights are held while training: float32, or bfloat16 (half the memory; products in float32)")
	f.Int(dpo.KeyPairs, d.Pairs, "preference pairs per micro-batch (2× rows per forward pass)")
	f.Int(dpo.KeyMaxLen, d.MaxLen, "tokens per row (prompt + completion) at most")
	f.StringSlice(dpo.KeyBuckets, nil, "allowed batch lengths, ascending (default: 32,64,… up to --max-len)")
	f.String(dpo.KeyTruncation, d.Truncation, "how long rows are cut: keep_start or keep_end")
	f.String(dpo.KeyChatTemplate, "", "template of conversational rows: auto, chatml, llama3, alpaca or jinja (default auto, as sft: the tokenizer's chat_template, else alpaca)")
	addFineTuneFlags(f, d.LoRA, d.Train, loopFlagUsage{steps: usageSteps, logEvery: usageLogEvery,
		seed: "seed of the data order, held-out split, adapter init and dropout"})
	f.String(dpo.KeyOut, "runs/default/dpo", "output directory")
	f.Bool(dpo.KeyResume, false, "continue from the checkpoint in --out")
	bindFlags(dpoCmd, "dpo")
	rootCmd.AddCommand(dpoCmd)
}
