package pretrain

import (
	"context"
	"regexp"
	"testing"

	"github.com/gotune/gotune/train"
)

// TestValidate checks that each invalid setting is reported by Validate
// and by Run, naming its key.
func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Corpus, ok.Out = "corpus.txt", "out"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  string
		edit func(*Config)
	}{
		{KeyOut, func(c *Config) { c.Out = "" }},
		{KeyCorpus, func(c *Config) { c.Corpus = "" }},
		{KeyPreset, func(c *Config) { c.Preset = "huge" }},
		{KeyVocabSize, func(c *Config) { c.VocabSize = -1 }},
		{KeySeqLen, func(c *Config) { c.SeqLen = 1 }},
		{KeyBatchSize, func(c *Config) { c.BatchSize = 0 }},
		{KeyHeldOut, func(c *Config) { c.HeldOut = 1 }},
		{KeyHeldOut, func(c *Config) { c.HeldOut = -0.1 }},
		{KeyEvalWindows, func(c *Config) { c.EvalMax = -1 }},
		{train.KeySteps, func(c *Config) { c.Train.Steps = 0 }},
		{train.KeyPeakLR, func(c *Config) { c.Train.LR = -1 }},
		{train.KeyMinLRRatio, func(c *Config) { c.Train.MinLRRatio = 2 }},
		{train.KeySchedule, func(c *Config) { c.Train.Schedule = "step" }},
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
	// Documents given in memory need no corpus file.
	cfg := ok
	cfg.Corpus, cfg.Docs = "", []string{"a document"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("documents without a corpus: %v", err)
	}
}
