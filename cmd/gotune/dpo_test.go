package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDPOCommand runs `gotune dpo` on a tiny random model and the built-in
// world: flags reach the stage, the adapter and metrics are written, and
// the summary line reports the held-out pairs.
func TestDPOCommand(t *testing.T) {
	resetFlags(t, dpoCmd)
	dir, _ := tinyModelDir(t)
	out := filepath.Join(t.TempDir(), "dpo")
	got, err := runGotune(t, "dpo", "--base", dir, "--out", out, "--world-pairs", "6", "--world-eval-pairs", "3",
		"--pairs", "2", "--max-len", "320", "--buckets", "320", "--steps", "2", "--lr", "1e-3",
		"--loss-type", "ipo", "--beta", "0.5", "--precompute-ref", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "held-out (3 pairs)") || !strings.Contains(got, filepath.Join(out, "adapter")) {
		t.Errorf("summary %q", got)
	}
	for _, f := range []string{"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "metrics.jsonl", "data/train.arrow", "data/eval.arrow"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Error(err)
		}
	}
	if _, err := runGotune(t, "dpo", "--base", dir, "--out", filepath.Join(t.TempDir(), "x"), "--loss-type", "kto"); err == nil || !strings.Contains(err.Error(), "kto") {
		t.Errorf("unknown loss type: %v", err)
	}
}
