package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/tokenizer"
)

// Sections of the tokenizer commands in a --config file, and their CLI-only
// keys (the keys of training are tokenizer's constants).
const (
	sectionTokenizerTrain  = "tokenizer.train"
	sectionTokenizerEncode = "tokenizer.encode"
	sectionTokenizerDecode = "tokenizer.decode"

	tokenizerTrainKeyOut          = "out"
	tokenizerKeyTokenizer         = "tokenizer"
	tokenizerKeyInput             = "input"
	tokenizerKeyOutput            = "output"
	tokenizerEncodeKeyAddSpecial  = "add-special-tokens"
	tokenizerDecodeKeySkipSpecial = "skip-special-tokens"
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
		const s = sectionTokenizerTrain
		out := cfgString(s, tokenizerTrainKeyOut)
		if out == "" {
			return fmt.Errorf("tokenizer train: --%s must not be empty", tokenizerTrainKeyOut)
		}
		t, err := tokenizer.TrainFiles(args, tokenizer.TrainConfig{
			VocabSize: cfgInt(s, tokenizer.KeyVocabSize), Specials: cfgStringSlice(s, tokenizer.KeySpecial),
		})
		if err != nil {
			return err
		}
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
		const s = sectionTokenizerEncode
		return runJSONL(cmd, s, func(t *tokenizer.Tokenizer, r io.Reader, w io.Writer) error {
			return tokenizer.EncodeJSONL(t, r, w, cfgBool(s, tokenizerEncodeKeyAddSpecial))
		})
	},
}

var tokenizerDecodeCmd = &cobra.Command{
	Use:   "decode",
	Short: `Decode JSON lines {"ids": [...]} into {"text": ...}`,
	Args:  cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = sectionTokenizerDecode
		return runJSONL(cmd, s, func(t *tokenizer.Tokenizer, r io.Reader, w io.Writer) error {
			return tokenizer.DecodeJSONL(t, r, w, cfgBool(s, tokenizerDecodeKeySkipSpecial))
		})
	},
}

// runJSONL loads --tokenizer and runs f from --input to --output ("-" for
// standard input and output).
func runJSONL(cmd *cobra.Command, section string, f func(*tokenizer.Tokenizer, io.Reader, io.Writer) error) error {
	path := cfgString(section, tokenizerKeyTokenizer)
	if path == "" {
		return fmt.Errorf("%s: --%s is required", cmd.CommandPath(), tokenizerKeyTokenizer)
	}
	in, out := cfgString(section, tokenizerKeyInput), cfgString(section, tokenizerKeyOutput)
	if in == "" {
		return fmt.Errorf("%s: --%s must not be empty (- for standard input)", cmd.CommandPath(), tokenizerKeyInput)
	}
	if out == "" {
		return fmt.Errorf("%s: --%s must not be empty (- for standard output)", cmd.CommandPath(), tokenizerKeyOutput)
	}
	t, err := tokenizer.Load(path)
	if err != nil {
		return err
	}
	var r io.Reader = cmd.InOrStdin()
	if in != "-" {
		file, err := os.Open(in)
		if err != nil {
			return err
		}
		defer file.Close()
		r = file
	}
	if out == "-" {
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
	d := tokenizer.DefaultTrainConfig()
	tokenizerTrainCmd.Flags().Int(tokenizer.KeyVocabSize, d.VocabSize, "vocabulary size, bytes and special tokens included")
	tokenizerTrainCmd.Flags().StringSlice(tokenizer.KeySpecial, d.Specials, "special tokens")
	tokenizerTrainCmd.Flags().String(tokenizerTrainKeyOut, "tokenizer", "output directory")
	bindFlags(tokenizerTrainCmd, sectionTokenizerTrain)

	for _, c := range []*cobra.Command{tokenizerEncodeCmd, tokenizerDecodeCmd} {
		c.Flags().String(tokenizerKeyTokenizer, "", "tokenizer.json file, or a directory holding one")
		c.Flags().String(tokenizerKeyInput, "-", "JSON lines to read (- for standard input)")
		c.Flags().String(tokenizerKeyOutput, "-", "JSON lines to write (- for standard output)")
	}
	tokenizerEncodeCmd.Flags().Bool(tokenizerEncodeKeyAddSpecial, false, "add the model's special tokens (e.g. BOS)")
	tokenizerDecodeCmd.Flags().Bool(tokenizerDecodeKeySkipSpecial, false, "leave special tokens out of the text")
	bindFlags(tokenizerEncodeCmd, sectionTokenizerEncode)
	bindFlags(tokenizerDecodeCmd, sectionTokenizerDecode)

	tokenizerCmd.AddCommand(tokenizerTrainCmd, tokenizerEncodeCmd, tokenizerDecodeCmd)
	rootCmd.AddCommand(tokenizerCmd)
}
