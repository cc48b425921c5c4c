//go:build mpi && cgo

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/dpo"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/grpo"
	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/internal/mpi/mpitest"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/ppo"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/selfinstruct"
	"github.com/gotune/gotune/sft"
	"github.com/gotune/gotune/train"
)

// built is the gotune binary the MPI tests share, built once.
var built struct {
	sync.Mutex
	bin string
	dir string
}

// TestMain removes the shared binary after the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildGotune builds this command with MPI (and OpenBLAS when the test
// binary has it) once, into a temporary directory.
func buildGotune(t *testing.T) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if built.bin != "" {
		return built.bin
	}
	tags := "mpi"
	if blas.Backend() == "openblas" {
		tags += " openblas"
	}
	dir, err := os.MkdirTemp("", "gotune-mpi-test-")
	if err != nil {
		t.Fatal(err)
	}
	built.dir = dir
	bin := filepath.Join(dir, "gotune")
	out, err := exec.Command("go", "build", "-tags", tags, "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build -tags %q: %v\n%s", tags, err, out)
	}
	built.bin = bin
	return bin
}

// stageArgs are the arguments of a short run of stage on the tiny world
// base: 4 micro-batches per update, so that 1, 2 and 4 ranks share the
// same global batch.
func stageArgs(stage, out string, steps int) []string {
	args := []string{stage, "--" + sft.KeyOut, out,
		"--" + train.KeySteps, strconv.Itoa(steps), "--" + train.KeyGradAccum, "4", "--" + train.KeyLogEvery, "1",
		"--" + train.KeyEvalEvery, "3", "--" + train.KeySaveEvery, "2", "--" + train.KeyQuiet}
	if stage == "pretrain" {
		return append(args, "--"+pretrain.KeyPreset, "tiny", "--"+pretrain.KeyTokenizer, tinymodel.WorldBase(),
			"--"+keyWorldDocs, "100", "--"+pretrain.KeySeqLen, "32", "--"+pretrain.KeyBatchSize, "2")
	}
	args = append(args, "--"+sft.KeyBase, tinymodel.WorldBase())
	switch stage {
	case "reward":
		return append(args, "--"+reward.KeyBatchSize, "2", "--"+keyWorldPairs, "64")
	case "sft":
		return append(args, "--"+sft.KeyBatchSize, "2", "--"+keyWorldRows, "64", "--"+sft.KeyEvalRows, "8")
	case "dpo":
		return append(args, "--"+dpo.KeyPairs, "2", "--"+keyWorldPairs, "64", "--"+keyWorldEvalPairs, "8", "--"+dpo.KeyMaxLen, "64", "--"+dpo.KeyBuckets, "32,64")
	case "ppo":
		// 2 rollouts of 8 responses, 2 epochs of 2 minibatches: 8 updates.
		return append(args[:3], "--"+ppo.KeyIterations, strconv.Itoa(steps/4), "--"+ppo.KeyRolloutBatch, "8",
			"--"+ppo.KeyMiniBatches, "2", "--"+ppo.KeyPPOEpochs, "2", "--"+train.KeyGradAccum, "2",
			"--"+train.KeyLogEvery, "1", "--"+train.KeyEvalEvery, "2", "--"+train.KeySaveEvery, "2", "--"+train.KeyQuiet,
			"--"+ppo.KeyBase, tinymodel.WorldBase(), "--"+ppo.KeyRewardAdapter, ppoRewardAdapter,
			"--"+keyWorldPrompts, "32", "--"+ppo.KeyEvalMax, "5", "--"+ppo.KeyMaxNewTokens, "6")
	case "grpo":
		// Two updates per generation batch and β > 0: the old and the
		// reference log-probabilities are shared among the ranks too.
		return append(args[:3], "--"+grpo.KeyIterations, strconv.Itoa(steps/2), "--"+grpo.KeyNumIterations, "2",
			"--"+train.KeyGradAccum, "4", "--"+train.KeyLogEvery, "1", "--"+train.KeyEvalEvery, "2", "--"+train.KeySaveEvery, "2", "--"+train.KeyQuiet,
			"--"+grpo.KeyBase, tinymodel.WorldBase(), "--"+grpo.KeyNumGenerations, "2", "--"+grpo.KeyGenerationBatchSize, "8",
			"--"+grpo.KeyBeta, "0.1", "--"+keyWorldPrompts, "32", "--"+grpo.KeyEvalMax, "5", "--"+grpo.KeyMaxCompletionLength, "6",
			"--"+grpo.KeyRewardFuncs, "world,format") // format's rewards differ within groups: non-zero advantages
	}
	panic(stage)
}

