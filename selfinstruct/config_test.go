package selfinstruct

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotune/gotune/internal/configtest"
)

// TestConfigValidate: Run refuses every invalid field, before asking the
// teacher anything, with an error naming its key.
func TestConfigValidate(t *testing.T) {
	teacher := &scriptedTeacher{}
	valid := DefaultConfig()
	valid.Teacher = teacher
	valid.Output = filepath.Join(t.TempDir(), "gen.arrow")
	run := func(c Config) error {
		_, err := Run(context.Background(), c)
		if calls := teacher.calls.Swap(0); calls != 0 {
			t.Errorf("the teacher was asked %d times before the config was checked (%v)", calls, err)
		}
		return err
	}
	configtest.Check(t, valid, Config.Validate, run, []configtest.Case[Config]{
		{Key: "teacher", Edit: func(c *Config) { c.Teacher = nil }},
		{Key: KeyTeacherURL, Edit: func(c *Config) { c.Teacher = &HTTPTeacher{Timeout: time.Second} }},
		{Key: KeyOutput, Edit: func(c *Config) { c.Output = "" }},
		{Key: KeyNumInstructions, Edit: func(c *Config) { c.NumInstructions = 0 }},
		{Key: KeyNumPromptInstructions, Edit: func(c *Config) { c.NumPromptInstructions = -1 }},
		{Key: KeyRequestBatchSize, Edit: func(c *Config) { c.RequestBatchSize = 0 }},
		{Key: KeyNumTasks, Edit: func(c *Config) { c.NumTasksPerPrompt = 0 }},
		{Key: KeyMaxTokens, Edit: func(c *Config) { c.MaxTokens = -3 }},
		{Key: KeyNumTasks, Edit: func(c *Config) { c.NumPromptInstructions, c.NumTasksPerPrompt = 3, 4 }},
		{Key: KeyRequireVerified, Edit: func(c *Config) { c.RequireVerified, c.Verifier = true, nil }},
		{Key: KeySeedTasks, Edit: func(c *Config) { c.SeedTasks = c.SeedTasks[:2] }},
		{Key: KeySeedTasks, Edit: func(c *Config) { c.SeedTasks = nil }},
		{Key: KeySeedTasks, Edit: func(c *Config) { c.SeedTasks = append(c.SeedTasks, SeedTask{ID: "bare", Instruction: "x"}) }},
		{Key: KeyPromptHeader, Edit: func(c *Config) { c.PromptHeader = "" }},
		{Key: KeyTemperature, Edit: func(c *Config) { c.Temperature = -0.1 }},
		{Key: KeyTopP, Edit: func(c *Config) { c.TopP = 0 }},
		{Key: KeyTopP, Edit: func(c *Config) { c.TopP = 1.5 }},
		{Key: KeySimilarityThreshold, Edit: func(c *Config) { c.SimilarityThreshold = -1 }},
		{Key: KeySimilarityThreshold, Edit: func(c *Config) { c.SimilarityThreshold = 2 }},
		{Key: KeyMaxBatches, Edit: func(c *Config) { c.MaxBatches = -1 }},
		{Key: "MaxIdleBatches", Edit: func(c *Config) { c.MaxIdleBatches = 0 }},
		{Key: "SaveInterval", Edit: func(c *Config) { c.SaveInterval = 0 }},
		{Key: "Source", Edit: func(c *Config) { c.Source = "" }},
	})
	// Zero is a valid temperature (greedy) and threshold.
	c := valid
	c.Temperature, c.SimilarityThreshold = 0, 0
	if err := c.Validate(); err != nil {
		t.Errorf("temperature 0, threshold 0: %v", err)
	}
}

// TestHTTPTeacherValidate: the teacher refuses every invalid setting, naming
// its key, before sending anything.
func TestHTTPTeacherValidate(t *testing.T) {
	valid := DefaultHTTPTeacher()
	valid.BaseURL = "http://127.0.0.1:1/v1"
	validate := func(h HTTPTeacher) error { return h.Validate() }
	complete := func(h HTTPTeacher) error {
		_, err := h.Complete(context.Background(), []string{"x"}, Params{MaxTokens: 1, TopP: 1})
		return err
	}
	configtest.Check(t, valid, validate, complete, []configtest.Case[HTTPTeacher]{
		{Key: KeyTeacherURL, Edit: func(h *HTTPTeacher) { h.BaseURL = "" }},
		{Key: KeyTeacherTimeout, Edit: func(h *HTTPTeacher) { h.Timeout = 0 }},
		{Key: KeyTeacherRetries, Edit: func(h *HTTPTeacher) { h.Retries = -1 }},
		{Key: KeyTeacherConcurrency, Edit: func(h *HTTPTeacher) { h.Concurrency = -2 }},
		{Key: "Backoff", Edit: func(h *HTTPTeacher) { h.Backoff = -time.Second }},
		{Key: "MaxBackoff", Edit: func(h *HTTPTeacher) { h.MaxBackoff = -time.Second }},
	})
}
