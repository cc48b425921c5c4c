package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/onpolicy"
)

var pairsCmd = &cobra.Command{
	Use:   "pairs",
	Short: "Pair each prompt's chosen answer with the model's own wrong answer (on-policy preference data)",
	Long: `Samples --samples answers from the model for every prompt of a preferences
dataset (standard prompt/chosen/rejected rows), judges them by exact match
against the chosen answer (up to white space), and writes a preferences
dataset whose rejected answer is the model's most frequent wrong answer.
Rows the model always answered right keep their own rejected answer
(--keep-unmined, the default) or are left out. Reward modelling and DPO on
the result learn from the mistakes the model makes (SPIN, Chen et al. 2024;
Iterative RPO, Pang et al. 2024).`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, args []string) error {
		const s = "pairs"
		in, out := cfgString(s, "data"), cfgString(s, "out")
		if in == "" || out == "" {
			return fmt.Errorf("pairs needs --data and --out")
		}
		rows, err := data.ReadPreferences(in)
		if err != nil {
			return err
		}
		tasks := make([]onpolicy.Task, len(rows))
		for i, r := range rows {
			if r.Conversational() {
				return fmt.Errorf("pairs: %s row %d: conversational rows are not supported; use the standard prompt/chosen/rejected form", in, i)
			}
			tasks[i] = onpolicy.Task{Prompt: r.Prompt, Answer: r.Chosen}
		}
		engine, tok, err := loadEngine(s)
		if err != nil {
			return err
		}
		c := onpolicy.Config{
			Samples: cfgInt(s, "samples"), Temperature: cfgFloat(s, "temperature"), TopP: cfgFloat(s, "top-p"),
			MaxTokens: cfgInt(s, "max-tokens"), Stop: cfgStringSlice(s, "stop"), Seed: cfg.GetUint64(configKey(s, "seed")),
			// The prompt is encoded as DPO and reward modelling encode it.
			Encode: func(p string) []int { return tok.EncodePromptCompletion(p, "", true, false).IDs },
		}
		mined, index, rep, err := onpolicy.Mine(cmd.Context(), engine, tasks, c)
		if err != nil {
			return err
		}
		var result []data.Preference
		if cfgBool(s, "keep-unmined") {
			result = rows
			for k, i := range index {
				result[i] = mined[k]
			}
		} else {
			result = mined
		}
		if err := data.WritePreferences(out, result); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "%s; wrote %d rows to %s\n", rep, len(result), out)
		return nil
	},
}

func init() {
	modelFlags(pairsCmd)
	f := pairsCmd.Flags()
	f.String("data", "", "preferences dataset (.arrow) whose prompts and chosen answers are used")
	f.String("out", "", "preferences dataset to write (.arrow)")
	f.Int("samples", 4, "answers sampled per prompt")
	f.Float64("temperature", 1, "sampling temperature")
	f.Float64("top-p", 1, "nucleus sampling mass")
	f.Int("max-tokens", 64, "new tokens per answer")
	f.StringSlice("stop", nil, "stop strings (repeatable)")
	f.Uint64("seed", 0, "sampling seed")
	f.Bool("keep-unmined", true, "keep rows the model always answered right, with their own rejected answer")
	bindFlags(pairsCmd, "pairs")
	rootCmd.AddCommand(pairsCmd)
}
