package selfinstruct

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gotune/gotune/data"
)

// scriptedTeacher writes, for every prompt, the same six kinds of block,
// with words drawn from the prompt's seed so that outputs are new each
// time yet reproducible:
//
//  4. a fresh instruction (kept)
//  5. a copy of a seed instruction (similar)
//  6. an instruction naming a picture (blocklist)
//  7. a three-word instruction (too short)
//  8. a sum with a wrong answer (verifier, when one is set; else kept)
//  9. an instruction without input or output (malformed)
type scriptedTeacher struct {
	calls   atomic.Int32
	prompts []string
}

func words(r *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("w%d", r.IntN(5000))
	}
	return strings.Join(w, " ")
}

func (s *scriptedTeacher) Complete(ctx context.Context, prompts []string, p Params) ([]Completion, error) {
	s.calls.Add(1)
	out := make([]Completion, len(prompts))
	for i, prompt := range prompts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s.prompts = append(s.prompts, prompt)
		r := rand.New(rand.NewPCG(p.Seed+uint64(i), 77))
		var b strings.Builder
		fmt.Fprintf(&b, " Please explain %s.\n4. Input:\n<noinput>\n4. Output:\nAn answer.\n", words(r, 6))
		fmt.Fprintf(&b, "###\n5. Instruction: %s\n5. Input:\n\n5. Output:\nx\n", DefaultSeedTasks()[0].Instruction)
		fmt.Fprintf(&b, "###\n6. Instruction: Describe the picture of %s.\n6. Input:\n<noinput>\n6. Output:\nx\n", words(r, 2))
		fmt.Fprintf(&b, "###\n7. Instruction: Go %s now.\n7. Input:\n<noinput>\n7. Output:\nx\n", words(r, 1))
		fmt.Fprintf(&b, "###\n8. Instruction: Compute the sum of %s.\n8. Input:\n2, 3\n8. Output:\n6\n", words(r, 4))
		fmt.Fprintf(&b, "###\n9. Instruction: Tell me about %s.", words(r, 3))
		out[i] = Completion{Text: b.String()}
	}
	return out, nil
}

func readRows(t *testing.T, path string) []data.GeneratedInstruction {
	t.Helper()
	rows, err := data.ReadGeneratedInstructions(path)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func testConfig(t *testing.T, dir string, teacher Teacher, n int) Config {
	c := DefaultConfig()
	c.Teacher, c.Output, c.NumInstructions, c.RequestBatchSize, c.Seed, c.Verifier = teacher, filepath.Join(dir, "gen.arrow"), n, 2, 9, KnownTasks
	return c
}

func TestRunKeepsAndRejects(t *testing.T) {
	dir := t.TempDir()
	teacher := &scriptedTeacher{}
	var progress bytes.Buffer
	cfg := testConfig(t, dir, teacher, 4)
	cfg.Progress = &progress
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Two batches of two prompts, one row kept per prompt.
	// The kept tasks are of no family the verifier knows.
	want := Report{Kept: 4, Batches: 2, Requests: 4, Rejected: map[string]int{
		ReasonSimilar: 4, ReasonBlocklist: 4, ReasonTooShort: 4, ReasonVerifier: 4, ReasonMalformed: 4,
	}, Unverified: 4}
	if rep.SeedRougeL.N != 4 || rep.SeedRougeL.Max > 0.7 || rep.SeedRougeL.Min > rep.SeedRougeL.Median {
		t.Errorf("ROUGE-L against the seeds: %+v", rep.SeedRougeL)
	}
	rep.SeedRougeL = Distribution{}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("report %+v\nwant   %+v", rep, want)
	}
	if !strings.Contains(progress.String(), "verifier 4") {
		t.Errorf("progress output lacks the rejection counts: %q", progress.String())
	}
	rows := readRows(t, cfg.Output)
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	nSeeds := len(DefaultSeedTasks())
	for i, r := range rows {
		if !strings.HasPrefix(r.Instruction.Instruction, "Please explain w") || r.Input != "" || r.Output != "An answer." || r.Source != "self-instruct" {
			t.Errorf("row %d: %+v", i, r.Instruction)
		}
		// Similarity to every earlier instruction: seeds plus rows before.
		pool := []string{}
		for _, s := range DefaultSeedTasks() {
			pool = append(pool, s.Instruction)
		}
		for _, prev := range rows[:i] {
			pool = append(pool, prev.Instruction.Instruction)
		}
		var sum float64
		best := 0.0
		for _, p := range pool {
			s := RougeL(Tokenize(r.Instruction.Instruction), Tokenize(p))
			sum += s
			best = max(best, s)
		}
		if got, want := r.AvgSimilarity, sum/float64(nSeeds+i); abs(got-want) > 1e-12 {
			t.Errorf("row %d: avg similarity %g, want %g", i, got, want)
		}
		if len(r.MostSimilar) != 10 || r.MostSimilar[0].Score != best {
			t.Errorf("row %d: most similar %v, best %g", i, r.MostSimilar, best)
		}
		for j := 1; j < len(r.MostSimilar); j++ {
			if r.MostSimilar[j].Score > r.MostSimilar[j-1].Score {
				t.Errorf("row %d: most similar not sorted: %v", i, r.MostSimilar)
			}
		}
	}
	// Every prompt shows three seed tasks and ends where the teacher starts.
	for _, p := range teacher.prompts {
		if !strings.HasSuffix(p, "###\n4. Instruction:") || strings.Count(p, ". Output:\n") != 3 || !strings.Contains(p, "set of 20 diverse") {
			t.Fatalf("prompt:\n%s", p)
		}
	}
	// Without a verifier, the wrong sums are kept.
	cfg = testConfig(t, t.TempDir(), &scriptedTeacher{}, 4)
	cfg.Verifier = nil
	rep, err = Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != 4 || rep.Batches != 1 || rep.Rejected[ReasonVerifier] != 0 {
		t.Fatalf("without verifier: %+v", rep)
	}
}

