package reward

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/stagetest"
	"github.com/gotune/gotune/tokenizer"
)

// A reward model on a DeepSeek base logs its MoE layer's expert load at
// every update and, with moe-aux-loss-alpha > 0, adds the balance term to
// the first update's loss (same weights, same pairs) and logs it.
func TestRewardLogsExpertLoad(t *testing.T) {
	dir := t.TempDir()
	tok, err := tokenizer.Load(worldBaseDir)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base")
	stagetest.SaveDeepSeek(t, base, tok, 3)
	var rows []data.Preference
	for _, p := range world.New(4).Preferences(world.Train, 16) {
		rows = append(rows, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected})
	}
	prefs := filepath.Join(dir, "prefs.arrow")
	if err := data.WritePreferences(prefs, rows); err != nil {
		t.Fatal(err)
	}
	stagetest.CheckExpertLogging(t, func(name string, alpha float64) string {
		cfg := DefaultConfig()
		cfg.Base, cfg.Data, cfg.HeldOut, cfg.Out = base, prefs, 0, filepath.Join(dir, name)
		cfg.BatchSize, cfg.LoRA.Targets = 2, []string{"all-linear"}
		cfg.Train.Steps, cfg.Train.LogEvery, cfg.Train.Quiet, cfg.Train.MoEAuxLossAlpha = 2, 1, true, alpha
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Out
	}, 1, -1, 1e-9)
}
