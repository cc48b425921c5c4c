package tinymodel

import (
	"bytes"
	"context"
	"os"
	"sync"
	"testing"
)

// SharedDir is a temporary directory of models and data that a package's
// tests share: made once, by the first test that needs it, and removed by
// Remove in the package's TestMain, so that a slow fixture (a model trained
// for the tests) is trained once per package rather than once per test.
type SharedDir struct {
	once sync.Once
	path string
	err  error
}

// Make returns the directory, creating it (its name starting with prefix)
// and calling build in it the first time. A failure of either fails this
// test and every later one that asks for the directory.
func (d *SharedDir) Make(tb testing.TB, prefix string, build func(dir string) error) string {
	tb.Helper()
	d.once.Do(func() {
		if d.path, d.err = os.MkdirTemp("", prefix); d.err != nil {
			return
		}
		d.err = build(d.path)
	})
	if d.err != nil {
		tb.Fatal(d.err)
	}
	return d.path
}

// Remove deletes the directory if it was made; TestMain calls it after the
// tests ran.
func (d *SharedDir) Remove() {
	if d.path != "" {
		os.RemoveAll(d.path)
	}
}

// CancelAfterLines is a context that reports cancellation once the file
// at Path (a training run's metrics.jsonl) holds N lines. A training loop
// checks its context before each update, so a run given it stops as after
// Ctrl-C once N records are logged: how tests interrupt a run to resume it.
type CancelAfterLines struct {
	context.Context
	Path string
	N    int
}

// Err is context.Canceled once the file holds N lines, else nil.
func (c CancelAfterLines) Err() error {
	b, _ := os.ReadFile(c.Path)
	if bytes.Count(b, []byte("\n")) >= c.N {
		return context.Canceled
	}
	return nil
}