// funcTeacher replies to every prompt with the same text.
type funcTeacher string

func (f funcTeacher) Complete(_ context.Context, prompts []string, _ Params) ([]Completion, error) {
	out := make([]Completion, len(prompts))
	for i := range out {
		out[i] = Completion{Text: string(f)}
	}
	return out, nil
}

// TestRunCountsVerified: a task the verifier confirms is kept and counted
// as verified, one it cannot check is kept as unverified, or dropped with
// RequireVerified, and one it refutes is dropped.
func TestRunCountsVerified(t *testing.T) {
	reply := funcTeacher(" Find the sum of the numbers.\n4. Input:\n1, 2, 3.5\n4. Output:\n6.5\n" +
		"###\n5. Instruction: Write a haiku about autumn leaves in the park.\n5. Input:\n<noinput>\n5. Output:\nLeaves drift and settle\n" +
		"###\n6. Instruction: Find the product of the numbers.\n6. Input:\n2, 3\n6. Output:\n7\n")
	for _, require := range []bool{false, true} {
		cfg := testConfig(t, t.TempDir(), reply, 10)
		cfg.MaxBatches, cfg.RequestBatchSize, cfg.RequireVerified = 1, 1, require
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := Report{Kept: 2, Batches: 1, Requests: 1, Verified: 1, Unverified: 1, Rejected: map[string]int{ReasonVerifier: 1}}
		if require {
			want = Report{Kept: 1, Batches: 1, Requests: 1, Verified: 1, Rejected: map[string]int{ReasonVerifier: 1, ReasonUnverifiable: 1}}
		}
		rep.SeedRougeL = Distribution{}
		if !reflect.DeepEqual(rep, want) {
			t.Errorf("require verified %v: report %+v\nwant %+v", require, rep, want)
		}
	}
}

