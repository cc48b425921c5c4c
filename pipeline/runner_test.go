package pipeline

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// countingStage writes its input's content into its output and counts runs.
func countingStage(r *Runner, in string, cfg map[string]int, runs *int, resumed *[]bool, fail *bool) Stage {
	out := filepath.Join(r.StageDir("copy"), "out.txt")
	return Stage{
		Name: "copy", Inputs: []string{in}, Outputs: []string{out}, Config: cfg,
		Run: func(ctx context.Context, resume bool) error {
			*runs++
			*resumed = append(*resumed, resume)
			if *fail {
				return errors.New("interrupted")
			}
			b, err := os.ReadFile(in)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		},
	}
}

func TestRunnerSkipsRerunsAndResumes(t *testing.T) {
	dir := t.TempDir()
	r := &Runner{RunDir: filepath.Join(dir, "run")}
	in := filepath.Join(dir, "in.txt")
	if err := os.WriteFile(in, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	runs, fail := 0, false
	var resumed []bool
	cfg := map[string]int{"steps": 3}
	run := func() ([]Outcome, error) {
		return r.Run(context.Background(), []Stage{countingStage(r, in, cfg, &runs, &resumed, &fail)})
	}
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	out, err := run()
	if err != nil || runs != 1 || !out[0].Skipped {
		t.Fatalf("second run: runs=%d outcome=%+v err=%v; want skipped", runs, out, err)
	}
	// Changing the input reruns the stage from scratch.
	if err := os.WriteFile(in, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run(); err != nil || runs != 2 || resumed[1] {
		t.Fatalf("after input change: runs=%d resumed=%v err=%v", runs, resumed, err)
	}
	got, _ := os.ReadFile(filepath.Join(r.StageDir("copy"), "out.txt"))
	if string(got) != "two" {
		t.Fatalf("output %q, want two", got)
	}
	// Changing the config reruns it too; an interruption leaves it resumable.
	cfg["steps"] = 4
	fail = true
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "stage copy") {
		t.Fatalf("want the stage's error, got %v", err)
	}
	fail = false
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	if runs != 4 || resumed[2] || !resumed[3] {
		t.Fatalf("runs=%d resumed=%v; want the last run to resume the interrupted one", runs, resumed)
	}
}

func TestRunnerMissingOutput(t *testing.T) {
	r := &Runner{RunDir: t.TempDir()}
	s := Stage{Name: "lazy", Outputs: []string{filepath.Join(r.RunDir, "lazy", "never")},
		Run: func(context.Context, bool) error { return nil }}
	if _, err := r.Run(context.Background(), []Stage{s}); err == nil || !strings.Contains(err.Error(), "without its output") {
		t.Fatalf("want missing-output error, got %v", err)
	}
}

func TestStageKeyIgnoresBookkeeping(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "adapter"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "adapter", "w.bin"), []byte("w"), 0o644)
	s := Stage{Name: "x", Inputs: []string{dir}, Config: 1}
	k1, err := StageKey(s)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "state"), 0o755)
	os.WriteFile(filepath.Join(dir, "state", "opt.bin"), []byte("m"), 0o644)
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), []byte("{}"), 0o644)
	k2, _ := StageKey(s)
	if k1 != k2 {
		t.Error("checkpoint state and metrics changed the key")
	}
	os.WriteFile(filepath.Join(dir, "adapter", "w.bin"), []byte("v"), 0o644)
	k3, _ := StageKey(s)
	if k3 == k1 {
		t.Error("changed adapter bytes did not change the key")
	}
}

// Sizes.Validate accepts the default and quick sizes and names the flag of
// a size that is not positive.
func TestSizesValidate(t *testing.T) {
	for _, z := range []Sizes{DefaultSizes(), QuickSizes()} {
		if err := z.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	z := DefaultSizes()
	z.WorldSeed = -3 // any seed
	if err := z.Validate(); err != nil {
		t.Fatal(err)
	}
	for flag, edit := range map[string]func(*Sizes){
		"base-steps":            func(z *Sizes) { z.BaseSteps = -1 },
		"eval-tasks":            func(z *Sizes) { z.EvalTasks = 0 },
		"self-instruct-batches": func(z *Sizes) { z.SelfInstructBatches = 0 },
		"pair-samples":          func(z *Sizes) { z.PairSamples = -2 },
	} {
		z := DefaultSizes()
		edit(&z)
		if err := z.Validate(); err == nil || !strings.Contains(err.Error(), flag+" must be positive") {
			t.Errorf("%s: %v", flag, err)
		}
	}
}
