package grpo

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/stagetest"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/tokenizer"
)

// GRPO of a DeepSeek policy logs its MoE layer's expert load at every
// update and, with moe-aux-loss-alpha > 0, adds the balance term to the
// first update's loss (same policy, same sampled batch) and logs it.
func TestGRPOLogsExpertLoad(t *testing.T) {
	dir := t.TempDir()
	tok, err := tokenizer.Load(tinymodel.WorldBase())
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base")
	stagetest.SaveDeepSeek(t, base, tok, 3)
	rows := world.New(1).Instructions(world.Train, 8).Rows()
	stagetest.CheckExpertLogging(t, func(name string, alpha float64) string {
		cfg := DefaultConfig()
		cfg.Base, cfg.Out, cfg.Rows = base, filepath.Join(dir, name), rows
		cfg.RewardFuncs = []string{RewardWorld}
		cfg.Iterations, cfg.NumGenerations, cfg.GenerationBatchSize, cfg.MaxCompletionLength = 2, 2, 4, 4
		cfg.Train.Quiet, cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery, cfg.Train.MoEAuxLossAlpha = true, 1, 0, 0, alpha
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Out
	}, 1, 0, 1e-6)
}