func TestSummarize(t *testing.T) {
	d := Summarize([]float64{0.5, 0.1, 0.3, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 1.0})
	// Nearest rank: p10 is the 1st of 10 values, the median the 5th, p90 the 9th.
	want := Distribution{N: 10, Mean: 0.55, Min: 0.1, P10: 0.1, Median: 0.5, P90: 0.9, Max: 1.0}
	if abs(d.Mean-want.Mean) > 1e-12 {
		t.Errorf("mean %g, want %g", d.Mean, want.Mean)
	}
	d.Mean = want.Mean
	if d != want {
		t.Errorf("%+v, want %+v", d, want)
	}
	if (Summarize(nil) != Distribution{}) {
		t.Error("empty sample: non-zero distribution")
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// A run stopped early and restarted, a run that crashed mid-batch, and a
// run whose state file ends in a torn line all end with exactly the rows
// of an uninterrupted run, none twice.
func TestRunResumes(t *testing.T) {
	ctx := context.Background()
	full := testConfig(t, t.TempDir(), &scriptedTeacher{}, 12)
	if _, err := Run(ctx, full); err != nil {
		t.Fatal(err)
	}
	want := readRows(t, full.Output)
	if len(want) != 12 {
		t.Fatalf("%d rows", len(want))
	}
	seen := map[string]bool{}
	for _, r := range want {
		if seen[r.Instruction.Instruction] {
			t.Fatalf("duplicate %q", r.Instruction.Instruction)
		}
		seen[r.Instruction.Instruction] = true
	}

	t.Run("stop and continue", func(t *testing.T) {
		dir := t.TempDir()
		first := testConfig(t, dir, &scriptedTeacher{}, 5)
		rep, err := Run(ctx, first)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Kept != 6 || rep.Batches != 3 {
			t.Fatalf("first run: %+v", rep)
		}
		teacher := &scriptedTeacher{}
		rep, err = Run(ctx, testConfig(t, dir, teacher, 12))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Resumed != 6 || rep.Kept != 12 || rep.Batches != 6 || rep.Requests != 12 || teacher.calls.Load() != 3 {
			t.Fatalf("second run: %+v, %d teacher calls", rep, teacher.calls.Load())
		}
		if got := readRows(t, first.Output); !reflect.DeepEqual(got, want) {
			t.Fatalf("resumed rows differ from an uninterrupted run")
		}
		// Running again with the goal met asks nothing more.
		teacher = &scriptedTeacher{}
		if rep, err = Run(ctx, testConfig(t, dir, teacher, 12)); err != nil || teacher.calls.Load() != 0 || rep.Kept != 12 {
			t.Fatalf("third run: %+v %v, %d calls", rep, err, teacher.calls.Load())
		}
	})

	t.Run("crash mid-batch", func(t *testing.T) {
		dir := t.TempDir()
		cctx, cancel := context.WithCancel(ctx)
		crashing := &crashTeacher{inner: &scriptedTeacher{}, at: 4, cancel: cancel}
		_, err := Run(cctx, testConfig(t, dir, crashing, 12))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("crashed run: %v", err)
		}
		if got := readRows(t, filepath.Join(dir, "gen.arrow")); len(got) != 6 {
			t.Fatalf("after the crash the output has %d rows, want the 6 of 3 finished batches", len(got))
		}
		rep, err := Run(ctx, testConfig(t, dir, &scriptedTeacher{}, 12))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Resumed != 6 {
			t.Fatalf("resumed %d rows, want 6", rep.Resumed)
		}
		if got := readRows(t, filepath.Join(dir, "gen.arrow")); !reflect.DeepEqual(got, want) {
			t.Fatal("rows after crash and resume differ from an uninterrupted run")
		}
	})

	t.Run("torn state line", func(t *testing.T) {
		dir := t.TempDir()
		cfg := testConfig(t, dir, &scriptedTeacher{}, 5)
		if _, err := Run(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(cfg.Output+".state.jsonl", os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(`{"batch":3,"rows":[{"instruction":"half`)
		f.Close()
		rep, err := Run(ctx, testConfig(t, dir, &scriptedTeacher{}, 12))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Resumed != 6 {
			t.Fatalf("resumed %d", rep.Resumed)
		}
		if got := readRows(t, cfg.Output); !reflect.DeepEqual(got, want) {
			t.Fatal("rows after a torn line differ from an uninterrupted run")
		}
	})

	t.Run("other seeds", func(t *testing.T) {
		dir := t.TempDir()
		if _, err := Run(ctx, testConfig(t, dir, &scriptedTeacher{}, 2)); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, dir, &scriptedTeacher{}, 4)
		cfg.SeedTasks = DefaultSeedTasks()[1:]
		if _, err := Run(ctx, cfg); err == nil || !strings.Contains(err.Error(), "other seed tasks") {
			t.Fatalf("resume with other seeds: %v", err)
		}
	})
}

// crashTeacher cancels the run on its at-th call.
type crashTeacher struct {
	inner  Teacher
	at     int
	n      int
	cancel context.CancelFunc
}

func (c *crashTeacher) Complete(ctx context.Context, prompts []string, p Params) ([]Completion, error) {
	c.n++
	if c.n == c.at {
		c.cancel()
	}
	return c.inner.Complete(ctx, prompts, p)
}

type garbageTeacher struct{}

func (garbageTeacher) Complete(_ context.Context, prompts []string, _ Params) ([]Completion, error) {
	out := make([]Completion, len(prompts))
	for i := range out {
		out[i] = Completion{Text: "no tasks here", Truncated: i%2 == 0}
	}
	return out, nil
}

func TestRunStopsWhenNothingIsKept(t *testing.T) {
	cfg := testConfig(t, t.TempDir(), garbageTeacher{}, 10)
	cfg.MaxIdleBatches = 3
	rep, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "3 batches in a row") {
		t.Fatalf("err %v", err)
	}
	if rep.Batches != 3 || rep.Rejected[ReasonTruncated] != 3 || rep.Rejected[ReasonMalformed] != 3 {
		t.Fatalf("report %+v", rep)
	}
	cfg = testConfig(t, t.TempDir(), garbageTeacher{}, 10)
	cfg.MaxBatches = 2
	if rep, err := Run(context.Background(), cfg); err != nil || rep.Batches != 2 || rep.Kept != 0 {
		t.Fatalf("MaxBatches: %+v %v", rep, err)
	}
	if rows := readRows(t, cfg.Output); len(rows) != 0 {
		t.Fatalf("%d rows", len(rows))
	}
	if _, err := Run(context.Background(), Config{Output: "x"}); err == nil {
		t.Error("no teacher accepted")
	}
	if _, err := Run(context.Background(), Config{Teacher: garbageTeacher{}}); err == nil {
		t.Error("no output accepted")
	}
	bad := testConfig(t, t.TempDir(), garbageTeacher{}, 1)
	bad.SeedTasks = DefaultSeedTasks()[:2]
	if _, err := Run(context.Background(), bad); err == nil {
		t.Error("fewer seeds than examples per prompt accepted")
	}
}

func TestParseSeedTasksErrors(t *testing.T) {
	cases := map[string]string{
		"{\"instruction\": \"a\", \"instances\": [{\"input\": \"\", \"output\": \"b\"}]}\n{oops}\n":                                                                    "line 2",
		"{\"instruction\": \"\", \"instances\": [{\"output\": \"b\"}]}\n":                                                                                              "line 1: field \"instruction\" is empty",
		"\n\n{\"instruction\": \"a\", \"instances\": []}\n":                                                                                                            "line 3: field \"instances\" is empty",
		"{\"id\": \"x\", \"instruction\": \"a\", \"instances\": [{\"output\": \"b\"}]}\n{\"id\": \"x\", \"instruction\": \"c\", \"instances\": [{\"output\": \"d\"}]}": "id \"x\" already used on line 1",
		"{\"instruction\": \"a\", \"instances\": [{\"output\": \"b\"}]} {}\n":                                                                                          "more than one JSON value",
		"":                     "no seed tasks",
		"{\"instruction\": 3}": "line 1",
	}
	for in, want := range cases {
		_, err := ParseSeedTasks(strings.NewReader(in), "seeds.jsonl")
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "seeds.jsonl") {
			t.Errorf("input %.40q: error %v, want %q", in, err, want)
		}
	}
	path := filepath.Join(t.TempDir(), "s.jsonl")
	os.WriteFile(path, []byte(`{"id": "seed_task_0", "name": "n", "instruction": "Say hi.", "instances": [{"input": "", "output": "hi"}], "is_classification": true}`+"\n"), 0o644)
	got, err := LoadSeedTasks(path)
	if err != nil || len(got) != 1 || !got[0].IsClassification || got[0].Task() != (GeneratedTask{"Say hi.", "", "hi"}) {
		t.Fatalf("LoadSeedTasks: %+v %v", got, err)
	}
}

