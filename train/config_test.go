package train

import (
	"math"
	"regexp"
	"testing"
)

// TestConfigValidate checks that each invalid setting is reported naming
// its key: zero or negative values where positive ones are needed are
// errors, not defaults.
func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Dir = "out"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		edit func(*Config)
	}{
		{KeySteps, func(c *Config) { c.Steps = 0 }},
		{KeySteps, func(c *Config) { c.Steps = -1 }},
		{KeyGradAccum, func(c *Config) { c.GradAccum = 0 }},
		{KeyPeakLR, func(c *Config) { c.LR = 0 }},
		{KeyPeakLR, func(c *Config) { c.LR = -1e-3 }},
		{KeyPeakLR, func(c *Config) { c.LR = math.Inf(1) }},
		{KeySchedule, func(c *Config) { c.Schedule = "step" }},
		{KeyWarmup, func(c *Config) { c.WarmupSteps = -1 }},
		{KeyMinLRRatio, func(c *Config) { c.MinLRRatio = 1.5 }},
		{KeyMinLRRatio, func(c *Config) { c.MinLRRatio = -0.1 }},
		{KeyBeta1, func(c *Config) { c.Beta1 = 1 }},
		{KeyBeta2, func(c *Config) { c.Beta2 = 0 }},
		{KeyEps, func(c *Config) { c.Eps = 0 }},
		{KeyWeightDecay, func(c *Config) { c.WeightDecay = -0.1 }},
		{KeyMaxGradNorm, func(c *Config) { c.MaxGradNorm = -1 }},
		{KeyMoEAuxLossAlpha, func(c *Config) { c.MoEAuxLossAlpha = -0.01 }},
		{KeyMoEAuxLossAlpha, func(c *Config) { c.MoEAuxLossAlpha = math.NaN() }},
		{KeyMoEAuxLossAlpha, func(c *Config) { c.MoEAuxLossAlpha = math.Inf(1) }},
		{KeyLogEvery, func(c *Config) { c.LogEvery = 0 }},
		{KeyEvalEvery, func(c *Config) { c.EvalEvery = -1 }},
		{KeySaveEvery, func(c *Config) { c.CheckpointEvery = -1 }},
	} {
		cfg := ok
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !regexp.MustCompile(`(^|[\s:])`+regexp.QuoteMeta(c.key)+`($|[\s:])`).MatchString(err.Error()) {
			t.Errorf("%s: got %v, want an error naming it", c.key, err)
		}
	}
	cfg := ok
	cfg.Dir = ""
	if err := cfg.Validate(); err == nil {
		t.Error("no output directory: no error")
	}
}
