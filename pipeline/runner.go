// Package pipeline runs gotune's stages in order inside one run directory:
// it declares each stage's inputs and outputs, skips a stage whose outputs
// are up to date (a content hash of its inputs and configuration), resumes a
// stage that was interrupted, and writes the end-of-run report.
//
// A run directory holds config.yaml (the resolved configuration), data/
// (datasets the run made or imported) and one directory per stage with its
// adapter, state, metrics.jsonl and a .stage.json record of the inputs it
// was run on.
//
// May import: every stage, the shared fine-tuning layer (finetune, train,
// lora), model/..., tokenizer/..., data/..., checkpoints/..., internal/blas
// and internal/kernel; not cmd.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/gotune/gotune/checkpoints/atomicfile"
)

// Stage is one step of a run.
type Stage struct {
	// Name is the stage's directory under the run directory.
	Name string
	// Dir overrides the stage's directory (a base model shared by runs
	// lives outside any run directory).
	Dir string
	// Inputs are files or directories the stage reads; their content is
	// part of the stage's key, so a change to any of them reruns it.
	Inputs []string
	// Outputs are files or directories the stage must leave behind; a stage
	// is up to date only when all exist.
	Outputs []string
	// Config is the stage's resolved configuration; its JSON form is part
	// of the key.
	Config any
	// Run does the work. resume is true when the stage was interrupted
	// earlier with the same key, so its own checkpoints may be continued.
	Run func(ctx context.Context, resume bool) error
}

// record is a stage's .stage.json.
type record struct {
	Key      string    `json:"key"`
	Status   string    `json:"status"` // "running" or "done"
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished,omitzero"`
}

const (
	statusRunning = "running"
	statusDone    = "done"
)

// Runner runs stages in order in RunDir.
type Runner struct {
	RunDir string
	Log    io.Writer // one line per stage; nil for none
}

// StageDir is the stage's own directory.
func (r *Runner) StageDir(name string) string { return filepath.Join(r.RunDir, name) }

func (r *Runner) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

// Outcome says what happened to a stage.
type Outcome struct {
	Stage    string
	Skipped  bool // outputs were up to date
	Resumed  bool // continued an interrupted run
	Duration time.Duration
}