func FuzzParseSeedTasks(f *testing.F) {
	f.Add(`{"id": "a", "instruction": "x", "instances": [{"input": "", "output": "y"}]}`)
	f.Add("{}\n\n{\"instances\": null}")
	f.Fuzz(func(t *testing.T, s string) {
		tasks, err := ParseSeedTasks(strings.NewReader(s), "fuzz")
		if err == nil {
			for _, task := range tasks {
				_ = task.Task() // every accepted task has an instance
			}
		}
	})
}

func TestReadStateTornAndCorrupt(t *testing.T) {
	hdr := `{"version":1,"seed_sha256":"abc"}` + "\n"
	b0 := `{"batch":0,"rows":[{"instruction":"a","input":"","output":"b","most_similar_instructions":[],"avg_similarity_score":0.5}],"rejected":{"similar":2},"requests":5}` + "\n"
	b1 := `{"batch":1,"rows":[],"rejected":{},"requests":5}` + "\n"
	cases := []struct {
		name    string
		in      string
		batches int
		good    int
		err     string
	}{
		{"empty", "", 0, 0, ""},
		{"header only", hdr, 0, len(hdr), ""},
		{"two batches", hdr + b0 + b1, 2, len(hdr + b0 + b1), ""},
		{"torn last line", hdr + b0 + b1[:20], 1, len(hdr + b0), ""},
		{"last line without newline", hdr + b0 + strings.TrimSuffix(b1, "\n"), 1, len(hdr + b0), ""},
		{"torn header", hdr[:10], 0, 0, ""},
		{"corrupt middle", hdr + "{nope}\n" + b1, 0, 0, "line 2"},
		{"batch out of order", hdr + b1 + b0, 0, 0, "line 2: batch 1 where 0 was expected"},
		{"other version", `{"version":9}` + "\n", 0, 0, "state version 9"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, batches, good, err := readState(strings.NewReader(c.in), "s")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || len(batches) != c.batches || good != int64(c.good) {
				t.Fatalf("batches %d good %d err %v; want %d %d", len(batches), good, err, c.batches, c.good)
			}
		})
	}
}

