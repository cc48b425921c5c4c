package main

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/sft"
	"github.com/spf13/cobra"
)

var sftCmd = &cobra.Command{
	Use:   "sft",
	Short: "Supervised fine-tuning with a LoRA adapter on an instructions dataset",
	Long: `Train a LoRA adapter on a frozen base model (--base, a Hugging Face model
directory) with the causal language-modelling loss of the completion tokens
(--train-on-inputs adds the prompt tokens). Rows come from --data (an
instructions Arrow dataset: instruction, input, output, optional system) or,
without it, from --world-rows rows of the built-in world. Held-out loss and
perplexity are logged every --eval-every updates on --eval-data, else on the
world's validation items, else on an --eval-fraction of the training rows.
The output directory receives adapter/ (PEFT format), metrics.jsonl and the
resumable checkpoint in state/.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "sft"
		cfg := sft.DefaultConfig()
		cfg.Base, cfg.Data, cfg.EvalData, cfg.Out = cfgString(s, "base"), cfgString(s, "data"), cfgString(s, "eval-data"), cfgString(s, "out")
		cfg.WorldRows, cfg.WorldSeed = cfgInt(s, "world-rows"), int64(cfgInt(s, "world-seed"))
		cfg.EvalFraction, cfg.EvalMax = cfgFloat(s, "eval-fraction"), cfgInt(s, "eval-rows")
		cfg.Template, cfg.TrainOnInputs = cfgString(s, "template"), cfgBool(s, "train-on-inputs")
		cfg.BatchSize, cfg.MaxLen, cfg.Truncation = cfgInt(s, "batch-size"), cfgInt(s, "max-len"), cfgString(s, "truncation")
		cfg.Resume = cfgBool(s, "resume")
		if b := cfgStringSlice(s, "buckets"); len(b) > 0 {
			buckets, err := parseInts(b)
			if err != nil {
				return fmt.Errorf("--buckets: %w", err)
			}
			cfg.Buckets = buckets
		}
		readFineTuneFlags(s, &cfg.LoRA, &cfg.Train)
		res, err := sft.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "trained %d adapter parameters on %d rows; held-out loss %.4f → %.4f (perplexity %.3f) on %d rows; adapter in %s\n",
			res.TrainableParams, res.TrainRows, res.BaseEvalLoss, res.EvalLoss, res.EvalPerplexity, res.EvalRows, res.AdapterDir)
		return nil
	},
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
	f.String("base", "models/base", "base model directory (Hugging Face layout)")
	f.String("data", "", "instructions dataset (.arrow); default: the built-in world")
	f.Int("world-rows", 2000, "rows of the built-in world to train on when --data is not given")
	f.Int64("world-seed", d.WorldSeed, "seed of the built-in world")
	f.String("eval-data", "", "held-out instructions dataset (.arrow)")
	f.Float64("eval-fraction", d.EvalFraction, "fraction of --data held out when --eval-data is not given")
	f.Int("eval-rows", d.EvalMax, "held-out rows scored at most (0: all)")
	f.String("template", d.Template, "prompt template: "+strings.Join(sft.Templates, ", "))
	f.Bool("train-on-inputs", false, "take the loss on prompt tokens too")
	f.Int("batch-size", d.BatchSize, "rows per micro-batch")
	f.Int("max-len", d.MaxLen, "tokens per row at most (0: min(512, the model's positions))")
	f.StringSlice("buckets", nil, "allowed batch lengths, ascending (default: 64,128,256,512 up to --max-len)")
	f.String("truncation", d.Truncation, "how long rows are cut: keep_start or keep_end")
	addFineTuneFlags(f, d.LoRA, d.Train)
	f.String("out", "runs/default/sft", "output directory")
	f.Bool("resume", false, "continue from the checkpoint in --out")
	f.Bool("quiet", false, "no progress bar")
	bindFlags(sftCmd, "sft")
	rootCmd.AddCommand(sftCmd)
}
