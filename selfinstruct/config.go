package selfinstruct

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Keys of Config and HTTPTeacher: the flags of `gotune self-instruct` and
// the keys under `self_instruct:` in a --config file (with underscores).
// KeySeedTasks and KeyPromptHeader name files whose contents become
// SeedTasks and PromptHeader; KeyVerify sets Verifier to KnownTasks.
const (
	KeyOutput                = "output"
	KeySeedTasks             = "seed-tasks"
	KeyPromptHeader          = "prompt-header"
	KeyNumInstructions       = "num-instructions"
	KeyNumPromptInstructions = "num-prompt-instructions"
	KeyRequestBatchSize      = "request-batch-size"
	KeyNumTasks              = "num-tasks"
	KeyMaxTokens             = "max-tokens"
	KeyTemperature           = "temperature"
	KeyTopP                  = "top-p"
	KeySeed                  = "seed"
	KeySimilarityThreshold   = "similarity-threshold"
	KeyVerify                = "verify"
	KeyRequireVerified       = "require-verified"
	KeyMaxBatches            = "max-batches"

	KeyTeacherURL         = "teacher-url"
	KeyTeacherModel       = "teacher-model"
	KeyTeacherAPIKeyEnv   = "teacher-api-key-env"
	KeyTeacherChat        = "teacher-chat"
	KeyTeacherTemplate    = "teacher-template"
	KeyTeacherTimeout     = "teacher-timeout"
	KeyTeacherRetries     = "teacher-retries"
	KeyTeacherConcurrency = "teacher-concurrency"
)

// Config is one self-instruct run. Start from DefaultConfig and set the
// Teacher and Output; Run refuses a Config that Validate rejects.
type Config struct {
	Teacher               Teacher       // required
	SeedTasks             []SeedTask    // at least NumPromptInstructions
	Output                string        // Arrow file to write (required); the state lives in Output + ".state.jsonl"
	NumInstructions       int           // stop once this many are kept
	NumPromptInstructions int           // seed tasks shown per prompt
	RequestBatchSize      int           // prompts per batch, sent together
	NumTasksPerPrompt     int           // tasks a prompt asks for
	PromptHeader          string        // text before the examples, "{num_tasks}" replaced
	MaxTokens             int           // per reply
	Temperature           float64       // teacher sampling temperature (0: greedy)
	TopP                  float64       // teacher nucleus mass, in (0, 1]
	Seed                  uint64        // drives prompt sampling and the teacher's seeds
	SimilarityThreshold   float64       // keep only if max ROUGE-L F ≤ this, in [0, 1]
	Blocklist             []string      // instructions naming one of these words are dropped (empty: none)
	Verifier              Verifier      // optional extra check
	RequireVerified       bool          // drop tasks the Verifier cannot check (ErrUnverifiable)
	MaxBatches            int           // stop after this many batches in total, kept or not (0: no limit)
	MaxIdleBatches        int           // fail after this many batches in a row keep nothing
	SaveInterval          time.Duration // rewrite the Arrow output at most this often (always at the end)
	Source                string        // the rows' source column
	Progress              io.Writer     // progress bar destination (nil: none)
}

// DefaultConfig has Alpaca's settings where it has one: the built-in seed
// tasks and prompt header, 100 instructions, 3 seed tasks shown per
// prompt, 5 prompts a batch, 20 tasks asked per prompt, replies of up to
// 3072 tokens at temperature 1 and top-p 1, a ROUGE-L threshold of 0.7 and
// Alpaca's blocklist; a run fails after 50 batches in a row keep nothing,
// and rewrites its output every 30 s.
func DefaultConfig() Config {
	return Config{
		SeedTasks: DefaultSeedTasks(), NumInstructions: 100, NumPromptInstructions: 3, RequestBatchSize: 5,
		NumTasksPerPrompt: 20, PromptHeader: DefaultPromptHeader(), MaxTokens: 3072, Temperature: 1, TopP: 1,
		SimilarityThreshold: 0.7, Blocklist: slices.Clone(DefaultBlocklist), MaxIdleBatches: 50,
		SaveInterval: 30 * time.Second, Source: "self-instruct",
	}
}

