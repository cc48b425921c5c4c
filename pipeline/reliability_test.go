//go:build linux

package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/eval"
	"github.com/gotune/gotune/onpolicy"
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
		WorldSeed: 1, BaseDocs: 300, BaseTaskLists: 30, BaseSteps: 3,
		SFTRows: 32, SFTChatRows: 4, EvalRows: 8, Pairs: 24, EvalPairs: 8, Prompts: 8, EvalPrompts: 4, EvalTasks: 8,
		SelfInstructBatches: 1,
		SFTSteps:            3, RewardSteps: 3, DPOSteps: 3, PPOIterations: 1, GRPOIterations: 1,
		PPORollouts: 8, PairSamples: 2,
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
	// A child outlives no test binary, even one killed by its timeout. The
	// kernel sends Pdeathsig when the starting thread ends, so that thread
	// stays locked to the goroutine that waits for the child.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	started := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
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
	if err := <-started; err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
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
	"pairs/" + FileMinedPairs, "pairs/" + FilePairsReport,
	"reward/adapter/adapter_model.safetensors",
	"dpo/adapter/adapter_model.safetensors",
	"ppo/adapter/adapter_model.safetensors", "ppo/" + "value_head.safetensors",
	"grpo/adapter/adapter_model.safetensors",
	"export/model/model.safetensors",
	"eval/" + FileEval,
}

// loggedStages keep a metrics.jsonl whose records a resumed run must
// reproduce, throughput aside.
var loggedStages = []string{"base", "sft", "reward", "dpo", "ppo", "grpo"}

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
// and dpo (kill -9 between two checkpoints, with dpo's checkpoint then left
// as a kill in the middle of replacing it leaves it) and ppo (kill -9 before
// its first checkpoint). Every rerun resumes, and the final models,
// adapters, evaluation and metrics equal the uninterrupted run's byte for
// byte.
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

	// Ctrl-C once the base stage has its tokenizer (while it builds its
	// graph or makes its first update): the child writes a checkpoint of
	// its last completed update, the only one it has, and exits with 130.
	c := startChild(t, "run 1", cut)
	c.until("base training started", func() bool {
		_, err := os.Stat(filepath.Join(cut.Base, "tokenizer.json"))
		return err == nil && running(cut.Base)()
	})
	sent := time.Now()
	c.signal(syscall.SIGINT)
	c.expect(exitInterrupted)
	t.Logf("Ctrl-C: exit 130 %s after the signal, base checkpoint at update %d", time.Since(sent).Round(time.Millisecond), checkpointStep(cut.Base))
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
	// The metrics lines of the updates before a kill, wall-clock throughput
	// included: a stage that resumes keeps them, one that started over
	// would have logged new ones.
	type keptLines struct {
		step  int
		lines []string
	}
	kept := map[string]keptLines{}
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
		k := checkpointStep(dir)
		t.Logf("%s killed after update %d at %s", st.name, k, time.Since(t0).Round(time.Second))
		kept[st.name] = keptLines{k, metricLinesUpTo(t, train.MetricsFile(dir), k)}
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

	// kill -9 in ppo before its first checkpoint (it checkpoints at the end
	// of its only iteration): the rerun starts it afresh.
	c = startChild(t, "run 6", cut)
	c.until("ppo training started", func() bool {
		_, err := os.Stat(train.MetricsFile(filepath.Join(cut.Run, "ppo")))
		return err == nil
	})
	c.signal(syscall.SIGKILL)
	c.wait()
	expectResumed(t, c, killed)
	if train.HasCheckpoint(filepath.Join(cut.Run, "ppo")) {
		t.Fatal("ppo checkpointed before it was killed; the kill tested nothing")
	}

	c = startChild(t, "last run", cut)
	c.expect(exitOK)
	expectResumed(t, c, "ppo")
	if l := leftovers(t, cut.Run, cut.Base); len(l) > 0 {
		t.Errorf("temporary files left after the run finished: %v", l)
	}
	for stage, k := range kept {
		got := metricLinesUpTo(t, train.MetricsFile(filepath.Join(cut.Run, stage)), k.step)
		if len(k.lines) == 0 || !reflect.DeepEqual(got, k.lines) {
			t.Errorf("%s started over instead of resuming: its metrics up to update %d were\n%s\nbefore the kill and are now\n%s",
				stage, k.step, strings.Join(k.lines, ""), strings.Join(got, ""))
		}
	}
	whole.expect(exitOK)
	t.Logf("uninterrupted run:\n%s", whole.out)
	t.Logf("last run:\n%s", c.out)
	compareRuns(t, ref, cut)
	checkPairsAndEval(t, ref)
}

