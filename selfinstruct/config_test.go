package selfinstruct

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigValidate: Run refuses every invalid field, before asking the
// teacher anything, with an error naming its key.
func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.Teacher = &scriptedTeacher{}
		c.Output = filepath.Join(t.TempDir(), "gen.arrow")
		return c
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cases := []struct {
		key string
		set func(*Config)
	}{
		{"teacher", func(c *Config) { c.Teacher = nil }},
		{KeyTeacherURL, func(c *Config) { c.Teacher = &HTTPTeacher{Timeout: time.Second} }},
		{KeyOutput, func(c *Config) { c.Output = "" }},
		{KeyNumInstructions, func(c *Config) { c.NumInstructions = 0 }},
		{KeyNumPromptInstructions, func(c *Config) { c.NumPromptInstructions = -1 }},
		{KeyRequestBatchSize, func(c *Config) { c.RequestBatchSize = 0 }},
		{KeyNumTasks, func(c *Config) { c.NumTasksPerPrompt = 0 }},
		{KeyMaxTokens, func(c *Config) { c.MaxTokens = -3 }},
		{KeySeedTasks, func(c *Config) { c.SeedTasks = c.SeedTasks[:2] }},
		{KeySeedTasks, func(c *Config) { c.SeedTasks = nil }},
		{KeySeedTasks, func(c *Config) { c.SeedTasks = append(c.SeedTasks, SeedTask{ID: "bare", Instruction: "x"}) }},
		{KeyPromptHeader, func(c *Config) { c.PromptHeader = "" }},
		{KeyTemperature, func(c *Config) { c.Temperature = -0.1 }},
		{KeyTopP, func(c *Config) { c.TopP = 0 }},
		{KeyTopP, func(c *Config) { c.TopP = 1.5 }},
		{KeySimilarityThreshold, func(c *Config) { c.SimilarityThreshold = -1 }},
		{KeySimilarityThreshold, func(c *Config) { c.SimilarityThreshold = 2 }},
		{KeyMaxBatches, func(c *Config) { c.MaxBatches = -1 }},
		{"MaxIdleBatches", func(c *Config) { c.MaxIdleBatches = 0 }},
		{"SaveInterval", func(c *Config) { c.SaveInterval = 0 }},
		{"Source", func(c *Config) { c.Source = "" }},
	}
	for _, tc := range cases {
		c := valid()
		tc.set(&c)
		_, err := Run(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v does not name it", tc.key, err)
		}
		if st, ok := c.Teacher.(*scriptedTeacher); ok && st.calls.Load() != 0 {
			t.Errorf("%s: the teacher was asked before the config was checked", tc.key)
		}
	}
	// Zero is a valid temperature (greedy) and threshold.
	c := valid()
	c.Temperature, c.SimilarityThreshold = 0, 0
	if err := c.Validate(); err != nil {
		t.Errorf("temperature 0, threshold 0: %v", err)
	}
}

// TestHTTPTeacherValidate: the teacher refuses every invalid setting, naming
// its key, before sending anything.
func TestHTTPTeacherValidate(t *testing.T) {
	cases := []struct {
		key string
		set func(*HTTPTeacher)
	}{
		{KeyTeacherURL, func(h *HTTPTeacher) { h.BaseURL = "" }},
		{KeyTeacherTimeout, func(h *HTTPTeacher) { h.Timeout = 0 }},
		{KeyTeacherRetries, func(h *HTTPTeacher) { h.Retries = -1 }},
		{KeyTeacherConcurrency, func(h *HTTPTeacher) { h.Concurrency = -2 }},
		{"Backoff", func(h *HTTPTeacher) { h.Backoff = -time.Second }},
		{"MaxBackoff", func(h *HTTPTeacher) { h.MaxBackoff = -time.Second }},
	}
	for _, tc := range cases {
		h := DefaultHTTPTeacher()
		h.BaseURL = "http://127.0.0.1:1/v1"
		if err := h.Validate(); err != nil {
			t.Fatalf("default teacher: %v", err)
		}
		tc.set(&h)
		_, err := h.Complete(context.Background(), []string{"x"}, Params{MaxTokens: 1, TopP: 1})
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: error %v does not name it", tc.key, err)
		}
	}
}
