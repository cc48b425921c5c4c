package train

import (
	"math"
	"testing"

	"github.com/gotune/gotune/internal/configtest"
)

// TestConfigValidate checks that each invalid setting is reported naming
// its key: zero or negative values where positive ones are needed are
// errors, not defaults.
func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Dir = "out"
	configtest.Check(t, ok, Config.Validate, nil, []configtest.Case[Config]{
		{Key: KeySteps, Edit: func(c *Config) { c.Steps = 0 }},
		{Key: KeySteps, Edit: func(c *Config) { c.Steps = -1 }},
		{Key: KeyGradAccum, Edit: func(c *Config) { c.GradAccum = 0 }},
		{Key: KeyPeakLR, Edit: func(c *Config) { c.LR = 0 }},
		{Key: KeyPeakLR, Edit: func(c *Config) { c.LR = -1e-3 }},
		{Key: KeyPeakLR, Edit: func(c *Config) { c.LR = math.Inf(1) }},
		{Key: KeySchedule, Edit: func(c *Config) { c.Schedule = "step" }},
		{Key: KeyWarmup, Edit: func(c *Config) { c.WarmupSteps = -1 }},
		{Key: KeyMinLRRatio, Edit: func(c *Config) { c.MinLRRatio = 1.5 }},
		{Key: KeyMinLRRatio, Edit: func(c *Config) { c.MinLRRatio = -0.1 }},
		{Key: KeyBeta1, Edit: func(c *Config) { c.Beta1 = 1 }},
		{Key: KeyBeta2, Edit: func(c *Config) { c.Beta2 = 0 }},
		{Key: KeyEps, Edit: func(c *Config) { c.Eps = 0 }},
		{Key: KeyWeightDecay, Edit: func(c *Config) { c.WeightDecay = -0.1 }},
		{Key: KeyMaxGradNorm, Edit: func(c *Config) { c.MaxGradNorm = -1 }},
		{Key: KeyMoEAuxLossAlpha, Edit: func(c *Config) { c.MoEAuxLossAlpha = -0.01 }},
		{Key: KeyMoEAuxLossAlpha, Edit: func(c *Config) { c.MoEAuxLossAlpha = math.NaN() }},
		{Key: KeyMoEAuxLossAlpha, Edit: func(c *Config) { c.MoEAuxLossAlpha = math.Inf(1) }},
		{Key: KeyLogEvery, Edit: func(c *Config) { c.LogEvery = 0 }},
		{Key: KeyEvalEvery, Edit: func(c *Config) { c.EvalEvery = -1 }},
		{Key: KeySaveEvery, Edit: func(c *Config) { c.CheckpointEvery = -1 }},
	})
	cfg := ok
	cfg.Dir = ""
	if err := cfg.Validate(); err == nil {
		t.Error("no output directory: no error")
	}
}