// ppoRewardAdapter is the reward model of the ppo runs, trained first.
var ppoRewardAdapter string

// run starts bin on n ranks (n = 0: plainly) and returns its output.
func run(t *testing.T, ctx context.Context, bin string, n int, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	var cmd *exec.Cmd
	if n == 0 {
		cmd = exec.CommandContext(ctx, bin, args...)
	} else {
		cmd = exec.CommandContext(ctx, mpitest.Mpirun(t), append(append(mpitest.MpirunArgs(n), bin), args...)...)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	return cmd, &out
}

func mustRun(t *testing.T, bin string, n int, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd, out := run(t, ctx, bin, n, args...)
	if err := cmd.Run(); err != nil {
		t.Fatalf("%d ranks: gotune %s: %v\n%s", n, strings.Join(args, " "), err, out)
	}
	return out.String()
}

func relClose(a, b, scale, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(scale, math.Max(math.Abs(a), math.Abs(b)))
}

// sameOutputs requires got's metrics (every record and key but the speed)
// and final adapter to match want's within tol relative; an adapter
// value is compared relative to the largest of its tensor, since LoRA's B
// starts at zero.
func sameOutputs(t *testing.T, what, want, got string, tol, floor float64) {
	t.Helper()
	wr, err := train.ReadMetrics(train.MetricsFile(want))
	if err != nil {
		t.Fatal(err)
	}
	gr, err := train.ReadMetrics(train.MetricsFile(got))
	if err != nil {
		t.Fatal(err)
	}
	if len(gr) != len(wr) || len(wr) < 4 {
		t.Fatalf("%s: %d metrics records, the single process %d", what, len(gr), len(wr))
	}
	for i := range wr {
		// DPO's rewards are β·(log π − log π_ref): differences of nearly
		// equal log-probabilities, whose rounding is relative to the
		// log-probabilities (β ≤ 1), not to the small difference.
		logps := 0.0
		for k, v := range wr[i] {
			if strings.Contains(k, "logps/") {
				logps = math.Max(logps, math.Abs(v))
			}
		}
		for k, v := range wr[i] {
			if k == train.KeyTokensPerSec {
				continue
			}
			scale := 0.0
			if strings.Contains(k, "rewards/") {
				scale = logps
			}
			g, ok := gr[i][k]
			if !ok || !relClose(v, g, scale, tol) && math.Abs(v-g) > floor {
				t.Errorf("%s: record %d %s = %v, the single process %v", what, i, k, g, v)
			}
		}
	}
	sameTensors(t, what, want, got, tol)
}

// sameTensors requires the trained tensors in got (pretrain's model, the
// other stages' adapter) to match want's within tol relative to the
// largest value of each tensor.
func sameTensors(t *testing.T, what, want, got string, tol float64) {
	t.Helper()
	file := func(dir string) string {
		if _, err := os.Stat(finetune.AdapterDir(dir)); err != nil {
			return filepath.Join(dir, "model.safetensors")
		}
		return filepath.Join(finetune.AdapterDir(dir), "adapter_model.safetensors")
	}
	wt, _, err := safetensors.ReadFile(file(want))
	if err != nil {
		t.Fatal(err)
	}
	gt, _, err := safetensors.ReadFile(file(got))
	if err != nil {
		t.Fatal(err)
	}
	if len(gt) != len(wt) {
		t.Fatalf("%s: %d adapter tensors, the single process %d", what, len(gt), len(wt))
	}
	for i, w := range wt {
		scale := 0.0
		for _, v := range w.Data {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		if gt[i].Name != w.Name || len(gt[i].Data) != len(w.Data) {
			t.Fatalf("%s: adapter tensor %d is %s of %d values, the single process's %s of %d", what, i, gt[i].Name, len(gt[i].Data), w.Name, len(w.Data))
		}
		for j, v := range w.Data {
			if !relClose(float64(v), float64(gt[i].Data[j]), scale, tol) {
				t.Errorf("%s: adapter %s[%d] = %v, the single process %v", what, w.Name, j, gt[i].Data[j], v)
				break
			}
		}
	}
}

// TestMPIMatchesSingleProcess runs gotune sft and dpo on 2 and 4 ranks
// (4 oversubscribing this machine), reward and pretrain on 2, grpo on 2
// and 3 (3 ranks share 4 prompts unevenly), ppo on 2, and requires the losses of
// every update (grpo, ppo: their rewards and held-out rewards too, the ranks
// sampling the same completions as one process) and the final adapter
// (pretrain: model) of the single process with the same global batch.
func TestMPIMatchesSingleProcess(t *testing.T) {
	mpitest.Mpirun(t)
	bin := buildGotune(t)
	// The reward model's margin is a difference of nearly equal scores,
	// and its adapter's small values move by Adam's normalised steps, which
	// carry a rounding difference of a near-zero gradient whole: 1e-4.
	// GRPO's and PPO's losses are sums of nearly cancelling terms (ratios
	// near 1 times advantages of both signs), whose rounding is relative to
	// the terms, and many of their adapters' gradients are such near-zero
	// sums, which Adam's normalised steps turn into whole steps: 1e-3 (the
	// samples and rewards, whole numbers of tokens and reward sums, agree
	// far closer). PPO's approximate KL of the first update is rounding
	// noise around 0.
	for _, c := range []struct {
		stage string
		ranks []int
		tol   float64
		floor float64 // absolute: metrics that are rounding noise around 0
	}{{"sft", []int{2, 4}, 1e-5, 0}, {"dpo", []int{2, 4}, 1e-5, 0}, {"reward", []int{2}, 1e-4, 0}, {"pretrain", []int{2}, 1e-5, 0},
		{"grpo", []int{2, 3}, 1e-3, 0}, {"ppo", []int{2}, 1e-3, 1e-9}} {
		stage := c.stage
		if stage == "ppo" {
			rw := filepath.Join(t.TempDir(), "reward")
			mustRun(t, bin, 0, stageArgs("reward", rw, 2)...)
			ppoRewardAdapter = finetune.AdapterDir(rw)
		}
		single := filepath.Join(t.TempDir(), "single")
		mustRun(t, bin, 0, stageArgs(stage, single, 6)...)
		for _, n := range c.ranks {
			dir := filepath.Join(t.TempDir(), fmt.Sprintf("np%d", n))
			out := mustRun(t, bin, n, stageArgs(stage, dir, 6)...)
			if c := strings.Count(out, " in "+dir); c != 1 {
				t.Errorf("%s on %d ranks: %d ranks printed a summary, want rank 0 alone:\n%s", stage, n, c, out)
			}
			sameOutputs(t, fmt.Sprintf("%s on %d ranks", stage, n), single, dir, c.tol, c.floor)
		}
	}
}

// TestMPIKilledRankStopsAndResumes kills rank 1 of a 2-rank sft run after
// its first checkpoint: the job must stop with an error naming the rank,
// not hang, and resuming it on 2 ranks must end where the uninterrupted
// single process does.
func TestMPIKilledRankStopsAndResumes(t *testing.T) {
	mpitest.Mpirun(t)
	bin := buildGotune(t)
	const steps = 100
	single := filepath.Join(t.TempDir(), "single")
	mustRun(t, bin, 0, stageArgs("sft", single, steps)...)

	dir := filepath.Join(t.TempDir(), "np2")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, out := run(t, ctx, bin, 2, stageArgs("sft", dir, steps)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	killed := 0
	var err error
wait:
	for {
		select {
		case err = <-done:
			break wait
		case <-time.After(2 * time.Millisecond):
			if killed == 0 && train.HasCheckpoint(dir) {
				killed = killRank(t, cmd.Process.Pid, 1)
			}
		}
	}
	if killed == 0 {
		t.Fatalf("the job ended before rank 1 could be killed (%v):\n%s", err, out)
	}
	if ctx.Err() != nil {
		t.Fatalf("the job did not stop within 2 minutes of rank 1 being killed:\n%s", out)
	}
	if err == nil {
		t.Fatalf("the job succeeded although rank 1 (pid %d) was killed:\n%s", killed, out)
	}
	if !strings.Contains(out.String(), "rank 1") {
		t.Errorf("the job's error does not name rank 1:\n%s", out)
	}
	mustRun(t, bin, 2, append(stageArgs("sft", dir, steps), "--"+sft.KeyResume)...)
	sameOutputs(t, "sft on 2 ranks, killed and resumed", single, dir, 1e-5, 0)
}

// TestMPIPretrainResumeSharesTokenizer pretrains with a tokenizer trained
// by the run on 2 ranks, stopped after 2 updates and resumed to 4: rank 0
// alone trains (and on resume reads) the tokenizer and sends it to rank 1,
// and the model and tokenizer equal the uninterrupted single process's.
func TestMPIPretrainResumeSharesTokenizer(t *testing.T) {
	mpitest.Mpirun(t)
	bin := buildGotune(t)
	args := func(out string, steps int) []string {
		return []string{"pretrain", "--" + pretrain.KeyOut, out, "--" + pretrain.KeyPreset, "tiny", "--" + keyWorldDocs, "100",
			"--" + pretrain.KeySeqLen, "32", "--" + pretrain.KeyBatchSize, "2", "--" + pretrain.KeyVocabSize, "300",
			"--" + train.KeyGradAccum, "4", "--" + train.KeySteps, strconv.Itoa(steps), "--" + train.KeySaveEvery, "2", "--" + train.KeyQuiet}
	}
	single := filepath.Join(t.TempDir(), "single")
	mustRun(t, bin, 0, args(single, 4)...)
	dir := filepath.Join(t.TempDir(), "np2")
	mustRun(t, bin, 2, args(dir, 2)...)
	// A resumed run reads its own tokenizer whatever --vocab-size says; a
	// rank that trained one of its own would build another model.
	resume := append(args(dir, 4), "--"+pretrain.KeyResume, "--"+pretrain.KeyVocabSize, "280")
	mustRun(t, bin, 2, resume...)
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		want, err := os.ReadFile(filepath.Join(single, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s on 2 ranks, resumed, differs from the single process's", f)
		}
	}
	sameTensors(t, "pretrain on 2 ranks, resumed", single, dir, 1e-5)
}

// killRank kills the process of the given rank among the descendants of
// mpirun (pid), found by Open MPI's OMPI_COMM_WORLD_RANK in its
// environment, and returns its pid (0 when it is not running yet).
func killRank(t *testing.T, pid, rank int) int {
	t.Helper()
	want := []byte("OMPI_COMM_WORLD_RANK=" + strconv.Itoa(rank) + "\x00")
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, f := range tasks {
			raw, _ := os.ReadFile(f)
			for _, s := range strings.Fields(string(raw)) {
				c, err := strconv.Atoi(s)
				if err != nil {
					continue
				}
				env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c))
				if bytes.Contains(env, want) {
					if proc, err := os.FindProcess(c); err == nil && proc.Kill() == nil {
						return c
					}
				}
				queue = append(queue, c)
			}
		}
	}
	return 0
}

