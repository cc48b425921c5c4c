package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/tokenizer"
)

var tokenizerCmd = &cobra.Command{
	Use:   "tokenizer",
	Short: "Train tokenizers and encode or decode text with them",
}

var tokenizerTrainCmd = &cobra.Command{
	Use:   "train [flags] FILE...",
	Short: "Train a byte-level BPE tokenizer on text files",
	Long: "Train a byte-level BPE tokenizer on the given text files and write tokenizer.json\n" +
		"and tokenizer_config.json (readable by Hugging Face tools) into --out.",
	Args: cobra.MinimumNArgs(1),
	RunE: func(cmd *cobra.Command, args []string) error {
		const s = "tokenizer.train"
		t, err := tokenizer.TrainFiles(args, cfgInt(s, "vocab-size"), cfgStringSlice(s, "special"))
		if err != nil {
			return err
		}
		out := cfgString(s, "out")
		if err := t.Save(out); err != nil {
			return err
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s (%d tokens) to %s\n", t, t.VocabSize(), out)
		return nil
	},
}

var tokenizerEncodeCmd = &cobra.Command{
	Use:   "encode",
	Short: `Encode JSON lines {"text": ...} into {"ids": [...]}`,
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "tokenizer.encode"
		return runJSONL(cmd, s, func(t *tokenizer.Tokenizer, r io.Reader, w io.Writer) error {
			return tokenizer.EncodeJSONL(t, r, w, cfgBool(s, "add-special-tokens"))
		})
	},
}

var tokenizerDecodeCmd = &cobra.Command{
	Use:   "decode",
	Short: `Decode JSON lines {"ids": [...]} into {"text": ...}`,
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "tokenizer.decode"
		return runJSONL(cmd, s, func(t *tokenizer.Tokenizer, r io.Reader, w io.Writer) error {
			return tokenizer.DecodeJSONL(t, r, w, cfgBool(s, "skip-special-tokens"))
		})
	},
}

// runJSONL loads --tokenizer and runs f from --input to --output ("-" for
// standard input and output).
func runJSONL(cmd *cobra.Command, section string, f func(*tokenizer.Tokenizer, io.Reader, io.Writer) error) error {
	path := cfgString(section, "tokenizer")
	if path == "" {
		return fmt.Errorf("%s: --tokenizer is required", cmd.CommandPath())
	}
	t, err := tokenizer.Load(path)
	if err != nil {
		return err
	}
	var r io.Reader = cmd.InOrStdin()
	if in := cfgString(section, "input"); in != "-" && in != "" {
		file, err := os.Open(in)
		if err != nil {
			return err
		}
		defer file.Close()
		r = file
	}
	out := cfgString(section, "output")
	if out == "-" || out == "" {
		return f(t, r, cmd.OutOrStdout())
	}
	file, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := f(t, r, file); err != nil {
		file.Close()
		return fmt.Errorf("%s: %w", out, err)
	}
	return file.Close()
}

func init() {
	tokenizerTrainCmd.Flags().Int("vocab-size", 4096, "vocabulary size, bytes and special tokens included")
	tokenizerTrainCmd.Flags().StringSlice("special", []string{"<|bos|>", "<|eos|>", "<|pad|>"}, "special tokens")
	tokenizerTrainCmd.Flags().String("out", "tokenizer", "output directory")
	bindFlags(tokenizerTrainCmd, "tokenizer.train")

	for _, c := range []*cobra.Command{tokenizerEncodeCmd, tokenizerDecodeCmd} {
		c.Flags().String("tokenizer", "", "tokenizer.json file, or a directory holding one")
		c.Flags().String("input", "-", "JSON lines to read (- for standard input)")
		c.Flags().String("output", "-", "JSON lines to write (- for standard output)")
	}
	tokenizerEncodeCmd.Flags().Bool("add-special-tokens", false, "add the model's special tokens (e.g. BOS)")
	tokenizerDecodeCmd.Flags().Bool("skip-special-tokens", false, "leave special tokens out of the text")
	bindFlags(tokenizerEncodeCmd, "tokenizer.encode")
	bindFlags(tokenizerDecodeCmd, "tokenizer.decode")

	tokenizerCmd.AddCommand(tokenizerTrainCmd, tokenizerEncodeCmd, tokenizerDecodeCmd)
	rootCmd.AddCommand(tokenizerCmd)
}
