package eval

import (
	"context"
	"strings"
	"testing"
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
	for _, c := range []struct {
		key    string
		change func(*Config)
	}{
		{KeyModel, func(c *Config) { c.Model = "" }},
		{KeyText, func(c *Config) { c.Data = "" }},
		{KeyText, func(c *Config) { c.Text = "corpus.txt" }},
		{KeyAdapter, func(c *Config) { c.Data, c.Text, c.Adapter = "", "corpus.txt", "adapter" }},
		{KeyTemplate, func(c *Config) { c.Template = "vicuna" }},
		{KeyTemplate, func(c *Config) { c.Template = "" }},
		{KeyMaxRows, func(c *Config) { c.MaxRows = -1 }},
		{KeyMaxRows, func(c *Config) { c.Data, c.Text, c.MaxRows = "", "corpus.txt", 5 }},
		{KeyTokenizer, func(c *Config) { c.Tokenizer = "tok" }},
		{KeySeqLen, func(c *Config) { c.SeqLen = -1 }},
		{KeySeqLen, func(c *Config) { c.SeqLen = 1 }},
		{KeyBatchSize, func(c *Config) { c.BatchSize = 0 }},
		{KeyBatchSize, func(c *Config) { c.BatchSize = -8 }},
	} {
		cfg := ok
		c.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.key) {
			t.Errorf("%+v: error %v, want one naming %s", cfg, err, c.key)
		}
		if _, runErr := Run(context.Background(), cfg); runErr == nil || runErr.Error() != err.Error() {
			t.Errorf("%+v: Run says %v, want the validation error", cfg, runErr)
		}
	}
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
