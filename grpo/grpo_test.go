package grpo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/internal/stagetest"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// helperArg makes the test binary a reward command: `<binary> helperArg
// mode` reads CommandInput lines and prints one score per line (see
// rewardHelper), so that the tests run the command reward for real.
const helperArg = "grpo-reward-helper"

func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == helperArg {
		os.Exit(rewardHelper(os.Args[2]))
	}
	os.Exit(m.Run())
}

// rewardHelper is the reward command of the tests. Mode "byte" scores the
// completion "m" 1 and another by how close its first byte b is to 'm':
// max(0, ½ − |b − 'm'|/32). Mode "bad-line"
// prints "x" for the second completion, "short" prints one score too few,
// "fail" exits 3, and "sleep" sleeps past any test's timeout.
func rewardHelper(mode string) int {
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var rows []CommandInput
	for sc.Scan() {
		var in CommandInput
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		rows = append(rows, in)
	}
	switch mode {
	case "fail":
		fmt.Fprintln(os.Stderr, "the helper fails on purpose")
		return 3
	case "sleep":
		time.Sleep(time.Minute)
	case "short":
		rows = rows[1:]
	}
	for i, r := range rows {
		if mode == "bad-line" && i == 1 {
			fmt.Println("x")
			continue
		}
		s := 0.0
		switch {
		case r.Completion == "m":
			s = 1
		case r.Completion != "":
			s = max(0, 0.5-math.Abs(float64(r.Completion[0])-'m')/32)
		}
		fmt.Println(s)
	}
	return 0
}

func helperCommand(t *testing.T, mode string) string {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(exe, " \t") {
		t.Skipf("the test binary's path %q holds white space", exe)
	}
	return exe + " " + helperArg + " " + mode
}

// TestCommandReward runs the helper command and checks its scores and
// every failure: each error names the row, the prompt and the completion,
// or, with ErrorsZero, scores the completion 0 and counts it.
func TestCommandReward(t *testing.T) {
	ss := []Sample{{Row: 0, Prompt: "p0", Completion: "m"}, {Row: 1, Prompt: "p1", Completion: "q"}, {Row: 6, Prompt: "p6", Completion: ""}}
	run := func(mode string, timeout time.Duration) ([]float64, error) {
		return commandReward(strings.Fields(helperCommand(t, mode)), timeout).score(context.Background(), ss)
	}
	got, err := run("byte", 10*time.Second)
	if err != nil || !slices.Equal(got, []float64{1, 0.5 - 4.0/32, 0}) {
		t.Fatalf("scores %v (%v), want 1, 0.375, 0", got, err)
	}
	for _, c := range []struct {
		mode    string
		timeout time.Duration
		want    []string
	}{
		{"bad-line", 10 * time.Second, []string{"output line 2", `"x"`, "row 2", `prompt "p1"`, `completion "q"`}},
		{"short", 10 * time.Second, []string{"2 scores for 3 completions", "row 7", `prompt "p6"`}},
		{"fail", 10 * time.Second, []string{"exit status 3", "fails on purpose", "row 1"}},
		{"sleep", 300 * time.Millisecond, []string{"timed out", "row 1", `completion "m"`}},
	} {
		_, err := run(c.mode, c.timeout)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to hold %s", c.mode, err, w)
			}
		}
	}
	// Under ErrorsZero the bad line scores 0 and is counted; under
	// ErrorsStop the run stops.
	funcs := []rewardFunc{commandReward(strings.Fields(helperCommand(t, "bad-line")), 10*time.Second)}
	scores, errs, err := scoreAll(context.Background(), funcs, ss, ErrorsZero)
	if err != nil || !slices.Equal(scores[0], []float64{1, 0, 0}) || errs[0] != 1 {
		t.Errorf("zero: scores %v, errors %v (%v); want 1 0 0 and 1 error", scores, errs, err)
	}
	funcs = []rewardFunc{commandReward(strings.Fields(helperCommand(t, "fail")), 10*time.Second)}
	if scores, errs, err = scoreAll(context.Background(), funcs, ss, ErrorsZero); err != nil || errs[0] != 3 || !slices.Equal(scores[0], []float64{0, 0, 0}) {
		t.Errorf("zero, crashed command: scores %v, errors %v (%v); want all 0 and 3 errors", scores, errs, err)
	}
	if _, _, err := scoreAll(context.Background(), funcs, ss, ErrorsStop); err == nil || !strings.Contains(err.Error(), "reward function command") {
		t.Errorf("stop: error %v", err)
	}
}

