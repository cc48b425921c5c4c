package main

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/sft"
	"github.com/spf13/cobra"
)

var sftCmd = &cobra.Command{
	Use:   "sft",
	Short: "Supervised fine-tuning with a LoRA adapter on an instructions dataset",
	Long: `Train a LoRA adapter on a frozen base model (--base, a Hugging Face model
directory) with the causal language-modelling loss of the completion tokens
(--train-on-inputs adds the prompt tokens). Rows come from --data (an
instructions Arrow dataset: instruction, input, output, optional system; or
conversations in a messages column, loss on every assistant turn) or,
without it, from --world-rows rows of the built-in world. Held-out loss and
perplexity are logged every --eval-every updates on --eval-data, else on the
world's validation items, else on an --eval-fraction of the training rows.
The output directory receives adapter/ (PEFT format), metrics.jsonl and the
resumable checkpoint in state/.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "sft"
		cfg := sft.DefaultConfig()
		cfg.Base, cfg.Data, cfg.EvalData, cfg.Out = cfgString(s, sft.KeyBase), cfgString(s, sft.KeyData), cfgString(s, sft.KeyEvalData), cfgString(s, sft.KeyOut)
		cfg.EvalFraction, cfg.EvalMax = cfgFloat(s, sft.KeyEvalFraction), cfgInt(s, sft.KeyEvalRows)
		cfg.Template, cfg.TrainOnInputs = cfgString(s, sft.KeyTemplate), cfgBool(s, sft.KeyTrainOnInputs)
		cfg.BatchSize, cfg.MaxLen, cfg.Truncation = cfgInt(s, sft.KeyBatchSize), cfgInt(s, sft.KeyMaxLen), cfgString(s, sft.KeyTruncation)
		cfg.Resume, cfg.Packing = cfgBool(s, sft.KeyResume), cfgBool(s, sft.KeyPacking)
		cfg.BaseDtype = cfgString(s, sft.KeyBaseDtype)
		if b := cfgStringSlice(s, sft.KeyBuckets); len(b) > 0 {
			buckets, err := parseInts(b)
			if err != nil {
				return fmt.Errorf("--%s: %w", sft.KeyBuckets, err)
			}
			cfg.Buckets = buckets
		}
		readFineTuneFlags(s, &cfg.LoRA, &cfg.Train)
		if cfg.Data == "" {
			if err := sftWorldRows(s, &cfg); err != nil {
				return err
			}
		}
		res, err := sft.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "trained %d adapter parameters on %d rows; held-out loss %.4f → %.4f (perplexity %.3f) on %d rows; adapter in %s\n",
			res.TrainableParams, res.TrainRows, res.BaseEvalLoss, res.EvalLoss, res.EvalPerplexity, res.EvalRows, res.AdapterDir)
		return nil
	},
}

// sftWorldRows gives cfg --world-rows rows of the built-in world's Train
// split and, without --eval-data, held-out rows of its Valid split:
// --eval-rows of them, or max(64, world rows / 20) when that is 0.
func sftWorldRows(s string, cfg *sft.Config) error {
	n, err := worldCount(s, keyWorldRows, sft.KeyData)
	if err != nil {
		return err
	}
	w := world.New(int64(cfgInt(s, keyWorldSeed)))
	cfg.Rows = w.Instructions(world.Train, n).Rows()
	if cfg.EvalData == "" {
		held := cfg.EvalMax
		if held == 0 {
			held = max(64, n/20)
		}
		cfg.EvalRows = w.Instructions(world.Valid, held).Rows()
	}
	return nil
}

// parseInts reads a list of integers given as flag values.
func parseInts(xs []string) ([]int, error) {
	var out []int
	for _, x := range xs {
		for _, f := range strings.FieldsFunc(x, func(r rune) bool { return r == ',' || r == ' ' }) {
			var n int
			if _, err := fmt.Sscan(f, &n); err != nil {
				return nil, fmt.Errorf("%q is not an integer", f)
			}
			out = append(out, n)
		}
	}
	return out, nil
}

func init() {
	d := sft.DefaultConfig()
	f := sftCmd.Flags()
	f.String(sft.KeyBase, "models/base", "base model directory (Hugging Face layout)")
	f.String(sft.KeyData, "", "instructions dataset (.arrow); default: the built-in world")
	f.Int(keyWorldRows, 2000, "rows of the built-in world to train on when --data is not given")
	f.Int64(keyWorldSeed, defaultWorldSeed, "seed of the built-in world")
	f.String(sft.KeyEvalData, "", "held-out instructions dataset (.arrow)")
	f.Float64(sft.KeyEvalFraction, d.EvalFraction, "fraction of --data held out when --eval-data is not given")
	f.Int(sft.KeyEvalRows, d.EvalMax, "held-out rows scored at most (0: all)")
	f.String(sft.KeyTemplate, d.Template, "prompt template: "+strings.Join(sft.Templates, ", ")+" (auto: the tokenizer's chat_template, else alpaca)")
	f.Bool(sft.KeyTrainOnInputs, d.TrainOnInputs, "take the loss on prompt tokens too")
	f.Int(sft.KeyBatchSize, d.BatchSize, "rows per micro-batch")
	f.Int(sft.KeyMaxLen, d.MaxLen, "tokens per row at most (0: min(512, the model's positions))")
	f.StringSlice(sft.KeyBuckets, nil, "allowed batch lengths, ascending (default: 64,128,256,512 up to --max-len)")
	f.String(sft.KeyTruncation, d.Truncation, "how long rows are cut: keep_start or keep_end")
	f.Bool(sft.KeyPacking, d.Packing, "pack training rows into rows of --max-len tokens, each attending only to itself")
	f.String(sft.KeyBaseDtype, d.BaseDtype, "how the frozen base's embeddings and linear weights are held: float32, or bfloat16 (half the memory; products in float32)")
	addFineTuneFlags(f, d.LoRA, d.Train, loopFlagUsage{steps: usageSteps, logEvery: usageLogEvery,
		seed: "seed of the data order, held-out split, adapter init and dropout"})
	f.String(sft.KeyOut, "runs/default/sft", "output directory")
	f.Bool(sft.KeyResume, false, "continue from the checkpoint in --out")
	bindFlags(sftCmd, "sft")
	rootCmd.AddCommand(sftCmd)
}
