// Package configtest runs the validation table of a configuration: each
// case makes one field of a valid configuration wrong, and the error must
// name that field's key, so that a user who set it learns which flag or
// config-file key to fix. It serves the Config of every stage and of the
// packages below them, which all validate the same way.
//
// May import: nothing of the module (the standard library only); imported
// by tests only.
package configtest

import (
	"context"
	"regexp"
	"strings"
	"testing"
)

// Case is one invalid configuration: Edit makes a copy of the valid
// configuration wrong, and Key is the key the error must name. Edit gets
// a shallow copy, so it replaces the slices and maps it changes rather
// than writing into them.
type Case[C any] struct {
	Key  string
	Edit func(*C)
}

// Check requires validate to accept valid, then, for each case, to refuse
// the edited copy with an error naming the case's key as a word of its
// own (see NamesKey). When run is not nil it is the entry point that
// validates first (a stage's Run, a constructor): it must refuse the same
// copy with an error holding Validate's message (wrapped with context or
// not), so that nothing is done with a configuration that Validate
// refuses.
func Check[C any](t testing.TB, valid C, validate func(C) error, run func(C) error, cases []Case[C]) {
	t.Helper()
	if err := validate(valid); err != nil {
		t.Fatalf("the valid configuration: %v", err)
	}
	for i, c := range cases {
		cfg := valid
		c.Edit(&cfg)
		err := validate(cfg)
		if err == nil || !NamesKey(err, c.Key) {
			t.Errorf("case %d (%s): Validate gave %v, want an error naming %s", i, c.Key, err, c.Key)
			continue
		}
		if run == nil {
			continue
		}
		if runErr := run(cfg); runErr == nil || !strings.Contains(runErr.Error(), err.Error()) {
			t.Errorf("case %d (%s): the run gave %v, want Validate's %v", i, c.Key, runErr, err)
		}
	}
}

// NamesKey reports whether err's message holds key as a word of its own:
// at the start or after a space, a colon or an opening parenthesis, and
// at the end or before a space, a colon or a closing parenthesis. So
// "steps" is not found in "max-steps", nor "lr" in "peak-lr".
func NamesKey(err error, key string) bool {
	return regexp.MustCompile(`(^|[\s:(])` + regexp.QuoteMeta(key) + `($|[\s:)])`).MatchString(err.Error())
}

// StageRun adapts a stage's Run(ctx, cfg) (result, error) to the run that
// Check takes: it calls Run with a background context and keeps the error.
func StageRun[C, R any](run func(context.Context, C) (R, error)) func(C) error {
	return func(c C) error {
		_, err := run(context.Background(), c)
		return err
	}
}
