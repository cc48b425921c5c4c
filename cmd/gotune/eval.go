package main

import (
	"encoding/json"
	"fmt"

	"github.com/gotune/gotune/pretrain"
	"github.com/spf13/cobra"
)

var evalCmd = &cobra.Command{
	Use:   "eval",
	Short: "Mean token loss and perplexity of a model directory on a text",
	Long: `Score a Hugging Face model directory on a text file (a .jsonl file of
{"text": …} lines, or plain text with blank-line separated documents, else
one per line): each document is encoded with special tokens and ended with
EOS, and every token after the first is predicted once, in windows of
--seq-len tokens. The model directory's tokenizer.json is used when present.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "eval"
		dir, text := cfgString(s, "model"), cfgString(s, "text")
		if dir == "" || text == "" {
			return fmt.Errorf("eval needs --model and --text")
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
	f.String("tokenizer", "", "tokenizer to use when the model directory has none")
	f.Int("seq-len", 0, "window length (default: min(256, max_position_embeddings))")
	f.Int("batch-size", 8, "windows per forward pass")
	f.Bool("json", false, `print {"loss": …, "perplexity": …, "tokens": …}`)
	bindFlags(evalCmd, "eval")
	rootCmd.AddCommand(evalCmd)
}
