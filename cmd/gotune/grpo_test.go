package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/grpo"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/train"
)

// TestGRPOCommand: gotune grpo trains on the built-in world with the
// world's checker by default and reports the rewards; the metrics carry
// rewards/world/mean, and --reward-weights must hold numbers.
func TestGRPOCommand(t *testing.T) {
	resetFlags(t, grpoCmd)
	out := filepath.Join(t.TempDir(), "grpo")
	got, err := runGotune(t, "grpo", "--base", tinymodel.WorldBase(), "--out", out, "--"+keyWorldPrompts, "8",
		"--"+grpo.KeyIterations, "2", "--"+grpo.KeyNumGenerations, "2", "--"+grpo.KeyGenerationBatchSize, "4",
		"--"+grpo.KeyMaxCompletionLength, "3", "--"+grpo.KeyEvalMax, "2", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "2 GRPO updates on 8 prompts") || !strings.Contains(got, "on 2 prompts") {
		t.Errorf("summary %q", got)
	}
	recs, err := train.ReadMetrics(train.MetricsFile(out))
	if err != nil || len(recs) == 0 {
		t.Fatalf("%d records (%v)", len(recs), err)
	}
	if _, ok := recs[0]["rewards/world/mean"]; !ok {
		t.Errorf("the first record lacks rewards/world/mean: %v", recs[0])
	}

	resetFlags(t, grpoCmd)
	_, err = runGotune(t, "grpo", "--base", tinymodel.WorldBase(), "--out", filepath.Join(t.TempDir(), "g"), "--"+grpo.KeyRewardWeights, "1,x")
	if err == nil || !strings.Contains(err.Error(), grpo.KeyRewardWeights) || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("--reward-weights 1,x: %v", err)
	}
}
