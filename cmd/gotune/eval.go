package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/sft"
)

var evalCmd = &cobra.Command{
	Use:   "eval",
	Short: "Mean token loss and perplexity of a model on a text or an instructions dataset",
	Long: `Score a Hugging Face model directory on a text file (--text: a .jsonl
file of {"text": …} lines, or plain text with blank-line separated
documents, else one per line): each document is encoded with special tokens
and ended with EOS, and every token after the first is predicted once, in
windows of --seq-len tokens. The model directory's tokenizer.json is used
when present.

Or score it, with an optional LoRA adapter, on an instructions dataset
(--data: .arrow): rows are formatted with --template as SFT formats them,
and the loss is the mean over the completion tokens, as SFT's held-out
loss.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "eval"
		dir, text, ds := cfgString(s, "model"), cfgString(s, "text"), cfgString(s, "data")
		if dir == "" || (text == "") == (ds == "") {
			return fmt.Errorf("eval needs --model and one of --text and --data")
		}
		if ds != "" {
			res, err := sft.Evaluate(cmd.Context(), sft.EvalConfig{
				Base: dir, Adapter: cfgString(s, "adapter"), Data: ds, Max: cfgInt(s, "max-rows"),
				Template: cfgString(s, "template"), BatchSize: cfgInt(s, "batch-size"), MaxLen: cfgInt(s, "seq-len"),
			})
			if err != nil {
				return err
			}
			if cfgBool(s, "json") {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "loss %.4f  perplexity %.4f  completion tokens %d  rows %d\n", res.Loss, res.Perplexity, res.Tokens, res.Rows)
			return nil
		}
		if cfgString(s, "adapter") != "" {
			return fmt.Errorf("eval: --adapter applies to --data only")
		}
		res, err := pretrain.Evaluate(cmd.Context(), dir, text, pretrain.EvalOptions{
			Tokenizer: cfgString(s, "tokenizer"), SeqLen: cfgInt(s, "seq-len"), BatchSize: cfgInt(s, "batch-size"),
		})
		if err != nil {
			return err
		}
		if cfgBool(s, "json") {
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "loss %.4f  perplexity %.4f  tokens %d\n", res.Loss, res.Perplexity, res.Tokens)
		return nil
	},
}

func init() {
	f := evalCmd.Flags()
	f.String("model", "", "model directory (config.json, model.safetensors, tokenizer.json)")
	f.String("text", "", "text file to score")
	f.String("data", "", "instructions dataset (.arrow) to score on its completions")
	f.String("adapter", "", "PEFT LoRA adapter applied to the model (with --data)")
	f.String("template", "alpaca", "prompt format of --data rows: alpaca, chatml, llama3 or jinja")
	f.Int("max-rows", 0, "rows of --data scored at most (0: all)")
	f.String("tokenizer", "", "tokenizer to use when the model directory has none")
	f.Int("seq-len", 0, "window length; with --data, tokens per row at most (default: min(256, or 512 with --data, max_position_embeddings))")
	f.Int("batch-size", 8, "windows per forward pass")
	f.Bool("json", false, `print {"loss": …, "perplexity": …, "tokens": …} (and "rows" with --data)`)
	bindFlags(evalCmd, "eval")
	rootCmd.AddCommand(evalCmd)
}