// Validate reports the first invalid field, naming its key (fields without
// a flag by their field name), and the teacher's own first invalid setting
// when the teacher can validate itself (as HTTPTeacher can).
func (c Config) Validate() error {
	if c.Teacher == nil {
		return errors.New("self-instruct: no teacher")
	}
	if v, ok := c.Teacher.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return fmt.Errorf("self-instruct: %w", err)
		}
	}
	if c.Output == "" {
		return fmt.Errorf("self-instruct: %s must not be empty", KeyOutput)
	}
	for _, f := range []struct {
		key string
		v   int
	}{
		{KeyNumInstructions, c.NumInstructions},
		{KeyNumPromptInstructions, c.NumPromptInstructions},
		{KeyRequestBatchSize, c.RequestBatchSize},
		{KeyNumTasks, c.NumTasksPerPrompt},
		{KeyMaxTokens, c.MaxTokens},
	} {
		if f.v <= 0 {
			return fmt.Errorf("self-instruct: %s must be positive, got %d", f.key, f.v)
		}
	}
	// A reply continues at task NumPromptInstructions+1 and is cut at the
	// stop sequence "\n{NumTasksPerPrompt}"; with fewer tasks asked, the
	// cut falls inside the first new task and no reply can parse.
	if c.NumTasksPerPrompt < c.NumPromptInstructions+2 {
		return fmt.Errorf("self-instruct: %s (%d) must exceed %s (%d) by at least 2: replies are cut where task %d would begin",
			KeyNumTasks, c.NumTasksPerPrompt, KeyNumPromptInstructions, c.NumPromptInstructions, c.NumTasksPerPrompt)
	}
	if c.RequireVerified && c.Verifier == nil {
		return fmt.Errorf("self-instruct: %s needs a verifier", KeyRequireVerified)
	}
	if len(c.SeedTasks) < c.NumPromptInstructions {
		return fmt.Errorf("self-instruct: %s: %d seed tasks, fewer than the %d shown per prompt",
			KeySeedTasks, len(c.SeedTasks), c.NumPromptInstructions)
	}
	for i, s := range c.SeedTasks {
		if len(s.Instances) == 0 {
			return fmt.Errorf("self-instruct: %s: seed task %d (%s) has no instance", KeySeedTasks, i, s.ID)
		}
	}
	if c.PromptHeader == "" {
		return fmt.Errorf("self-instruct: %s must not be empty", KeyPromptHeader)
	}
	if c.Temperature < 0 || c.Temperature != c.Temperature {
		return fmt.Errorf("self-instruct: %s must not be negative (0: greedy), got %g", KeyTemperature, c.Temperature)
	}
	if !(c.TopP > 0 && c.TopP <= 1) {
		return fmt.Errorf("self-instruct: %s must be in (0, 1], got %g", KeyTopP, c.TopP)
	}
	if !(c.SimilarityThreshold >= 0 && c.SimilarityThreshold <= 1) {
		return fmt.Errorf("self-instruct: %s must be in [0, 1], got %g", KeySimilarityThreshold, c.SimilarityThreshold)
	}
	if c.MaxBatches < 0 {
		return fmt.Errorf("self-instruct: %s must not be negative (0: no limit), got %d", KeyMaxBatches, c.MaxBatches)
	}
	if c.MaxIdleBatches <= 0 {
		return fmt.Errorf("self-instruct: MaxIdleBatches must be positive, got %d", c.MaxIdleBatches)
	}
	if c.SaveInterval <= 0 {
		return fmt.Errorf("self-instruct: SaveInterval must be positive, got %s", c.SaveInterval)
	}
	if c.Source == "" {
		return errors.New("self-instruct: Source must not be empty")
	}
	return nil
}

// DefaultHTTPTeacher waits 2 minutes for an attempt and retries a failed
// request 3 times; set BaseURL (and Model, APIKey) before use.
func DefaultHTTPTeacher() HTTPTeacher {
	return HTTPTeacher{Timeout: 2 * time.Minute, Retries: 3}
}

// Validate reports the teacher's first invalid setting, naming its key
// (fields without a flag by their field name).
func (t *HTTPTeacher) Validate() error {
	switch {
	case t.BaseURL == "":
		return fmt.Errorf("teacher: %s must not be empty", KeyTeacherURL)
	case t.Timeout <= 0:
		return fmt.Errorf("teacher: %s must be positive, got %s", KeyTeacherTimeout, t.Timeout)
	case t.Retries < 0:
		return fmt.Errorf("teacher: %s must not be negative (0: no retry), got %d", KeyTeacherRetries, t.Retries)
	case t.Concurrency < 0:
		return fmt.Errorf("teacher: %s must not be negative (0: the whole batch), got %d", KeyTeacherConcurrency, t.Concurrency)
	case t.Backoff < 0:
		return fmt.Errorf("teacher: Backoff must not be negative, got %s", t.Backoff)
	case t.MaxBackoff < 0:
		return fmt.Errorf("teacher: MaxBackoff must not be negative, got %s", t.MaxBackoff)
	}
	return nil
}