func FuzzReadState(f *testing.F) {
	f.Add(`{"version":1,"seed_sha256":"abc"}` + "\n" + `{"batch":0,"rows":[],"rejected":{},"requests":1}` + "\n")
	f.Add("{}\n{}")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, good, err := readState(strings.NewReader(s), "fuzz")
		if err == nil && (good < 0 || good > int64(len(s))) {
			t.Fatalf("good prefix %d of %d bytes", good, len(s))
		}
	})
}

// With the similarity filter off (threshold 1), a task is still never kept
// twice: a copy of a seed's task, or of a task kept before, is a duplicate;
// the same instruction with another input is not.
func TestRunDropsDuplicates(t *testing.T) {
	seed := DefaultSeedTasks()[1]
	reply := funcTeacher(fmt.Sprintf(" %s\n4. Input:\n%s\n4. Output:\n%s\n", seed.Instruction, orNoInput(seed.Instances[0].Input), seed.Instances[0].Output) +
		"###\n5. Instruction: Write a haiku about autumn leaves in the park.\n5. Input:\n<noinput>\n5. Output:\nLeaves drift\n" +
		"###\n6. Instruction: Write a haiku about autumn leaves in the park.\n6. Input:\n<noinput>\n6. Output:\nOther leaves\n" +
		"###\n7. Instruction: Write a haiku about autumn leaves in the park.\n7. Input:\nmaple\n7. Output:\nRed leaves\n")
	cfg := testConfig(t, t.TempDir(), reply, 10)
	cfg.MaxBatches, cfg.RequestBatchSize, cfg.SimilarityThreshold, cfg.Verifier = 1, 1, 1, nil
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != 2 || rep.Rejected[ReasonDuplicate] != 2 || len(rep.Rejected) != 1 {
		t.Fatalf("report %+v; want 2 kept, 2 duplicates", rep)
	}
}

func orNoInput(s string) string {
	if s == "" {
		return NoInput
	}
	return s
}