// The built-in reward functions on hand-made samples.
func TestBuiltinRewards(t *testing.T) {
	task := world.New(1).Instructions(world.Train, 1)[0]
	s := Sample{Instruction: task.Instruction, Input: task.Input, Answer: task.Output, Completion: " " + task.Output + " ", Ended: true}
	for _, c := range []struct {
		f    func(Sample) (float64, error)
		s    Sample
		want float64
	}{
		{worldReward, s, 1},
		{worldReward, Sample{Instruction: task.Instruction, Input: task.Input, Completion: task.Output + "x"}, 0},
		{exactReward, s, 1},
		{exactReward, Sample{Answer: "a", Completion: "b"}, 0},
		{formatReward, s, 1},
		{formatReward, Sample{Completion: "a", Ended: false}, 0},
		{formatReward, Sample{Completion: "a\nb", Ended: true}, 0},
	} {
		if got, err := c.f(c.s); err != nil || got != c.want {
			t.Errorf("%+v: %v (%v), want %v", c.s, got, err, c.want)
		}
	}
	if _, err := worldReward(Sample{Instruction: "Write a poem."}); err == nil || !strings.Contains(err.Error(), "built-in world") {
		t.Errorf("a row of no world task: error %v", err)
	}
	f := rowFunc(RewardExact, exactReward)
	if _, err := f.score(context.Background(), []Sample{{Row: 4, Prompt: "q", Answer: "a"}, {Row: 5, Prompt: "why", Completion: "c"}}); err == nil ||
		!strings.Contains(err.Error(), "row 6") || !strings.Contains(err.Error(), "output column is empty") {
		t.Errorf("empty answer: error %v, want it to name row 6", err)
	}
}

