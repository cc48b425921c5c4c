package reward

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/train"
)

// TestValidate checks that each invalid setting is reported by Validate
// and by Run, naming its key.
func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Base, ok.Data, ok.Out = "base", "prefs.arrow", "out"
	configtest.Check(t, ok, Config.Validate, configtest.StageRun(Run), []configtest.Case[Config]{
		{Key: KeyBase, Edit: func(c *Config) { c.Base = "" }},
		{Key: KeyData, Edit: func(c *Config) { c.Data = "" }},
		{Key: KeyOut, Edit: func(c *Config) { c.Out = "" }},
		{Key: KeyBatchSize, Edit: func(c *Config) { c.BatchSize = 0 }},
		{Key: KeyBatchSize, Edit: func(c *Config) { c.BatchSize = -1 }},
		{Key: KeyMaxLength, Edit: func(c *Config) { c.MaxLength = -1 }},
		{Key: KeyEvalPairs, Edit: func(c *Config) { c.EvalMax = -1 }},
		{Key: KeyHeldOut, Edit: func(c *Config) { c.HeldOut = 1 }},
		{Key: KeyHeldOut, Edit: func(c *Config) { c.HeldOut = -0.1 }},
		{Key: KeyEpochs, Edit: func(c *Config) { c.Epochs = 0 }},
		{Key: KeyHeadStd, Edit: func(c *Config) { c.HeadStd = -0.02 }},
		{Key: KeyBaseDtype, Edit: func(c *Config) { c.BaseDtype = "fp8" }},
		{Key: KeyCenterRewards, Edit: func(c *Config) { c.Loss.CenterCoefficient = -1 }},
		{Key: lora.KeyR, Edit: func(c *Config) { c.LoRA.R = 0 }},
		{Key: lora.KeyAlpha, Edit: func(c *Config) { c.LoRA.Alpha = -1 }},
		{Key: train.KeySteps, Edit: func(c *Config) { c.Train.Steps = -1 }},
		{Key: train.KeyGradAccum, Edit: func(c *Config) { c.Train.GradAccum = 0 }},
		{Key: train.KeyPeakLR, Edit: func(c *Config) { c.Train.LR = 0 }},
		{Key: train.KeyLogEvery, Edit: func(c *Config) { c.Train.LogEvery = 0 }},
	})
	// Epochs do not matter when the steps are given.
	cfg := ok
	cfg.Epochs, cfg.Train.Steps = 0, 10
	if err := cfg.Validate(); err != nil {
		t.Errorf("epochs 0 with steps 10: %v", err)
	}
}

// TestRowsInMemory trains on pairs given in memory: with held-out pairs
// given too, and with a held-out share of the training prompts instead.
func TestRowsInMemory(t *testing.T) {
	w := world.New(6)
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = worldBaseDir, filepath.Join(t.TempDir(), "given")
	cfg.Rows, cfg.EvalRows = w.Preferences(world.Train, 12).Rows(), w.Preferences(world.Valid, 4).Rows()
	cfg.BatchSize, cfg.Train.Steps, cfg.Train.Quiet = 2, 1, true
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.TrainPairs != 12 || res.EvalPairs != 4 || res.Dropped != 0 {
		t.Errorf("given held-out pairs: %d train, %d eval, %d dropped; want 12, 4 and 0", res.TrainPairs, res.EvalPairs, res.Dropped)
	}

	cfg.Out, cfg.EvalRows, cfg.HeldOut = filepath.Join(t.TempDir(), "split"), nil, 0.5
	res, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.TrainPairs == 0 || res.EvalPairs == 0 || res.TrainPairs+res.EvalPairs != 12 || res.Dropped != 0 {
		t.Errorf("held-out share: %d train, %d eval, %d dropped; want the 12 pairs split in two", res.TrainPairs, res.EvalPairs, res.Dropped)
	}
}
