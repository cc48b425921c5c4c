package pretrain

import (
	"testing"

	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/train"
)

// TestValidate checks that each invalid setting is reported by Validate
// and by Run, naming its key.
func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Corpus, ok.Out = "corpus.txt", "out"
	configtest.Check(t, ok, Config.Validate, configtest.StageRun(Run), []configtest.Case[Config]{
		{Key: KeyOut, Edit: func(c *Config) { c.Out = "" }},
		{Key: KeyCorpus, Edit: func(c *Config) { c.Corpus = "" }},
		{Key: KeyPreset, Edit: func(c *Config) { c.Preset = "huge" }},
		{Key: KeyAttention, Edit: func(c *Config) { c.Attention = "performer" }},
		{Key: KeyAttention, Edit: func(c *Config) { c.Preset, c.Attention = "stories15M-moe", "linear" }},
		{Key: KeyGAUChunk, Edit: func(c *Config) { c.Attention, c.GAUChunk = "linear", 16 }},
		{Key: KeyGAUChunk, Edit: func(c *Config) { c.Attention, c.GAUChunk = "gau", -1 }},
		{Key: KeyMaxPositions, Edit: func(c *Config) { c.MaxPositions = -1 }},
		{Key: KeyMaxPositions, Edit: func(c *Config) { c.Model, c.MaxPositions = microModel(), 512 }},
		{Key: KeyVocabSize, Edit: func(c *Config) { c.VocabSize = -1 }},
		{Key: KeySeqLen, Edit: func(c *Config) { c.SeqLen = 1 }},
		{Key: KeyBatchSize, Edit: func(c *Config) { c.BatchSize = 0 }},
		{Key: KeyHeldOut, Edit: func(c *Config) { c.HeldOut = 1 }},
		{Key: KeyHeldOut, Edit: func(c *Config) { c.HeldOut = -0.1 }},
		{Key: KeyEvalWindows, Edit: func(c *Config) { c.EvalMax = -1 }},
		{Key: train.KeySteps, Edit: func(c *Config) { c.Train.Steps = 0 }},
		{Key: train.KeyPeakLR, Edit: func(c *Config) { c.Train.LR = -1 }},
		{Key: train.KeyMinLRRatio, Edit: func(c *Config) { c.Train.MinLRRatio = 2 }},
		{Key: train.KeySchedule, Edit: func(c *Config) { c.Train.Schedule = "step" }},
	})
	// Documents given in memory need no corpus file.
	cfg := ok
	cfg.Corpus, cfg.Docs = "", []string{"a document"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("documents without a corpus: %v", err)
	}
}
