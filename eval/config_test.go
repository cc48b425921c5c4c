package eval

import (
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/configtest"
)

// TestValidate: each invalid setting is an error naming its key, and Run
// refuses it before touching any file.
func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Model, ok.Data = "model", "rows.arrow"
	if err := ok.Validate(); err != nil {
		t.Fatalf("default with a model and a dataset: %v", err)
	}
	text := ok
	text.Data, text.Text = "", "corpus.txt"
	if err := text.Validate(); err != nil {
		t.Fatalf("default with a model and a text: %v", err)
	}
	configtest.Check(t, ok, Config.Validate, configtest.StageRun(Run), []configtest.Case[Config]{
		{Key: KeyModel, Edit: func(c *Config) { c.Model = "" }},
		{Key: KeyText, Edit: func(c *Config) { c.Data = "" }},
		{Key: KeyText, Edit: func(c *Config) { c.Text = "corpus.txt" }},
		{Key: KeyAdapter, Edit: func(c *Config) { c.Data, c.Text, c.Adapter = "", "corpus.txt", "adapter" }},
		{Key: KeyTemplate, Edit: func(c *Config) { c.Template = "vicuna" }},
		{Key: KeyTemplate, Edit: func(c *Config) { c.Template = "" }},
		{Key: KeyMaxRows, Edit: func(c *Config) { c.MaxRows = -1 }},
		{Key: KeyMaxRows, Edit: func(c *Config) { c.Data, c.Text, c.MaxRows = "", "corpus.txt", 5 }},
		{Key: KeyTokenizer, Edit: func(c *Config) { c.Tokenizer = "tok" }},
		{Key: KeySeqLen, Edit: func(c *Config) { c.SeqLen = -1 }},
		{Key: KeySeqLen, Edit: func(c *Config) { c.SeqLen = 1 }},
		{Key: KeyBatchSize, Edit: func(c *Config) { c.BatchSize = 0 }},
		{Key: KeyBatchSize, Edit: func(c *Config) { c.BatchSize = -8 }},
	})
}

func TestMatchConfigValidate(t *testing.T) {
	ok := MatchConfig{MaxTokens: 8, Samples: 2, Temperature: 1, Batch: 4}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		want   string
		change func(*MatchConfig)
	}{
		{"max tokens", func(c *MatchConfig) { c.MaxTokens = 0 }},
		{"sampled answers", func(c *MatchConfig) { c.Samples = -1 }},
		{"temperature", func(c *MatchConfig) { c.Temperature = 0 }},
		{"decoded together", func(c *MatchConfig) { c.Batch = 0 }},
	} {
		cfg := ok
		c.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one about %s", cfg, err, c.want)
		}
	}
	greedy := ok
	greedy.Samples, greedy.Temperature = 0, 0
	if err := greedy.Validate(); err != nil {
		t.Errorf("greedy only: %v", err)
	}
}
