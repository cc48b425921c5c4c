package configtest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestNamesKey(t *testing.T) {
	for _, c := range []struct {
		msg, key string
		want     bool
	}{
		{"sft: batch-size must be positive, got 0", "batch-size", true},
		{"batch-size must be positive", "batch-size", true},
		{"sft: unknown template (template: vicuna)", "template", true},
		{"eval: a text needs a tokenizer (tokenizer)", "tokenizer", true},
		{"reward: lora-r must be positive", "lora-r", true},
		{"sft: max-steps must be positive", "steps", false},
		{"train: peak-lr must be positive", "lr", false},
		{"train: batch-sizes must be positive", "batch-size", false},
		{"", "out", false},
	} {
		if got := NamesKey(errors.New(c.msg), c.key); got != c.want {
			t.Errorf("NamesKey(%q, %q) = %v, want %v", c.msg, c.key, got, c.want)
		}
	}
}

// config is a configuration with one positive field and one required one.
type config struct {
	Size int
	Out  string
}

func (c config) validate() error {
	if c.Size <= 0 {
		return fmt.Errorf("size must be positive, got %d", c.Size)
	}
	if c.Out == "" {
		return errors.New("out is required")
	}
	return nil
}

var (
	valid = config{Size: 1, Out: "o"}
	cases = []Case[config]{
		{"size", func(c *config) { c.Size = 0 }},
		{"out", func(c *config) { c.Out = "" }},
	}
)

// TestCheckPasses: a validation that names each key, and a run that
// returns its error, wrapped or not, pass; so does a stage's Run through
// StageRun.
func TestCheckPasses(t *testing.T) {
	Check(t, valid, config.validate, func(c config) error { return c.validate() }, cases)
	Check(t, valid, config.validate, func(c config) error { return fmt.Errorf("write o: %w", c.validate()) }, cases)
	Check(t, valid, config.validate, nil, cases)
	stage := func(ctx context.Context, c config) (int, error) {
		if ctx == nil {
			return 0, errors.New("no context")
		}
		return 1, c.validate()
	}
	Check(t, valid, config.validate, StageRun(stage), cases)
}

// recorder stands in for the test given to Check and keeps what it
// reports; Fatalf ends the goroutine, as testing.T's does.
type recorder struct {
	testing.TB
	msgs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

// TestCheckFails requires Check to report each way a validation table can
// be broken: the valid configuration refused, an error naming another
// key, an invalid case accepted, and a run whose error is not Validate's.
func TestCheckFails(t *testing.T) {
	vague := func(c config) error {
		if c.validate() != nil {
			return errors.New("something is wrong")
		}
		return nil
	}
	for _, c := range []struct {
		name     string
		valid    config
		validate func(config) error
		run      func(config) error
		want     string
	}{
		{"valid refused", config{Out: "o"}, config.validate, nil, "the valid configuration: size must be positive"},
		{"other key", valid, vague, nil, "case 0 (size): Validate gave something is wrong, want an error naming size"},
		{"accepted", valid, func(config) error { return nil }, nil, "case 1 (out): Validate gave <nil>"},
		{"run error", valid, config.validate, func(config) error { return errors.New("out: cannot write") }, "case 0 (size): the run gave out: cannot write, want Validate's size must be positive"},
		{"run nil", valid, config.validate, func(config) error { return nil }, "case 1 (out): the run gave <nil>"},
	} {
		r := &recorder{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Check(r, c.valid, c.validate, c.run, cases)
		}()
		<-done
		if !strings.Contains(strings.Join(r.msgs, "\n"), c.want) {
			t.Errorf("%s: Check reported %q, want a line holding %q", c.name, r.msgs, c.want)
		}
	}
}