func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Base, ok.Data, ok.Out = "b", "d", "o"
	configtest.Check(t, ok, Config.Validate, configtest.StageRun(Run), []configtest.Case[Config]{
		{Key: KeyBase, Edit: func(c *Config) { c.Base = "" }},
		{Key: KeyBaseDtype, Edit: func(c *Config) { c.BaseDtype = "float16" }},
		{Key: KeyData, Edit: func(c *Config) { c.Data = "" }},
		{Key: KeyOut, Edit: func(c *Config) { c.Out = "" }},
		{Key: KeyIterations, Edit: func(c *Config) { c.Iterations = 0 }},
		{Key: KeyNumGenerations, Edit: func(c *Config) { c.NumGenerations = 1 }},
		{Key: KeyGenerationBatchSize, Edit: func(c *Config) { c.GenerationBatchSize = 30 }},
		{Key: KeyGenerationBatchSize, Edit: func(c *Config) { c.GenerationBatchSize = 32; c.Train.GradAccum = 3 }},
		{Key: KeyNumIterations, Edit: func(c *Config) { c.NumIterations = 0 }},
		{Key: KeyMaxCompletionLength, Edit: func(c *Config) { c.MaxCompletionLength = 0 }},
		{Key: KeyMaxPromptLength, Edit: func(c *Config) { c.MaxPromptLength = -1 }},
		{Key: KeyEvalMax, Edit: func(c *Config) { c.EvalMax = -1 }},
		{Key: KeyTemperature, Edit: func(c *Config) { c.Temperature = 0 }},
		{Key: KeyTopP, Edit: func(c *Config) { c.TopP = 0 }},
		{Key: KeyTopP, Edit: func(c *Config) { c.TopP = 1.5 }},
		{Key: KeyAdvantageEstimator, Edit: func(c *Config) { c.Estimator = "ppo" }},
		{Key: KeyScaleRewards, Edit: func(c *Config) { c.ScaleRewards = "true" }},
		{Key: KeyLossType, Edit: func(c *Config) { c.LossType = "bnpo" }},
		{Key: KeyEpsilon, Edit: func(c *Config) { c.Epsilon = 0 }},
		{Key: KeyEpsilonHigh, Edit: func(c *Config) { c.EpsilonHigh = -0.1 }},
		{Key: KeyBeta, Edit: func(c *Config) { c.Beta = math.NaN() }},
		{Key: KeyRewardFuncs, Edit: func(c *Config) { c.RewardFuncs = nil }},
		{Key: KeyRewardFuncs, Edit: func(c *Config) { c.RewardFuncs = []string{"https"} }},
		{Key: KeyRewardFuncs, Edit: func(c *Config) { c.RewardFuncs = []string{RewardExact, RewardExact} }},
		{Key: KeyRewardWeights, Edit: func(c *Config) { c.RewardWeights = []float64{1, 2} }},
		{Key: KeyRewardWeights, Edit: func(c *Config) { c.RewardWeights = []float64{math.Inf(1)} }},
		{Key: KeyRewardCommand, Edit: func(c *Config) { c.RewardFuncs = []string{RewardCommand} }},
		{Key: KeyRewardTimeout, Edit: func(c *Config) { c.RewardFuncs, c.RewardCommand, c.RewardTimeout = []string{RewardCommand}, "true", 0 }},
		{Key: KeyRewardAdapter, Edit: func(c *Config) { c.RewardFuncs = []string{RewardModel} }},
		{Key: KeyRewardURL, Edit: func(c *Config) { c.RewardFuncs, c.RewardURL = []string{RewardHTTP}, "localhost:8000" }},
		{Key: KeyRewardCommand, Edit: func(c *Config) { c.RewardCommand = "score.sh" }},
		{Key: KeyRewardURL, Edit: func(c *Config) { c.RewardURL = "http://localhost:8000" }},
		{Key: KeyRewardAdapter, Edit: func(c *Config) { c.RewardAdapter = "rm/adapter" }},
		{Key: KeyRewardSFTAdapter, Edit: func(c *Config) { c.RewardSFTAdapter = NoSFT }},
		{Key: KeyRewardTimeout, Edit: func(c *Config) { c.RewardFuncs, c.RewardURL, c.RewardTimeout = []string{RewardHTTP}, "http://h", -1 }},
		{Key: KeyRewardErrors, Edit: func(c *Config) { c.RewardErrors = "ignore" }},
		{Key: lora.KeyR, Edit: func(c *Config) { c.LoRA.R = 0 }},
		{Key: train.KeyGradAccum, Edit: func(c *Config) { c.Train.GradAccum = 0 }},
		{Key: train.KeyPeakLR, Edit: func(c *Config) { c.Train.LR = 0 }},
	})
	if got := ok.loop(); got.LogEvery != ok.NumIterations || got.Steps != ok.Iterations*ok.NumIterations || got.Dir != ok.Out {
		t.Errorf("loop config: log every %d, %d steps, dir %q", got.LogEvery, got.Steps, got.Dir)
	}
}

// byteBase writes a random tiny byte-level model with an EOS token.
func byteBase(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "base")
	w, tok := tinymodel.Weights(t, 5, 256, "</s>")
	tinymodel.Save(t, dir, w, tok)
	return dir
}

// TestToyOptimum: the world's small base model learns to answer "t" to
// "Name a letter." under the exact reward, a known optimum of reward 1 that
// it samples about once in 20 at first (it mostly answers a digit). The
// completion is one token, so the optimum is exact: every sampled and the
// greedy held-out answer become "t".
func TestToyOptimum(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = tinymodel.WorldBase(), filepath.Join(t.TempDir(), "grpo")
	cfg.Rows = []data.Instruction{{Instruction: "Name a letter.", Output: "t"}}
	cfg.EvalRows = cfg.Rows
	cfg.Iterations, cfg.NumGenerations, cfg.GenerationBatchSize, cfg.MaxCompletionLength = 30, 16, 16, 1
	cfg.Train.LR, cfg.Train.Schedule, cfg.Train.Quiet, cfg.Train.EvalEvery = 2e-3, "constant", true, 0
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Batches) != 30 {
		t.Fatalf("%d generation batches, want 30", len(res.Batches))
	}
	for i, b := range res.Batches {
		t.Logf("batch %d: reward %.3f std %.3f zero-std %.2f", i, b["reward"], b["reward_std"], b["frac_reward_zero_std"])
	}
	first, last := res.Batches[0]["reward"], res.Batches[29]["reward"]
	if last != 1 || first > 0.25 {
		t.Errorf("mean reward %.3f → %.3f, want from below 0.25 to 1", first, last)
	}
	if res.Eval["reward"] != 1 {
		t.Errorf("greedy held-out reward %v, want 1 (the answer t)", res.Eval["reward"])
	}
}

