package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/onpolicy"
)

// Section of `gotune pairs` in a --config file, and the keys of its CLI-only flags
// (the sampling keys are onpolicy's constants).
const (
	sectionPairs = "pairs"

	pairsKeyData        = "data"
	pairsKeyOut         = "out"
	pairsKeyKeepUnmined = "keep-unmined"
)

// pairsMaxTokens is the default answer length of `gotune pairs`; it is not
// onpolicy.DefaultConfig's, which the pipeline uses for the built-in
// world's short answers.
const pairsMaxTokens = 64

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
		const s = sectionPairs
		in, out := cfgString(s, pairsKeyData), cfgString(s, pairsKeyOut)
		if in == "" || out == "" {
			return fmt.Errorf("pairs needs --%s and --%s", pairsKeyData, pairsKeyOut)
		}
		c := onpolicy.DefaultConfig()
		c.Samples, c.MaxTokens = cfgInt(s, onpolicy.KeySamples), cfgInt(s, onpolicy.KeyMaxTokens)
		c.Temperature, c.TopP = cfgFloat(s, onpolicy.KeyTemperature), cfgFloat(s, onpolicy.KeyTopP)
		c.Stop, c.Seed = cfgStringSlice(s, onpolicy.KeyStop), cfg.GetUint64(configKey(s, onpolicy.KeySeed))
		if err := c.Validate(); err != nil {
			return err
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
		// The prompt is encoded as DPO and reward modelling encode it.
		c.Encode = func(p string) []int { return tok.EncodePromptCompletion(p, "", true, false).IDs }
		mined, index, rep, err := onpolicy.Mine(cmd.Context(), engine, tasks, c)
		if err != nil {
			return err
		}
		var result []data.Preference
		if cfgBool(s, pairsKeyKeepUnmined) {
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
	d := onpolicy.DefaultConfig()
	modelFlags(pairsCmd)
	f := pairsCmd.Flags()
	f.String(pairsKeyData, "", "preferences dataset (.arrow) whose prompts and chosen answers are used")
	f.String(pairsKeyOut, "", "preferences dataset to write (.arrow)")
	f.Int(onpolicy.KeySamples, d.Samples, "answers sampled per prompt")
	f.Float64(onpolicy.KeyTemperature, d.Temperature, "sampling temperature (0: greedy)")
	f.Float64(onpolicy.KeyTopP, d.TopP, "nucleus sampling mass")
	f.Int(onpolicy.KeyMaxTokens, pairsMaxTokens, "new tokens per answer")
	f.StringSlice(onpolicy.KeyStop, d.Stop, "stop strings (repeatable)")
	f.Uint64(onpolicy.KeySeed, d.Seed, "sampling seed")
	f.Bool(pairsKeyKeepUnmined, true, "keep rows the model always answered right, with their own rejected answer")
	bindFlags(pairsCmd, sectionPairs)
	rootCmd.AddCommand(pairsCmd)
}
