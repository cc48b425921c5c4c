package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotune/gotune/train"
)

// The reliability tests run the default pipeline in child processes (the
// test binary started again, see TestMain) and interrupt them for real:
// SIGINT as Ctrl-C sends it and SIGKILL as `kill -9` does, each at a chosen
// point of a chosen stage. A rerun must finish what was started and leave
// the same bytes an uninterrupted run leaves.

// reliabilitySizes is the smallest default run in which every training
// stage makes a few updates: sft, reward and dpo checkpoint after each
// update (their interval is a fifth of the run), so a kill can land between
// two checkpoints; the base model checkpoints only at its end or when
// interrupted, as pretraining does for runs of fewer than 100 updates.
func reliabilitySizes() Sizes {
	return Sizes{
		WorldSeed: 1, BaseDocs: 300, BaseSteps: 3,
		SFTRows: 32, EvalRows: 8, Pairs: 24, EvalPairs: 8, Prompts: 8, EvalPrompts: 4, EvalTasks: 8,
		SelfInstructBatches: 1,
		SFTSteps:            3, RewardSteps: 3, DPOSteps: 3, PPOIterations: 1,
	}
}

// child is a pipeline process started by a test.
type child struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	code int
}

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startChild starts the test binary as a pipeline process running spec.
func startChild(t *testing.T, name string, spec childSpec) *child {
	t.Helper()
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, name: name, out: &syncBuffer{}, done: make(chan struct{}), code: -1}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), childEnv+"="+string(raw))
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	go func() {
		err := c.cmd.Wait()
		var ee *exec.ExitError
		switch {
		case err == nil:
			c.code = 0
		case errors.As(err, &ee):
			c.code = ee.ExitCode() // -1 when killed by a signal
		}
		close(c.done)
	}()
	t.Cleanup(func() {
		if !c.exited() {
			c.cmd.Process.Kill()
			<-c.done
		}
	})
	return c
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// wait returns the child's exit code (-1 after a fatal signal).
func (c *child) wait() int {
	<-c.done
	return c.code
}

// signal sends sig to the child; it fails the test if the child has
// already exited, since then the signal did not interrupt anything.
func (c *child) signal(sig syscall.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil || c.exited() {
		c.t.Fatalf("%s: could not send %v (%v); output:\n%s", c.name, sig, err, c.out)
	}
}