// worldConfig is a short run on the built-in world's tasks with the
// world's checkers, β > 0, two passes per generation batch and two
// micro-batches per update.
func worldConfig(out string) Config {
	w := world.New(1)
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = tinymodel.WorldBase(), out
	cfg.Rows, cfg.EvalRows = w.Instructions(world.Train, 64).Rows(), w.Instructions(world.Valid, 4).Rows()
	cfg.RewardFuncs, cfg.RewardWeights = []string{RewardWorld, RewardFormat}, []float64{1, 0.5}
	cfg.Iterations, cfg.NumGenerations, cfg.GenerationBatchSize, cfg.NumIterations, cfg.MaxCompletionLength = 2, 4, 8, 2, 4
	cfg.Beta, cfg.EpsilonHigh, cfg.LossType = 0.04, 0.28, LossGRPO
	cfg.Train.GradAccum, cfg.Train.LR, cfg.Train.Quiet, cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 2, 1e-2, true, 1, 4, 0
	return cfg
}

// TestResume: a run interrupted between the two updates of a generation
// batch (the checkpoint then holds the batch, with its old and reference
// log-probabilities) and resumed ends with the same adapter, bit for bit,
// and the same metrics as an uninterrupted run. The records carry TRL's
// names; the first update sees the reference policy itself (KL 0) and the
// first pass over each batch the sampling policy itself (nothing clipped).
func TestResume(t *testing.T) {
	dir := t.TempDir()
	straight := worldConfig(filepath.Join(dir, "straight"))
	if _, err := Run(context.Background(), straight); err != nil {
		t.Fatal(err)
	}
	cut := worldConfig(filepath.Join(dir, "cut"))
	if _, err := Run(tinymodel.CancelAfterLines{Context: context.Background(), Path: train.MetricsFile(cut.Out), N: 1}, cut); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	st, err := train.LoadState(cut.Out)
	if err != nil {
		t.Fatal(err)
	}
	var saved savedState
	if err := json.Unmarshal(st.Data, &saved); err != nil || st.Step != 1 || len(saved.Batch) == 0 {
		t.Fatalf("checkpoint at update %d, batch saved: %v (%v)", st.Step, len(saved.Batch) > 0, err)
	}
	cut.Resume = true
	if _, err := Run(context.Background(), cut); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(straight.Out, "adapter", lora.WeightsFile))
	b, _ := os.ReadFile(filepath.Join(cut.Out, "adapter", lora.WeightsFile))
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Error("the adapter differs between the resumed and the uninterrupted run")
	}
	ma, errA := train.ReadMetrics(train.MetricsFile(straight.Out))
	mb, errB := train.ReadMetrics(train.MetricsFile(cut.Out))
	if errA != nil || errB != nil || len(ma) != len(mb) || len(ma) != 5 {
		t.Fatalf("%d vs %d metric records (%v, %v), want 4 + 1", len(ma), len(mb), errA, errB)
	}
	for i := range ma {
		for k, v := range ma[i] {
			if k != train.KeyTokensPerSec && mb[i][k] != v {
				t.Errorf("record %d, %s: resumed %v, uninterrupted %v", i, k, mb[i][k], v)
			}
		}
	}
	for _, k := range []string{"reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "completions/clipped_ratio",
		"kl", "clip_ratio/region_mean", "clip_ratio/low_mean", "clip_ratio/high_mean", "rewards/world/mean", "rewards/format/mean", "rewards/world/std"} {
		if _, ok := ma[0][k]; !ok {
			t.Errorf("the first record lacks %s: %v", k, ma[0])
		}
	}
	if kl := ma[0]["kl"]; math.Abs(kl) > 1e-6 {
		t.Errorf("first update: kl %v, want 0 (the policy starts as the reference)", kl)
	}
	for _, i := range []int{0, 2} {
		if c := ma[i]["clip_ratio/region_mean"]; c != 0 {
			t.Errorf("record %d, the first pass over its batch: clip ratio %v, want 0", i, c)
		}
	}
	if ma[1]["kl"] <= 0 {
		t.Errorf("second update: kl %v, want > 0 after a step", ma[1]["kl"])
	}
	last := ma[len(ma)-1]
	if _, ok := last["eval_reward"]; !ok {
		t.Errorf("the held-out record lacks eval_reward: %v", last)
	}
}

