package main

import (
	"fmt"
	"strings"

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
		cfg.Base, cfg.SFTAdapter, cfg.Out = cfgString(s, "base"), cfgString(s, "sft-adapter"), cfgString(s, "out")
		cfg.Data, cfg.EvalData, cfg.HeldOut, cfg.EvalMax = cfgString(s, "data"), cfgString(s, "eval-data"), cfgFloat(s, "eval-fraction"), cfgInt(s, "eval-pairs")
		cfg.WorldPairs, cfg.WorldEvalPairs, cfg.WorldSeed = cfgInt(s, "world-pairs"), cfgInt(s, "world-eval-pairs"), int64(cfgInt(s, "world-seed"))
		cfg.Resume, cfg.PrecomputeRef = cfgBool(s, "resume"), cfgBool(s, "precompute-ref")
		cfg.Pairs, cfg.MaxLen, cfg.Truncation, cfg.ChatTemplate = cfgInt(s, "pairs"), cfgInt(s, "max-len"), cfgString(s, "truncation"), cfgString(s, "chat-template")
		if b := cfgStringSlice(s, "buckets"); len(b) > 0 {
			buckets, err := parseInts(b)
			if err != nil {
				return fmt.Errorf("--buckets: %w", err)
			}
			cfg.Buckets = buckets
		}
		lc := &cfg.Loss
		lc.Type, lc.Beta, lc.LabelSmoothing = dpo.LossType(cfgString(s, "loss-type")), cfgFloat(s, "beta"), cfgFloat(s, "label-smoothing")
		lc.Gamma, lc.SFTWeight = cfgFloat(s, "simpo-gamma"), cfgFloat(s, "rpo-alpha")
		readFineTuneFlags(s, &cfg.LoRA, &cfg.Train)
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

func init() {
	d := dpo.DefaultConfig()
	types := make([]string, 0, 5)
	for _, t := range dpo.LossTypes() {
		types = append(types, string(t))
	}
	f := dpoCmd.Flags()
	f.String("base", "", "base model directory (default: the SFT adapter's base_model_name_or_path)")
	f.String("sft-adapter", "", "SFT adapter merged into the base before training: the policy's start and the reference")
	f.String("data", "", "preference dataset (.arrow, or a file to import); default: the built-in world")
	f.String("eval-data", "", "held-out preference dataset")
	f.Float64("eval-fraction", d.HeldOut, "fraction of --data held out when --eval-data is not given")
	f.Int("eval-pairs", d.EvalMax, "held-out pairs evaluated at most (0: all)")
	f.Int("world-pairs", d.WorldPairs, "training pairs of the built-in world when --data is not given")
	f.Int("world-eval-pairs", d.WorldEvalPairs, "held-out pairs of the built-in world's valid split")
	f.Int64("world-seed", d.WorldSeed, "seed of the built-in world")
	f.String("loss-type", string(d.Loss.Type), "loss: "+strings.Join(types, ", "))
	f.Float64("beta", d.Loss.Beta, "β, the strength of the KL constraint to the reference (SimPO: reward scale)")
	f.Float64("label-smoothing", d.Loss.LabelSmoothing, "ε, assumed label-noise rate: cDPO with sigmoid, rDPO with robust")
	f.Float64("simpo-gamma", d.Loss.Gamma, "SimPO's target reward margin γ")
	f.Float64("rpo-alpha", d.Loss.SFTWeight, "weight of the chosen completions' NLL added to the loss (0: off)")
	f.Bool("precompute-ref", false, "compute the reference log-probs once and store them as dataset columns")
	f.Int("pairs", d.Pairs, "preference pairs per micro-batch (2× rows per forward pass)")
	f.Int("max-len", d.MaxLen, "tokens per row (prompt + completion) at most")
	f.StringSlice("buckets", nil, "allowed batch lengths, ascending (default: 32,64,… up to --max-len)")
	f.String("truncation", d.Truncation, "how long rows are cut: keep_start or keep_end")
	f.String("chat-template", "", "template of conversational rows: chatml, llama3, alpaca or jinja (default: the tokenizer's)")
	addFineTuneFlags(f, d.LoRA, d.Train)
	f.String("out", "runs/default/dpo", "output directory")
	f.Bool("resume", false, "continue from the checkpoint in --out")
	f.Bool("quiet", false, "no progress bar")
	bindFlags(dpoCmd, "dpo")
	rootCmd.AddCommand(dpoCmd)
}
