package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/export"
)

// TestInvalidFlagsNameTheirKey: an invalid value stops its command with an
// error naming the flag, before a model is loaded or a file written; none
// is silently replaced by a default.
func TestInvalidFlagsNameTheirKey(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.jsonl")
	if err := os.WriteFile(in, []byte(`{"prompt": "p", "chosen": "c", "rejected": "r"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.arrow")
	noModel := filepath.Join(dir, "no-model") // loading it would fail with another error
	cases := []struct {
		cmd  *cobra.Command
		key  string
		args []string
	}{
		{dataImportCmd, "max-row-bytes", []string{"data", "import", in, "--out", out, "--max-row-bytes", "-1"}},
		{dataImportCmd, "max-row-bytes", []string{"data", "import", in, "--out", out, "--max-row-bytes", "0"}},
		{dataImportCmd, "rejects", []string{"data", "import", in, "--out", out, "--rejects", filepath.Join(dir, "why.jsonl")}},
		{dataImportCmd, "format", []string{"data", "import", in, "--out", out, "--format", "xml"}},
		{dataHeadCmd, "-n", []string{"data", "head", in, "-n", "-1"}},

		{generateCmd, "max-tokens", []string{"generate", "--model", noModel, "--prompt", "p", "--max-tokens", "0"}},
		{generateCmd, "top-p", []string{"generate", "--model", noModel, "--prompt", "p", "--top-p", "0"}},
		{generateCmd, "repetition-penalty", []string{"generate", "--model", noModel, "--prompt", "p", "--repetition-penalty", "0"}},
		{generateCmd, "temperature", []string{"generate", "--model", noModel, "--prompt", "p", "--temperature", "-1"}},
		{generateCmd, "top-k", []string{"generate", "--model", noModel, "--prompt", "p", "--top-k", "-1"}},
		{generateCmd, "chat-template", []string{"generate", "--model", noModel, "--prompt", "p", "--chat-template", ""}},
		{chatCmd, "max-tokens", []string{"chat", "--model", noModel, "--max-tokens", "-5"}},
		{generateCmd, "base-dtype", []string{"generate", "--model", noModel, "--prompt", "p", "--base-dtype", "float16"}},
		{chatCmd, "base-dtype", []string{"chat", "--model", noModel, "--base-dtype", "int8"}},
		{serveCmd, "base-dtype", []string{"serve", "--model", noModel, "--base-dtype", "bf16"}},

		{serveCmd, "max-batch", []string{"serve", "--model", noModel, "--max-batch", "0"}},
		{serveCmd, "max-request-bytes", []string{"serve", "--model", noModel, "--max-request-bytes", "-1"}},
		{serveCmd, "default-max-tokens", []string{"serve", "--model", noModel, "--default-max-tokens", "0"}},
		{serveCmd, "shutdown-timeout", []string{"serve", "--model", noModel, "--shutdown-timeout", "0s"}},
		{serveCmd, "model-name", []string{"serve", "--model", noModel, "--model-name", ""}},
		{serveCmd, "addr", []string{"serve", "--model", noModel, "--addr", ""}},

		{tokenizerTrainCmd, "vocab-size", []string{"tokenizer", "train", "--vocab-size", "-1", "--out", filepath.Join(dir, "tok"), in}},
		{tokenizerTrainCmd, "special", []string{"tokenizer", "train", "--special", "<a>,<a>", "--out", filepath.Join(dir, "tok"), in}},
		{tokenizerTrainCmd, "out", []string{"tokenizer", "train", "--out", "", in}},
		{tokenizerEncodeCmd, "input", []string{"tokenizer", "encode", "--tokenizer", noModel, "--input", ""}},

		{selfInstructCmd, "teacher-retries", []string{"self-instruct", "--output", out, "--teacher-url", "http://127.0.0.1:1/v1", "--teacher-retries", "-1"}},
		{selfInstructCmd, "teacher-timeout", []string{"self-instruct", "--output", out, "--teacher-url", "http://127.0.0.1:1/v1", "--teacher-timeout", "0s"}},
		{selfInstructCmd, "top-p", []string{"self-instruct", "--output", out, "--teacher-url", "http://127.0.0.1:1/v1", "--top-p", "0"}},
		{selfInstructCmd, "num-tasks", []string{"self-instruct", "--output", out, "--teacher-url", "http://127.0.0.1:1/v1", "--num-tasks", "0"}},
		{selfInstructCmd, "max-batches", []string{"self-instruct", "--output", out, "--teacher-url", "http://127.0.0.1:1/v1", "--max-batches", "-1"}},
		{selfInstructCmd, "teacher-template", []string{"self-instruct", "--output", out, "--teacher-url", "http://127.0.0.1:1/v1", "--teacher-template", "alpaca"}},
		{selfInstructCmd, "teacher-template", []string{"self-instruct", "--output", out, "--model", noModel, "--teacher-template", "vicuna"}},
		{selfInstructCmd, "require-verified", []string{"self-instruct", "--output", out, "--teacher-url", "http://127.0.0.1:1/v1", "--require-verified"}},

		{pairsCmd, "samples", []string{"pairs", "--model", noModel, "--data", in, "--out", out, "--samples", "0"}},
		{pairsCmd, "top-p", []string{"pairs", "--model", noModel, "--data", in, "--out", out, "--top-p", "0"}},
		{pairsCmd, "max-tokens", []string{"pairs", "--model", noModel, "--data", in, "--out", out, "--max-tokens", "0"}},

		{exportCmd, "dtype", []string{"export", "--adapter", noModel, "--out", out, "--dtype", "f64"}},
		{exportCmd, "max-shard-size", []string{"export", "--adapter", noModel, "--out", out, "--max-shard-size", "0"}},
		{exportCmd, "max-shard-size", []string{"export", "--base", noModel, "--out", out + ".gguf", "--max-shard-size", "2GB"}},
		{pretrainCmd, "world-docs", []string{"pretrain", "--world-docs", "-1", "--out", out}},

		{pipelineCmd, "run", []string{"pipeline", "--run", "", "--stages", "base"}},
		{pipelineCmd, "base", []string{"pipeline", "--run", filepath.Join(dir, "run"), "--base", "", "--stages", "base"}},
		{pipelineCmd, "base-steps", []string{"pipeline", "--run", filepath.Join(dir, "run"), "--base-steps", "-1", "--stages", "base"}},
		{pipelineCmd, "eval-tasks", []string{"pipeline", "--run", filepath.Join(dir, "run"), "--quick", "--eval-tasks", "0", "--stages", "eval"}},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args[:2], " ")+" "+c.key, func(t *testing.T) {
			t.Cleanup(func() { resetFlags(t, c.cmd) })
			_, err := runGotune(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.key) {
				t.Fatalf("gotune %q: error %v does not name %s", c.args, err, c.key)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("gotune %q wrote %s", c.args, out)
			}
		})
	}
}

// TestExportShardFlagDefault: the --max-shard-size default is export's.
func TestExportShardFlagDefault(t *testing.T) {
	n, err := export.ParseSize(exportCmd.Flags().Lookup(export.KeyMaxShardSize).DefValue)
	if err != nil || n != export.DefaultConfig().MaxShardBytes {
		t.Errorf("--%s default = %d bytes (%v), export's default %d", export.KeyMaxShardSize, n, err, export.DefaultConfig().MaxShardBytes)
	}
}