// TestRewardModel: a reward adapter (LoRA and a score head, as gotune
// reward saves it) on the policy's own weights scores the completions;
// the scores differ between completions and reach rewards/model/*.
func TestRewardModel(t *testing.T) {
	dir := t.TempDir()
	m, err := finetune.Open(tinymodel.WorldBase())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.NewAdapter(lora.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	head := model.NewTensor(1, m.Weights.Config.HiddenSize)
	for i, w := 0, model.F32(head); i < len(w); i++ {
		w[i] = float32(i%7) - 3
	}
	m.Extra[finetune.ScoreHead] = head
	rm := filepath.Join(dir, "rm")
	if err := m.SaveAdapter(rm, finetune.RewardTaskType); err != nil {
		t.Fatal(err)
	}
	cfg := worldConfig(filepath.Join(dir, "grpo"))
	cfg.RewardFuncs, cfg.RewardWeights, cfg.RewardAdapter = []string{RewardModel, RewardWorld}, nil, rm
	cfg.Iterations, cfg.NumIterations, cfg.Beta, cfg.EvalRows = 1, 1, 0, nil
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := res.Batches[0]
	if b["rewards/model/std"] == 0 || math.IsNaN(b["rewards/model/mean"]) {
		t.Errorf("reward model scores: mean %v, std %v; want differing scores", b["rewards/model/mean"], b["rewards/model/std"])
	}
	if got, want := b["reward"], b["rewards/model/mean"]+b["rewards/world/mean"]; math.Abs(got-want) > 1e-9 {
		t.Errorf("reward %v, want the sum of the functions' means %v", got, want)
	}
	cfg.RewardAdapter, cfg.Out = filepath.Join(dir, "missing"), filepath.Join(dir, "grpo2")
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), KeyRewardAdapter) {
		t.Errorf("a missing reward adapter: %v", err)
	}
}

// TestBF16Base runs one generation batch (two updates) with the base held
// in bfloat16 and in float32. On a base whose matrices are already
// bfloat16 values the two runs sample the same completions (the decoding
// engine reads bfloat16 exactly: the batch's figures are equal, bit for
// bit) and log the same losses but for the order of sums; on the base as
// trained the bfloat16 run logs other losses (the base was rounded).
func TestBF16Base(t *testing.T) {
	run := func(base, dtype string) (batch map[string]float64, recs []map[string]float64) {
		cfg := worldConfig(filepath.Join(t.TempDir(), "grpo"))
		cfg.Base, cfg.BaseDtype, cfg.Iterations, cfg.EvalRows = base, dtype, 1, nil
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if recs, err = train.ReadMetrics(train.MetricsFile(cfg.Out)); err != nil {
			t.Fatal(err)
		}
		return res.Batches[0], recs
	}
	rounded := stagetest.RoundedBase(t, tinymodel.WorldBase())
	fullBatch, full := run(rounded, finetune.BaseFloat32)
	halfBatch, half := run(rounded, finetune.BaseBFloat16)
	if !maps.Equal(fullBatch, halfBatch) {
		t.Errorf("the same weights sampled differently: float32 %v, bfloat16 %v", fullBatch, halfBatch)
	}
	if len(full) != 2 || len(half) != len(full) {
		t.Fatalf("%d and %d metric records, want 2", len(full), len(half))
	}
	for i := range full {
		for _, k := range []string{"loss", "kl", "grad_norm", "clip_ratio/region_mean"} {
			a, ok := full[i][k]
			if !ok {
				continue
			}
			if b := half[i][k]; math.Abs(a-b) > 1e-4*(1+math.Abs(a)) {
				t.Errorf("record %d %s: float32 %.7g, bfloat16 %.7g", i, k, a, b)
			}
		}
	}
	_, rawFull := run(tinymodel.WorldBase(), finetune.BaseFloat32)
	_, rawHalf := run(tinymodel.WorldBase(), finetune.BaseBFloat16)
	if rawFull[0]["grad_norm"] == rawHalf[0]["grad_norm"] && rawFull[1]["loss"] == rawHalf[1]["loss"] {
		t.Error("on the unrounded base the bfloat16 run logged exactly the float32 run's gradient norm and loss: was the base held in bfloat16?")
	}
}