// TestMPISelfInstructMatchesSingleProcess runs gotune self-instruct with
// an OpenAI-compatible teacher served by this test, whose replies are a
// function of the prompt and the seed of each request (three parseable
// tasks of words drawn from them), on 1, 2 and 3 ranks: the ranks share
// every batch's requests, and the dataset and state written must be the
// single process's byte for byte.
func TestMPISelfInstructMatchesSingleProcess(t *testing.T) {
	mpitest.Mpirun(t)
	bin := buildGotune(t)
	words := strings.Fields("apple river stone cloud quiet green seven tiger paper window silver garden bright yellow ocean forest mountain candle winter summer honest gentle rapid narrow ancient modern humble brave clever distant")
	teacher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt string `json:"prompt"`
			Seed   uint64 `json:"seed"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h := fnv.New64a()
		h.Write([]byte(req.Prompt))
		rng := rand.New(rand.NewPCG(req.Seed, h.Sum64()))
		var b strings.Builder
		for i := range 3 {
			n := 4 + i // blocks continue the prompt's three examples
			if i > 0 {
				fmt.Fprintf(&b, "###\n%d. Instruction:", n)
			}
			pick := make([]string, 6)
			for j := range pick {
				pick[j] = words[rng.IntN(len(words))]
			}
			fmt.Fprintf(&b, " Describe %s.\n%d. Input:\n<noinput>\n%d. Output:\n%s\n", strings.Join(pick, " "), n, n, pick[0])
		}
		json.NewEncoder(w).Encode(map[string]any{"choices": []map[string]any{{"text": b.String(), "finish_reason": "stop"}}})
	}))
	defer teacher.Close()
	args := func(out string) []string {
		return []string{"self-instruct", "--" + selfinstruct.KeyTeacherURL, teacher.URL, "--" + selfinstruct.KeyOutput, out,
			"--" + selfinstruct.KeyRequestBatchSize, "5", "--" + selfinstruct.KeyMaxBatches, "3", "--" + selfinstruct.KeyNumInstructions, "1000"}
	}
	dir := t.TempDir()
	single := filepath.Join(dir, "single.arrow")
	mustRun(t, bin, 0, args(single)...)
	rows, err := data.ReadGeneratedInstructions(single)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) < 10 {
		t.Fatalf("the single process kept %d instructions of 45; the test's teacher should make most of them pass", len(rows))
	}
	for _, n := range []int{2, 3} {
		out := filepath.Join(dir, fmt.Sprintf("np%d.arrow", n))
		log := mustRun(t, bin, n, args(out)...)
		if c := strings.Count(log, "self-instruct: kept"); c != 1 {
			t.Errorf("%d ranks: %d summaries, want rank 0's alone:\n%s", n, c, log)
		}
		for _, suffix := range []string{"", ".state.jsonl"} {
			want, err := os.ReadFile(single + suffix)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(out + suffix)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%d ranks: %s differs from the single process's", n, out+suffix)
			}
		}
	}
}

// TestMPIRefusesOtherCommands: a command that does not run data-parallel
// is refused on 2 ranks, naming itself, before it writes anything.
func TestMPIRefusesOtherCommands(t *testing.T) {
	mpitest.Mpirun(t)
	bin := buildGotune(t)
	out := filepath.Join(t.TempDir(), "merged")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd, log := run(t, ctx, bin, 2, "export", "--base", tinymodel.WorldBase(), "--adapter", t.TempDir(), "--out", out)
	if err := cmd.Run(); err == nil || !strings.Contains(log.String(), "gotune export does not run data-parallel") {
		t.Fatalf("gotune export on 2 ranks: %v\n%s", err, log)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("gotune export on 2 ranks created %s (%v)", out, err)
	}
}
