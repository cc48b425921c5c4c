package ppo

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/stagetest"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/tokenizer"
)

// PPO of a DeepSeek policy logs its MoE layer's expert load at every
// update and, with moe-aux-loss-alpha > 0, adds the balance term to the
// first update's loss (same policy, same rollout) and logs it.
func TestPPOLogsExpertLoad(t *testing.T) {
	dir := t.TempDir()
	tok, err := tokenizer.Load(worldBaseDir)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base")
	stagetest.SaveDeepSeek(t, base, tok, 3)
	var prefs []data.Preference
	for _, p := range world.New(1).Preferences(world.Train, 8) {
		prefs = append(prefs, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected})
	}
	prefsFile, prompts := filepath.Join(dir, "prefs.arrow"), filepath.Join(dir, "prompts.arrow")
	if err := data.WritePreferences(prefsFile, prefs); err != nil {
		t.Fatal(err)
	}
	writeWorldPrompts(t, prompts, world.Train, 8)
	rc := reward.DefaultConfig()
	rc.Base, rc.Data, rc.HeldOut, rc.Out = base, prefsFile, 0, filepath.Join(dir, "rm")
	rc.BatchSize, rc.LoRA.Targets = 2, []string{"all-linear"}
	rc.Train.Steps, rc.Train.Quiet = 1, true
	rm, err := reward.Run(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}

	stagetest.CheckExpertLogging(t, func(name string, alpha float64) string {
		cfg := DefaultConfig()
		cfg.Base, cfg.RewardAdapter, cfg.Prompts, cfg.Out = base, rm.AdapterDir, prompts, filepath.Join(dir, name)
		cfg.Iterations, cfg.RolloutBatch, cfg.MiniBatches, cfg.Epochs, cfg.MaxNewTokens = 2, 4, 1, 1, 4
		cfg.LoRA.Targets = []string{"all-linear"}
		cfg.Train.Quiet, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery, cfg.Train.MoEAuxLossAlpha = true, 0, 0, alpha
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Out
	}, 1, -1, 1e-6)
}