// checkPairsAndEval checks the pairs stage's dataset against the world (one
// row per training pair, chosen right and rejected wrong by the world's
// checker, the SFT model's answer wherever the report says it paired one)
// and the eval stage's counts.
func checkPairsAndEval(t *testing.T, spec childSpec) {
	t.Helper()
	z := spec.Sizes
	rows, err := data.ReadPreferences(filepath.Join(spec.Run, "pairs", FileMinedPairs))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(spec.Run, "pairs", FilePairsReport))
	if err != nil {
		t.Fatal(err)
	}
	var rep onpolicy.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	wp := world.New(z.WorldSeed).Preferences(world.Train, z.Pairs)
	if len(rows) != len(wp) || rep.Tasks != len(wp) || rep.Samples != len(wp)*z.PairSamples {
		t.Fatalf("pairs: %d rows, report %+v; want %d rows and tasks, %d samples", len(rows), rep, len(wp), len(wp)*z.PairSamples)
	}
	changed := 0
	for i, r := range rows {
		w := wp[i]
		if r.Prompt != w.Prompt || r.Chosen != w.Chosen || !world.Check(w.Task, r.Chosen) || world.Check(w.Task, r.Rejected) {
			t.Fatalf("pairs row %d = %+v: want prompt and chosen of %+v and a wrong rejected answer", i, r, w)
		}
		if r.Rejected != w.Rejected {
			changed++
		}
	}
	if changed > rep.Pairs || rep.Pairs+rep.AllCorrect > rep.Tasks || rep.Wrong > rep.Samples {
		t.Errorf("pairs: %d rows with the model's own rejected answer, report %+v", changed, rep)
	}
	t.Logf("pairs: %s; %d rows differ from the world's pairs", rep, changed)

	raw, err = os.ReadFile(filepath.Join(spec.Run, "eval", FileEval))
	if err != nil {
		t.Fatal(err)
	}
	var scores []eval.Score
	if err := json.Unmarshal(raw, &scores); err != nil {
		t.Fatal(err)
	}
	var models []string
	for _, s := range scores {
		models = append(models, s.Model)
	}
	if want := []string{"base", "sft", "dpo", "ppo", "grpo", ModelSeeds, ModelSeedsSelfInstruct, ModelSeedsNoRougeL}; !slices.Equal(models, want) {
		t.Fatalf("eval scored %v, want %v", models, want)
	}
	for _, s := range scores {
		sum := 0
		for _, f := range s.Families {
			sum += f.Total
		}
		if s.Total != z.EvalTasks || sum != s.Total || s.Sampled.Total != z.EvalTasks*EvalSamples ||
			s.Correct > s.Total || s.Sampled.Correct > s.Sampled.Total {
			t.Errorf("eval %s: %+v; want %d tasks, per family summing to them, %d sampled answers", s.Model, s, z.EvalTasks, z.EvalTasks*EvalSamples)
		}
	}
}

// expectResumed fails unless the child's log says it resumed stage.
func expectResumed(t *testing.T, c *child, stage string) {
	t.Helper()
	if !c.logged(stage, "resuming")() {
		t.Errorf("%s did not resume %s; output:\n%s", c.name, stage, c.out)
	}
}

// failingSizes is a default run whose base model trains for one update:
// the output-failure tests stop in the base stage.
func failingSizes() Sizes {
	z := reliabilitySizes()
	z.BaseSteps = 1
	return z
}

// expectCleanFailure checks a child that could not write its outputs:
// exit status 1, an error that names the stage, the cause and a path under
// where, and no temporary or half-written files under the roots.
func expectCleanFailure(t *testing.T, c *child, cause, where string, roots ...string) {
	t.Helper()
	c.expect(exitFailed)
	out := c.out.String()
	t.Logf("%s: %s", c.name, strings.TrimSpace(out))
	if !strings.Contains(out, "pipeline: stage base: ") || !strings.Contains(out, cause) || !strings.Contains(out, where) {
		t.Errorf("the error should name the stage, %q and a path under %s; output:\n%s", cause, where, out)
	}
	if l := leftovers(t, roots...); len(l) > 0 {
		t.Errorf("partial files left behind: %v", l)
	}
}

// TestUnwritableOutputDirectory points the run and base directories at a
// place that cannot hold them. Permission bits do not stop root, which the
// tests may run as, so the parent is a regular file (ENOTDIR for anyone);
// a read-only parent is tried as well when the tests are not root.
func TestUnwritableOutputDirectory(t *testing.T) {
	t.Run("parent is a file", func(t *testing.T) {
		root := t.TempDir()
		file := filepath.Join(root, "file")
		if err := os.WriteFile(file, []byte("not a directory"), 0o644); err != nil {
			t.Fatal(err)
		}
		spec := childSpec{Run: filepath.Join(file, "run"), Base: filepath.Join(file, "base"), Sizes: failingSizes()}
		c := startChild(t, "run under a file", spec)
		expectCleanFailure(t, c, "unusable directory "+spec.Base+": ", file, root)
		if !strings.Contains(c.out.String(), "not a directory") {
			t.Errorf("the error should give the cause; output:\n%s", c.out)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != "not a directory" {
			t.Errorf("the file in the way was changed: %q, %v", b, err)
		}
	})
	t.Run("read-only parent", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("running as root, whom permission bits do not stop; the parent-is-a-file and file-size-limit cases cover root")
		}
		root := t.TempDir()
		ro := filepath.Join(root, "ro")
		if err := os.Mkdir(ro, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(ro, 0o755) })
		spec := childSpec{Run: filepath.Join(ro, "run"), Base: filepath.Join(ro, "base"), Sizes: failingSizes()}
		c := startChild(t, "run under a read-only directory", spec)
		expectCleanFailure(t, c, "unusable directory "+spec.Base+": ", ro, root)
		if !strings.Contains(c.out.String(), "permission denied") {
			t.Errorf("the error should give the cause; output:\n%s", c.out)
		}
		if ents, _ := os.ReadDir(ro); len(ents) > 0 {
			t.Errorf("the read-only directory holds %d entries", len(ents))
		}
	})
}