// until polls cond until it holds; the test fails if the child exits first.
func (c *child) until(what string, cond func() bool) {
	c.t.Helper()
	for !cond() {
		if c.exited() {
			c.t.Fatalf("%s exited (code %d) before %s; output:\n%s", c.name, c.code, what, c.out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// expect waits for the child and fails unless it exited with code.
func (c *child) expect(code int) {
	c.t.Helper()
	if got := c.wait(); got != code {
		c.t.Fatalf("%s exited with %d, want %d; output:\n%s", c.name, got, code, c.out)
	}
}

// stageRecord reads a stage directory's .stage.json (nil when absent or
// being replaced).
func stageRecord(dir string) *record {
	raw, err := os.ReadFile(filepath.Join(dir, ".stage.json"))
	if err != nil {
		return nil
	}
	var r record
	if json.Unmarshal(raw, &r) != nil {
		return nil
	}
	return &r
}

// checkpointStep is the update count of the checkpoint in a stage
// directory's state/, or -1 when there is none.
func checkpointStep(dir string) int {
	raw, err := os.ReadFile(filepath.Join(train.StateDir(dir), train.StateFile))
	if err != nil {
		return -1
	}
	var st train.State
	if json.Unmarshal(raw, &st) != nil {
		return -1
	}
	return st.Step
}

// midCheckpoint holds while a stage is running and has checkpointed after
// at least one but not all of its updates.
func midCheckpoint(dir string, steps int) func() bool {
	return func() bool {
		rec := stageRecord(dir)
		s := checkpointStep(dir)
		return rec != nil && rec.Status == statusRunning && s >= 1 && s < steps
	}
}

// running holds while a stage's record says running.
func running(dir string) func() bool {
	return func() bool {
		rec := stageRecord(dir)
		return rec != nil && rec.Status == statusRunning
	}
}

// logged holds once the child's log has the runner's line for stage.
func (c *child) logged(stage, what string) func() bool {
	line := fmt.Sprintf("%-13s %s", stage, what)
	return func() bool { return strings.Contains(c.out.String(), line) }
}

// leftovers lists temporary files and directories (atomicfile's
// ".name.tmp-*", ReplaceDir's "dir.tmp" and "dir.old") under the roots.
func leftovers(t *testing.T, roots ...string) []string {
	t.Helper()
	var out []string
	for _, root := range roots {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == root {
				return filepath.SkipDir
			}
			if err != nil {
				return err
			}
			n := d.Name()
			if strings.Contains(n, ".tmp") || strings.HasSuffix(n, ".old") {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// finalOutputs are the files whose bytes a resumed run must reproduce,
// relative to the run directory ("base/" for the base model directory).
var finalOutputs = []string{
	"base/model.safetensors", "base/tokenizer.json", "base/config.json",
	"data/" + FileSFT,
	"sft/adapter/adapter_model.safetensors",
	"reward/adapter/adapter_model.safetensors",
	"dpo/adapter/adapter_model.safetensors",
	"ppo/adapter/adapter_model.safetensors", "ppo/" + "value_head.safetensors",
	"export/model/model.safetensors",
	"eval/" + FileEval,
}

// loggedStages keep a metrics.jsonl whose records a resumed run must
// reproduce, throughput aside.
var loggedStages = []string{"base", "sft", "reward", "dpo", "ppo"}

func outputPath(spec childSpec, rel string) string {
	if rest, ok := strings.CutPrefix(rel, "base/"); ok {
		return filepath.Join(spec.Base, rest)
	}
	return filepath.Join(spec.Run, rel)
}

// compareRuns fails for every final output whose bytes differ between the
// runs, and for every metrics record that does.
func compareRuns(t *testing.T, want, got childSpec) {
	t.Helper()
	for _, rel := range finalOutputs {
		a, err := os.ReadFile(outputPath(want, rel))
		if err != nil {
			t.Errorf("uninterrupted run: %v", err)
			continue
		}
		b, err := os.ReadFile(outputPath(got, rel))
		if err != nil {
			t.Errorf("interrupted run: %v", err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs after interruptions (%d vs %d bytes)", rel, len(a), len(b))
		}
	}
	for _, stage := range loggedStages {
		a, err := readComparableMetrics(outputPath(want, stage+"/metrics.jsonl"))
		if err != nil {
			t.Errorf("uninterrupted run: %v", err)
			continue
		}
		b, err := readComparableMetrics(outputPath(got, stage+"/metrics.jsonl"))
		if err != nil {
			t.Errorf("interrupted run: %v", err)
			continue
		}
		if len(a) != len(b) {
			t.Errorf("%s/metrics.jsonl: %d records after interruptions, %d without", stage, len(b), len(a))
			continue
		}
		for i := range a {
			if !reflect.DeepEqual(a[i], b[i]) {
				t.Errorf("%s/metrics.jsonl record %d differs after interruptions:\n got %v\nwant %v", stage, i+1, b[i], a[i])
			}
		}
	}
}

// readComparableMetrics reads a metrics log without its wall-clock
// throughput, the one value a resumed run cannot reproduce.
func readComparableMetrics(path string) ([]map[string]float64, error) {
	recs, err := train.ReadMetrics(path)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		delete(r, train.KeyTokensPerSec)
	}
	return recs, nil
}

// TestInterruptedRunsResumeExactly runs the default pipeline twice in
// parallel: once without interruption and once interrupted in turn during
// the base pretraining (Ctrl-C, then kill -9 after it resumed), sft, reward
// and dpo (kill -9 between two checkpoints), with dpo's checkpoint left as a
// kill in the middle of replacing it leaves it. Every rerun resumes, and the
// final models, adapters, evaluation and metrics equal the uninterrupted
// run's byte for byte.
func TestInterruptedRunsResumeExactly(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the default pipeline twice in child processes (about a minute); skipped in -short mode")
	}
	root := t.TempDir()
	z := reliabilitySizes()
	ref := childSpec{Run: filepath.Join(root, "ref"), Base: filepath.Join(root, "ref-base"), Sizes: z}
	cut := childSpec{Run: filepath.Join(root, "cut"), Base: filepath.Join(root, "cut-base"), Sizes: z}

	t0 := time.Now()
	whole := startChild(t, "uninterrupted run", ref)

	// Ctrl-C while the base model trains: the child writes a checkpoint of
	// its last completed update and exits with 130.
	c := startChild(t, "run 1", cut)
	c.until("base training started", func() bool {
		_, err := os.Stat(filepath.Join(cut.Base, "tokenizer.json"))
		return err == nil && running(cut.Base)()
	})
	c.signal(syscall.SIGINT)
	c.expect(exitInterrupted)
	t.Logf("Ctrl-C: base checkpoint at update %d after %s", checkpointStep(cut.Base), time.Since(t0).Round(time.Second))
	if s := checkpointStep(cut.Base); s < 0 || s >= z.BaseSteps {
		t.Fatalf("after Ctrl-C the base checkpoint is at update %d, want one in [0, %d); output:\n%s", s, z.BaseSteps, c.out)
	}
	if rec := stageRecord(cut.Base); rec == nil || rec.Status != statusRunning {
		t.Fatalf("after Ctrl-C the base record is %+v, want status running", rec)
	}
	if l := leftovers(t, cut.Base, cut.Run); len(l) > 0 {
		t.Fatalf("Ctrl-C left temporary files: %v", l)
	}

	// kill -9 while the base resumes from that checkpoint.
	c = startChild(t, "run 2", cut)
	c.until("base resumed", c.logged("base", "resuming"))
	c.signal(syscall.SIGKILL)
	c.wait()
	expectResumed(t, c, "base")
	if rec := stageRecord(cut.Base); rec.Status != statusRunning {
		t.Fatal("run 2 finished the base before it was killed; the kill tested nothing")
	}

	// kill -9 between two checkpoints of sft, reward and dpo; each run
	// resumes the stage the one before it was killed in.
	killed := "base"
	for i, st := range []struct {
		name  string
		steps int
	}{{"sft", z.SFTSteps}, {"reward", z.RewardSteps}, {"dpo", z.DPOSteps}} {
		c = startChild(t, fmt.Sprintf("run %d", i+3), cut)
		dir := filepath.Join(cut.Run, st.name)
		c.until(st.name+" checkpointed mid-way", midCheckpoint(dir, st.steps))
		c.signal(syscall.SIGKILL)
		c.wait()
		if s := checkpointStep(dir); s >= st.steps {
			t.Fatalf("%s finished before it was killed; the kill tested nothing", st.name)
		}
		expectResumed(t, c, killed)
		t.Logf("%s killed after update %d at %s", st.name, checkpointStep(dir), time.Since(t0).Round(time.Second))
		killed = st.name
	}
	// A kill between ReplaceDir's two renames leaves the last checkpoint
	// only in state.old (and the next one, complete or not, in state.tmp).
	dpoState := train.StateDir(filepath.Join(cut.Run, "dpo"))
	if err := os.Rename(dpoState, dpoState+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dpoState+".tmp", 0o755); err != nil {
		t.Fatal(err)
	}

	c = startChild(t, "last run", cut)
	c.expect(exitOK)
	expectResumed(t, c, killed)
	whole.expect(exitOK)
	t.Logf("uninterrupted run:\n%s", whole.out)
	t.Logf("last run:\n%s", c.out)
	compareRuns(t, ref, cut)
}

// expectResumed fails unless the child's log says it resumed stage.
func expectResumed(t *testing.T, c *child, stage string) {
	t.Helper()
	if !c.logged(stage, "resuming")() {
		t.Errorf("%s did not resume %s; output:\n%s", c.name, stage, c.out)
	}
}
