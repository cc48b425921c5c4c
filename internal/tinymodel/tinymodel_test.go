package tinymodel

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestNLL checks the reference NLL on values known by hand, and that it
// stays finite for logits whose exponentials overflow float64.
func TestNLL(t *testing.T) {
	for _, c := range []struct {
		logits []float32
		target int
		want   float64
	}{
		{[]float32{0, 0}, 0, math.Ln2},
		{[]float32{0, 0, 0, 0}, 3, math.Log(4)},
		{[]float32{2, 0}, 1, 2 + math.Log(1+math.Exp(-2))},
		{[]float32{1000, 0}, 1, 1000},
		{[]float32{1000, 1000}, 0, math.Ln2},
	} {
		if got := NLL(c.logits, c.target); math.Abs(got-c.want) > 1e-9*math.Max(1, c.want) {
			t.Errorf("NLL(%v, %d) = %v, want %v", c.logits, c.target, got, c.want)
		}
	}
}

// TestSharedDir: the directory is built once, whoever asks, and removed.
func TestSharedDir(t *testing.T) {
	var d SharedDir
	builds := 0
	build := func(dir string) error {
		builds++
		return os.WriteFile(filepath.Join(dir, "model"), []byte("x"), 0o644)
	}
	first := d.Make(t, "shared-test", build)
	if again := d.Make(t, "shared-test", build); again != first || builds != 1 {
		t.Fatalf("second Make gave %s (first %s) after %d builds, want the same directory built once", again, first, builds)
	}
	if _, err := os.Stat(filepath.Join(first, "model")); err != nil {
		t.Fatal(err)
	}
	d.Remove()
	if _, err := os.Stat(first); !os.IsNotExist(err) {
		t.Errorf("after Remove: %v, want the directory gone", err)
	}
}

// TestCancelAfterLines: the context is cancelled from the N-th line of its
// file on, and not before (nor while the file is missing).
func TestCancelAfterLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.jsonl")
	c := CancelAfterLines{Context: context.Background(), Path: path, N: 2}
	for _, text := range []string{"", "{}\n", "{}\n{}"} {
		if text != "" {
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.Err(); err != nil {
			t.Errorf("file %q: %v, want no cancellation", text, err)
		}
	}
	if err := os.WriteFile(path, []byte("{}\n{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Err(); !errors.Is(err, context.Canceled) {
		t.Errorf("two lines: %v, want context.Canceled", err)
	}
}