// TestFullDiskFailsCleanly runs the base stage under a file-size limit
// (RLIMIT_FSIZE, which holds for root as well): a write past it fails with
// EFBIG as a full disk fails with ENOSPC. The first limit stops the
// tokenizer, written before training; the second lets the tokenizer through
// and stops the model's first checkpoint, written into state.tmp/ at the
// end of training. Either way the run ends with an error naming the file,
// nothing half-written is left, no output claims to be complete, and a
// rerun with room to write finishes the stage.
func TestFullDiskFailsCleanly(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit uint64
		long  bool
	}{
		{"tokenizer", 8 << 10, false},
		{"checkpoint", 1 << 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && testing.Short() {
				t.Skip("trains the base model for an update twice (about half a minute); skipped in -short mode")
			}
			root := t.TempDir()
			spec := childSpec{Run: filepath.Join(root, "run"), Base: filepath.Join(root, "base"), Sizes: failingSizes(), Stages: 1, FileLimit: tc.limit}
			c := startChild(t, "run with a full disk", spec)
			expectCleanFailure(t, c, "file too large", spec.Base, root)
			for _, f := range []string{"model.safetensors", "config.json", "state"} {
				if _, err := os.Stat(filepath.Join(spec.Base, f)); err == nil {
					t.Errorf("%s exists after the failed write", f)
				}
			}
			if rec := stageRecord(spec.Base); rec == nil || rec.Status != statusRunning {
				t.Errorf("base record after the failure: %+v, want status running", rec)
			}
			if !tc.long {
				return
			}
			spec.FileLimit = 0
			c = startChild(t, "rerun with room", spec)
			c.expect(exitOK)
			for _, f := range []string{"model.safetensors", "config.json", "tokenizer.json"} {
				if _, err := os.Stat(filepath.Join(spec.Base, f)); err != nil {
					t.Errorf("after the rerun: %v", err)
				}
			}
			if l := leftovers(t, root); len(l) > 0 {
				t.Errorf("partial files left behind: %v", l)
			}
		})
	}
}

// TestResumeRemovesTemporaries plants what a crash in the middle of writes
// leaves in a stage directory and checks that resuming the stage removes
// the temporary files and directories but keeps a ".old" checkpoint, which
// may be the only complete one.
func TestResumeRemovesTemporaries(t *testing.T) {
	r := &Runner{RunDir: t.TempDir()}
	dir := r.StageDir("s")
	out := filepath.Join(dir, "out.txt")
	fail := true
	var seen []string
	s := Stage{Name: "s", Outputs: []string{out}, Run: func(_ context.Context, resume bool) error {
		if fail {
			return errors.New("crashed")
		}
		seen = leftovers(t, dir)
		return os.WriteFile(out, []byte("done"), 0o644)
	}}
	if _, err := r.Run(context.Background(), []Stage{s}); err == nil {
		t.Fatal("the first run should fail")
	}
	planted := map[string]bool{
		"adapter/.adapter_model.safetensors.tmp-123": true, // atomicfile.Write
		".metrics.jsonl.tmp-9":                       true,
		"state.tmp/params.safetensors":               true, // atomicfile.ReplaceDir
		"state.old/trainer_state.json":               false,
		"adapter/adapter_config.json":                false,
	}
	for rel := range planted {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fail = false
	outs, err := r.Run(context.Background(), []Stage{s})
	if err != nil || !outs[0].Resumed {
		t.Fatalf("rerun: %+v, %v; want it resumed", outs, err)
	}
	if want := []string{filepath.Join(dir, "state.old")}; !reflect.DeepEqual(seen, want) {
		t.Errorf("the resumed stage saw %v, want only %v", seen, want)
	}
	for rel, temporary := range planted {
		_, err := os.Stat(filepath.Join(dir, rel))
		if gone := errors.Is(err, fs.ErrNotExist); gone != temporary {
			t.Errorf("%s: removed %v, want %v", rel, gone, temporary)
		}
	}
}

// metricLinesUpTo returns the complete lines of a metrics log whose step is
// at most step, as they are.
func metricLinesUpTo(t *testing.T, path string, step int) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.SplitAfter(string(raw), "\n") {
		var rec struct{ Step *int }
		if !strings.HasSuffix(line, "\n") || json.Unmarshal([]byte(line), &rec) != nil || rec.Step == nil {
			continue
		}
		if *rec.Step <= step {
			out = append(out, line)
		}
	}
	return out
}
