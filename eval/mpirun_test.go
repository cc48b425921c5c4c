//go:build mpi && cgo

package eval

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gotune/gotune/internal/mpi"
	"github.com/gotune/gotune/internal/mpi/mpitest"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/tokenizer"
)

// rankOutEnv is where the ranks started by TestMPIEvalMatchesSingleProcess
// write rank 0's results; it also marks the test binary as a rank.
const rankOutEnv = "GOTUNE_EVAL_RANK_OUT"

// evalResults are what a rank computes: exact-match scores (greedy and
// sampled, task by task) and the loss of a text.
type evalResults struct {
	Score Score
	Text  LossResult
}

// computeResults scores the tiny model on 7 tasks (7 shares unevenly among
// 2 and 3 ranks) and a text, in whatever world the process runs.
func computeResults(t *testing.T) evalResults {
	t.Helper()
	base, w, tok := modelDir(t)
	e, err := generate.New(w, tok)
	if err != nil {
		t.Fatal(err)
	}
	// An answer is right when its hash with the task's number is even:
	// every answer's text counts, and a model that says the same to every
	// task is right on some and wrong on others.
	byHash := func(i int) func(string) bool {
		return func(a string) bool {
			h := fnv.New32a()
			fmt.Fprintf(h, "%d %s", i, a)
			return h.Sum32()%2 == 0
		}
	}
	prompts := []string{"Say hi.", "Add 1 and 2.", "Name a color.", "Count to three.", "Spell cat.", "Reverse dog.", "Name a fruit."}
	tasks := make([]Task, len(prompts))
	for i, p := range prompts {
		tasks[i] = Task{Prompt: tokenizer.FormatAlpaca(p, ""), Family: []string{"a", "b", "c"}[i%3], Correct: byHash(i)}
	}
	cfg := MatchConfig{MaxTokens: 4, Samples: 3, Temperature: 1.2, Seed: 5, Batch: 4}
	var res evalResults
	if res.Score, err = ExactMatch(context.Background(), e, tok, tasks, cfg); err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("the cat sat on the mat and the dog ran to the park.\n\n", 12)), 0o644); err != nil {
		t.Fatal(err)
	}
	lr, err := Run(context.Background(), Config{Model: base, Text: text, SeqLen: 16, BatchSize: 2, Template: tokenizer.TemplateAlpaca})
	if err != nil {
		t.Fatal(err)
	}
	res.Text = *lr
	return res
}

// TestMPIEvalMatchesSingleProcess runs this test binary on 2 and 3 ranks
// under mpirun: the ranks share the tasks' answers and the text's
// windows, and every figure must be the single process's exactly — each
// answer (greedy and sampled, by the scores task by task) and the loss,
// summed in the same order.
func TestMPIEvalMatchesSingleProcess(t *testing.T) {
	mpirun := mpitest.Mpirun(t)
	want := computeResults(t)
	if s := want.Score; s.Total != 7 || s.Correct == 0 || s.Correct == 7 || s.Sampled.Total != 21 || s.Sampled.Correct == 0 || want.Text.Tokens == 0 {
		t.Fatalf("single process: %+v", want)
	}
	for _, n := range []int{2, 3} {
		out := filepath.Join(t.TempDir(), "rank0.json")
		cmd := exec.Command(mpirun, append(mpitest.MpirunArgs(n), os.Args[0], "-test.run=^TestEvalRankChild$")...)
		cmd.Env = append(os.Environ(), rankOutEnv+"="+out)
		timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
		log, err := cmd.CombinedOutput()
		timer.Stop()
		if err != nil {
			t.Fatalf("%d ranks: %v\n%s", n, err, log)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatalf("%d ranks: %v\n%s", n, err, log)
		}
		var got evalResults
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%d ranks:\n%+v\nthe single process:\n%+v", n, got, want)
		}
	}
}

// TestEvalRankChild runs inside one rank of TestMPIEvalMatchesSingleProcess;
// rank 0 writes its results, and every rank checks it got the same.
func TestEvalRankChild(t *testing.T) {
	out := os.Getenv(rankOutEnv)
	if out == "" {
		t.Skip("run by TestMPIEvalMatchesSingleProcess under mpirun")
	}
	w, err := mpi.Init()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Finalize()
	res := computeResults(t)
	raw, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	// Every rank holds the gathered results: compare them with rank 0's.
	all, err := w.AllgatherBytes(raw)
	if err != nil {
		t.Fatal(err)
	}
	for r, b := range all {
		if string(b) != string(raw) {
			t.Fatalf("rank %d's results differ from rank %d's", r, w.Rank())
		}
	}
	if w.Rank() == 0 {
		if err := os.WriteFile(out, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("rank", w.Rank(), "ok")
}
