package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/eval"
	"github.com/gotune/gotune/finetune"
)

// evalKeyJSON is the output switch of `gotune eval` (no field of
// eval.Config: it chooses how the result is printed).
const evalKeyJSON = "json"

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
		cfg := eval.Config{
			Model: cfgString(s, eval.KeyModel), Text: cfgString(s, eval.KeyText), Data: cfgString(s, eval.KeyData),
			Adapter: cfgString(s, eval.KeyAdapter), Template: cfgString(s, eval.KeyTemplate), MaxRows: cfgInt(s, eval.KeyMaxRows),
			Tokenizer: cfgString(s, eval.KeyTokenizer), SeqLen: cfgInt(s, eval.KeySeqLen), BatchSize: cfgInt(s, eval.KeyBatchSize),
		}
		res, err := eval.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		if cfgBool(s, evalKeyJSON) {
			return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
		}
		if cfg.Data != "" {
			fmt.Fprintf(cmd.OutOrStdout(), "loss %.4f  perplexity %.4f  completion tokens %d  rows %d\n", res.Loss, res.Perplexity, res.Tokens, res.Rows)
		} else {
			fmt.Fprintf(cmd.OutOrStdout(), "loss %.4f  perplexity %.4f  tokens %d\n", res.Loss, res.Perplexity, res.Tokens)
		}
		return nil
	},
}

func init() {
	d := eval.DefaultConfig()
	f := evalCmd.Flags()
	f.String(eval.KeyModel, d.Model, "model directory (config.json, model.safetensors, tokenizer.json)")
	f.String(eval.KeyText, d.Text, "text file to score")
	f.String(eval.KeyData, d.Data, "instructions dataset (.arrow) to score on its completions")
	f.String(eval.KeyAdapter, d.Adapter, "PEFT LoRA adapter applied to the model (with --data)")
	f.String(eval.KeyTemplate, d.Template, "prompt format of --data rows: "+strings.Join(finetune.InstructionTemplates, ", "))
	f.Int(eval.KeyMaxRows, d.MaxRows, "rows of --data scored at most (0: all)")
	f.String(eval.KeyTokenizer, d.Tokenizer, "tokenizer to use when the model directory has none")
	f.Int(eval.KeySeqLen, d.SeqLen, "window length; with --data, tokens per row at most (default: min(256, or 512 with --data, max_position_embeddings))")
	f.Int(eval.KeyBatchSize, d.BatchSize, "windows or rows per forward pass")
	f.Bool(evalKeyJSON, false, `print {"loss": …, "perplexity": …, "tokens": …} (and "rows" with --data)`)
	bindFlags(evalCmd, "eval")
	rootCmd.AddCommand(evalCmd)
}
