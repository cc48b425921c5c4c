package reward

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/train"
)

// TestValidate checks that each invalid setting is reported by Validate
// and by Run, naming its key.
func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Base, ok.Data, ok.Out = "base", "prefs.arrow", "out"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		edit func(*Config)
	}{
		{KeyBase, func(c *Config) { c.Base = "" }},
		{KeyData, func(c *Config) { c.Data = "" }},
		{KeyOut, func(c *Config) { c.Out = "" }},
		{KeyBatchSize, func(c *Config) { c.BatchSize = 0 }},
		{KeyBatchSize, func(c *Config) { c.BatchSize = -1 }},
		{KeyMaxLength, func(c *Config) { c.MaxLength = -1 }},
		{KeyEvalPairs, func(c *Config) { c.EvalMax = -1 }},
		{KeyHeldOut, func(c *Config) { c.HeldOut = 1 }},
		{KeyHeldOut, func(c *Config) { c.HeldOut = -0.1 }},
		{KeyEpochs, func(c *Config) { c.Epochs = 0 }},
		{KeyHeadStd, func(c *Config) { c.HeadStd = -0.02 }},
		{KeyCenterRewards, func(c *Config) { c.Loss.CenterCoefficient = -1 }},
		{lora.KeyR, func(c *Config) { c.LoRA.R = 0 }},
		{lora.KeyAlpha, func(c *Config) { c.LoRA.Alpha = -1 }},
		{train.KeySteps, func(c *Config) { c.Train.Steps = -1 }},
		{train.KeyGradAccum, func(c *Config) { c.Train.GradAccum = 0 }},
		{train.KeyPeakLR, func(c *Config) { c.Train.LR = 0 }},
		{train.KeyLogEvery, func(c *Config) { c.Train.LogEvery = 0 }},
	} {
		cfg := ok
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !regexp.MustCompile(`(^|[\s:(])`+regexp.QuoteMeta(c.key)+`($|[\s:)])`).MatchString(err.Error()) {
			t.Errorf("%s: Validate gave %v, want an error naming it", c.key, err)
			continue
		}
		if _, runErr := Run(context.Background(), cfg); runErr == nil || runErr.Error() != err.Error() {
			t.Errorf("%s: Run gave %v, want Validate's %v", c.key, runErr, err)
		}
	}
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
	rows := func(split world.Split, n int) []data.Preference {
		var out []data.Preference
		for _, p := range world.New(6).Preferences(split, n) {
			out = append(out, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected})
		}
		return out
	}
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = worldBaseDir, filepath.Join(t.TempDir(), "given")
	cfg.Rows, cfg.EvalRows = rows(world.Train, 12), rows(world.Valid, 4)
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