// Run runs every stage that is not up to date, in order. It stops at the
// first error, leaving that stage resumable.
func (r *Runner) Run(ctx context.Context, stages []Stage) ([]Outcome, error) {
	var out []Outcome
	for _, s := range stages {
		o, err := r.runStage(ctx, s)
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
	return out, nil
}

func (r *Runner) runStage(ctx context.Context, s Stage) (Outcome, error) {
	o := Outcome{Stage: s.Name}
	if err := ctx.Err(); err != nil {
		return o, err
	}
	key, err := StageKey(s)
	if err != nil {
		return o, fmt.Errorf("stage %s: %w", s.Name, err)
	}
	dir := r.StageDir(s.Name)
	if s.Dir != "" {
		dir = s.Dir
	}
	recPath := filepath.Join(dir, ".stage.json")
	prev, err := readRecord(recPath)
	if err != nil {
		return o, fmt.Errorf("stage %s: unusable directory %s: %w", s.Name, dir, err)
	}
	if prev != nil && prev.Key == key && prev.Status == statusDone && allExist(s.Outputs) {
		r.logf("%-13s up to date", s.Name)
		o.Skipped = true
		return o, nil
	}
	resume := prev != nil && prev.Key == key && prev.Status == statusRunning
	if !resume && prev != nil {
		// Stale results of other inputs or settings: start clean.
		if err := os.RemoveAll(dir); err != nil {
			return o, fmt.Errorf("stage %s: clear stale outputs: %w", s.Name, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return o, fmt.Errorf("stage %s: unusable directory %s: %w", s.Name, dir, err)
	}
	rec := record{Key: key, Status: statusRunning, Started: time.Now().UTC()}
	if err := writeRecord(recPath, rec); err != nil {
		return o, fmt.Errorf("stage %s: %w", s.Name, err)
	}
	if resume {
		if err := removeTemporaries(dir); err != nil {
			return o, fmt.Errorf("stage %s: %w", s.Name, err)
		}
		r.logf("%-13s resuming", s.Name)
	} else {
		r.logf("%-13s running", s.Name)
	}
	start := time.Now()
	if err := s.Run(ctx, resume); err != nil {
		return o, fmt.Errorf("stage %s: %w", s.Name, err)
	}
	for _, p := range s.Outputs {
		if _, err := os.Stat(p); err != nil {
			return o, fmt.Errorf("stage %s finished without its output: %w", s.Name, err)
		}
	}
	rec.Status, rec.Finished = statusDone, time.Now().UTC()
	if err := writeRecord(recPath, rec); err != nil {
		return o, fmt.Errorf("stage %s: %w", s.Name, err)
	}
	o.Resumed, o.Duration = resume, time.Since(start)
	r.logf("%-13s done in %s", s.Name, o.Duration.Round(time.Second))
	return o, nil
}

// StageKey hashes a stage's name, configuration and the content of its
// inputs (file bytes; for directories, every file's relative path and
// bytes, in lexical order).
func StageKey(s Stage) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "stage %s\n", s.Name)
	cfg, err := json.Marshal(s.Config)
	if err != nil {
		return "", fmt.Errorf("hash config: %w", err)
	}
	fmt.Fprintf(h, "config %d %s\n", len(cfg), cfg)
	for _, in := range s.Inputs {
		if err := hashPath(h, in); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func hashPath(h io.Writer, root string) error {
	var files []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			// A stage's private bookkeeping does not change what it produced.
			if p != root && (d.Name() == "state" || d.Name() == "state.tmp" || d.Name() == "state.old") {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == ".stage.json" || d.Name() == "metrics.jsonl" {
			return nil
		}
		files = append(files, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("hash input %s: %w", root, err)
	}
	sort.Strings(files)
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		fh, err := os.Open(f)
		if err != nil {
			return fmt.Errorf("hash input %s: %w", f, err)
		}
		st, _ := fh.Stat()
		fmt.Fprintf(h, "file %s %d\n", filepath.ToSlash(rel), st.Size())
		_, err = io.Copy(h, fh)
		fh.Close()
		if err != nil {
			return fmt.Errorf("hash input %s: %w", f, err)
		}
	}
	return nil
}

// removeTemporaries deletes what writes cut off by a crash leave in a
// stage directory: files written under a temporary name to be renamed into
// place (".name.tmp…") and directories being filled to replace another
// ("name.tmp"). A "name.old" directory is kept: it may be the only complete
// checkpoint, which the stage recovers.
func removeTemporaries(dir string) error {
	var tmp []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if p == dir {
			return nil
		}
		if d.IsDir() && strings.HasSuffix(n, ".tmp") || !d.IsDir() && strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp") {
			tmp = append(tmp, p)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove temporary files: %w", err)
	}
	for _, p := range tmp {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove temporary files: %w", err)
		}
	}
	return nil
}

func allExist(paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

func readRecord(path string) (*record, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		// A damaged record means we cannot trust the directory: rerun.
		return &record{}, nil
	}
	return &rec, nil
}

func writeRecord(path string, rec record) error {
	raw, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(path, append(raw, '\n'))
}

// Select keeps the stages named in names, in pipeline order; no names
// keeps them all. An unknown name is an error listing the known ones.
func Select(stages []Stage, names []string) ([]Stage, error) {
	if len(names) == 0 {
		return stages, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []Stage
	var known []string
	for _, s := range stages {
		known = append(known, s.Name)
		if want[s.Name] {
			out = append(out, s)
			delete(want, s.Name)
		}
	}
	for n := range want {
		return nil, fmt.Errorf("unknown stage %q (stages: %s)", n, strings.Join(known, ", "))
	}
	return out, nil
}
