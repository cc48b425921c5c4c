package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gotune/gotune/tokenizer"
)

// runCLI runs gotune with args and stdin, returning stdout. Flags of the
// encode and decode commands are reset first, as a fresh process has them.
func runCLI(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	for _, c := range []*cobra.Command{tokenizerEncodeCmd, tokenizerDecodeCmd} {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if err := f.Value.Set(f.DefValue); err != nil {
				t.Fatal(err)
			}
			f.Changed = false
		})
	}
	var out, errOut bytes.Buffer
	rootCmd.SetArgs(args)
	rootCmd.SetIn(strings.NewReader(stdin))
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errOut)
	defer func() {
		rootCmd.SetIn(nil)
		rootCmd.SetOut(nil)
		rootCmd.SetErr(nil)
	}()
	err := rootCmd.Execute()
	return out.String(), err
}

func TestTokenizerCommands(t *testing.T) {
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus.txt")
	text := strings.Repeat("the cat sat on the mat. the dog sat on the log.\n", 50)
	if err := os.WriteFile(corpus, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	tokDir := filepath.Join(dir, "tok")
	if _, err := runCLI(t, "", "tokenizer", "train", "--vocab-size", "300", "--out", tokDir, corpus); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokDir)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() > 300 || tok.VocabSize() <= 259 || tok.BOS() < 0 || tok.EOS() < 0 {
		t.Fatalf("trained %v", tok)
	}

	in := `{"text": "the cat sat"}` + "\n\n" + `{"text": "héllo <|eos|>"}` + "\n"
	out, err := runCLI(t, in, "tokenizer", "encode", "--tokenizer", tokDir, "--add-special-tokens")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("encode wrote %d lines: %q", len(lines), out)
	}
	var first struct{ IDs []int }
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	want := tok.Encode("the cat sat", true)
	if len(first.IDs) != len(want) || first.IDs[0] != tok.BOS() {
		t.Errorf("encode line 1 = %v, want %v", first.IDs, want)
	}

	// decode, reading and writing files, leaving out special tokens.
	idsFile := filepath.Join(dir, "ids.jsonl")
	if err := os.WriteFile(idsFile, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	textFile := filepath.Join(dir, "text.jsonl")
	if _, err := runCLI(t, "", "tokenizer", "decode", "--tokenizer", filepath.Join(tokDir, "tokenizer.json"),
		"--skip-special-tokens", "--input", idsFile, "--output", textFile); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(textFile)
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\"text\":\"the cat sat\"}\n{\"text\":\"héllo \"}\n"; string(got) != want {
		t.Errorf("decode wrote %q, want %q", got, want)
	}

	// Errors name the line.
	if _, err := runCLI(t, "{\"text\": \"ok\"}\n{\"txt\": 1}\n", "tokenizer", "encode", "--tokenizer", tokDir); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("bad input line: %v", err)
	}
	if _, err := runCLI(t, `{"ids": [1, 999999]}`, "tokenizer", "decode", "--tokenizer", tokDir); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("bad id: %v", err)
	}
	if _, err := runCLI(t, "", "tokenizer", "encode", "--tokenizer", filepath.Join(dir, "nope")); err == nil {
		t.Error("missing tokenizer: no error")
	}
}
