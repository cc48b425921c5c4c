package dpo

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/train"
	"gorgonia.org/tensor"
)

// sftAdapter writes an adapter with random B (as a trained SFT adapter
// would have) for the base in dir.
func sftAdapter(t *testing.T, base string) string {
	t.Helper()
	w, err := hf.LoadModel(base)
	if err != nil {
		t.Fatal(err)
	}
	a, err := lora.New(w, lora.Config{R: 4, Alpha: 8, Targets: []string{"all-linear"}, Init: "gaussian", Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a, 12)
	dir := filepath.Join(t.TempDir(), "sft")
	if err := a.Save(dir, base, TaskType, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestStartFromSFT runs one update from an SFT adapter: the merged base is
// written and recorded as the DPO adapter's base, and at step 0 (a fresh
// adapter over the merged base is the reference exactly) every reward is
// exactly 0 and the sigmoid loss is exactly log 2, computed through the
// model graph.
func TestStartFromSFT(t *testing.T) {
	base := microBase(t, 2)
	sft := sftAdapter(t, base)
	out := filepath.Join(t.TempDir(), "dpo")
	cfg := testConfig("", out) // the base comes from the SFT adapter's config
	cfg.SFTAdapter = sft
	cfg.Train.Steps = 1
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := train.ReadMetrics(train.MetricsFile(out))
	if err != nil {
		t.Fatal(err)
	}
	first := recs[0]
	for _, k := range []string{"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} {
		if v, ok := first[k]; !ok || v != 0 {
			t.Errorf("step 1 %s = %v (present %v), want exactly 0", k, v, ok)
		}
	}
	if first["loss"] != math.Ln2 {
		t.Errorf("step 1 loss = %.17g, want log 2 = %.17g", first["loss"], math.Ln2)
	}
	if first["logps/chosen"] >= 0 || first["logps/rejected"] >= 0 {
		t.Errorf("log-probs %v, %v should be negative sums", first["logps/chosen"], first["logps/rejected"])
	}
	if _, ok := first["logits/chosen"]; !ok {
		t.Errorf("no logits/chosen in %v", first)
	}
	var sawEval bool
	for _, r := range recs {
		if _, ok := r["eval_rewards/accuracies"]; ok {
			sawEval = true
			for _, k := range []string{"eval_loss", "eval_logps/chosen", "eval_logits/rejected", "eval_rewards/margins"} {
				if _, ok := r[k]; !ok {
					t.Errorf("eval record lacks %s: %v", k, r)
				}
			}
		}
	}
	if !sawEval || res.Eval == nil {
		t.Fatal("no held-out evaluation")
	}

	// The merged base is W + s·B·A of the SFT adapter, and the adapter
	// points at it.
	if res.BaseDir != BaseDir(out) {
		t.Errorf("base dir %q, want %q", res.BaseDir, BaseDir(out))
	}
	pc, err := lora.ReadConfig(res.AdapterDir)
	if err != nil {
		t.Fatal(err)
	}
	if pc.BaseModelNameOrPath != BaseDir(out) || pc.TaskType != TaskType {
		t.Errorf("adapter base %q task %q", pc.BaseModelNameOrPath, pc.TaskType)
	}
	want, err := hf.LoadModel(base)
	if err != nil {
		t.Fatal(err)
	}
	a, _, _, err := lora.Load(sft, want)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Merge(want); err != nil {
		t.Fatal(err)
	}
	got, err := hf.LoadModel(BaseDir(out))
	if err != nil {
		t.Fatal(err)
	}
	gn, wn := got.Named(), want.Named()
	for i := range wn {
		if !slices.Equal(model.F32(gn[i].Tensor), model.F32(wn[i].Tensor)) {
			t.Fatalf("merged base differs from base + SFT adapter at %s", wn[i].Name)
		}
	}
	if _, err := os.Stat(filepath.Join(res.AdapterDir, "tokenizer.json")); err != nil {
		t.Errorf("adapter directory lacks the tokenizer: %v", err)
	}
}

// runLogged runs DPO on base with testConfig as edit changes it, in a
// fresh directory, and returns the directory and the logged records.
func runLogged(t *testing.T, base string, edit func(*Config)) (string, []map[string]float64) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dpo")
	cfg := testConfig(base, out)
	edit(&cfg)
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	recs, err := train.ReadMetrics(train.MetricsFile(out))
	if err != nil {
		t.Fatal(err)
	}
	return out, recs
}

// TestPrecomputedReferenceMatchesLive trains twice from the same start, once
// with the reference run beside every step and once with it precomputed
// into dataset columns: the losses agree step by step, and the columns are
// in the run's datasets.
func TestPrecomputedReferenceMatchesLive(t *testing.T) {
	base := microBase(t, 3)
	run := func(pre bool) (string, []map[string]float64) {
		return runLogged(t, base, func(cfg *Config) {
			cfg.PrecomputeRef = pre
			cfg.Train.LR = 1e-2 // move the policy well away from the reference
		})
	}
	_, live := run(false)
	out, pre := run(true)
	if len(live) != len(pre) {
		t.Fatalf("%d vs %d metric records", len(live), len(pre))
	}
	var moved bool
	for i := range live {
		for _, k := range []string{"loss", "eval_loss", "rewards/margins", "eval_rewards/chosen"} {
			a, ok := live[i][k]
			if !ok {
				continue
			}
			b := pre[i][k]
			if math.Abs(a-b) > 1e-6*math.Max(1, math.Abs(a)) {
				t.Errorf("record %d %s: live %.9g, precomputed %.9g", i, k, a, b)
			}
			if k == "loss" && math.Abs(a-math.Ln2) > 1e-3 {
				moved = true
			}
		}
	}
	if !moved {
		t.Error("the loss never left log 2: the comparison proves little")
	}
	for _, name := range []string{"train", "eval"} {
		rows, err := data.ReadPreferences(filepath.Join(DataDir(out), name+".arrow"))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			if r.RefChosenLogp == nil || r.RefRejectedLogp == nil || !(*r.RefChosenLogp < 0) || !(*r.RefRejectedLogp < 0) {
				t.Fatalf("%s row %d: reference columns %v %v", name, i, r.RefChosenLogp, r.RefRejectedLogp)
			}
		}
	}
}

// TestResumeExact interrupts a run (with adapter dropout) after its third
// update and resumes it: the adapter equals an uninterrupted run's bit for
// bit.
func TestResumeExact(t *testing.T) {
	base := microBase(t, 4)
	cfgFor := func(out string) Config {
		cfg := testConfig(base, out)
		cfg.Train.Steps, cfg.Train.CheckpointEvery = 5, 2
		cfg.LoRA.Dropout = 0.1
		return cfg
	}
	whole := filepath.Join(t.TempDir(), "whole")
	if _, err := Run(context.Background(), cfgFor(whole)); err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut")
	ctx, cancel := context.WithCancel(context.Background())
	testHookStep = func(step, _ int) {
		if step == 3 {
			cancel()
		}
	}
	_, err := Run(ctx, cfgFor(cut))
	testHookStep = nil
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := Run(context.Background(), cfgFor(cut)); err == nil {
		t.Fatal("a second run into a directory with a checkpoint must refuse without Resume")
	}
	cfg := cfgFor(cut)
	cfg.Resume = true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	w, err := hf.LoadModel(base)
	if err != nil {
		t.Fatal(err)
	}
	a1, _, _, err := lora.Load(finetuneAdapterDir(whole), w)
	if err != nil {
		t.Fatal(err)
	}
	a2, _, _, err := lora.Load(finetuneAdapterDir(cut), w)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range a1.Modules {
		if !slices.Equal(model.F32(m.A), model.F32(a2.Modules[i].A)) || !slices.Equal(model.F32(m.B), model.F32(a2.Modules[i].B)) {
			t.Fatalf("module %s differs after resuming", m.PEFTPrefix())
		}
	}
	if st, err := train.LoadState(cut); err != nil || st == nil {
		t.Fatalf("state: %v", err)
	}
}

func finetuneAdapterDir(out string) string { return filepath.Join(out, "adapter") }

// TestLearnsWorldPreferences trains on the default world's preference
// pairs, starting from a briefly fine-tuned micro model (the SFT model of
// the pipeline, in small): on 192 held-out pairs the implicit reward ranks
// the chosen answer first well above chance (≥ 0.6, nearly three standard
// errors above 0.5; 0.65–0.68 over four seeds of model and data), and the
// policy itself prefers the chosen answer on at least 4 points more of them
// than the starting model does (5–17 points over the same seeds).
func TestLearnsWorldPreferences(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model for many updates; skipped with -short")
	}
	base := sftBase(t, 1, 100)
	out := filepath.Join(t.TempDir(), "dpo")
	cfg := testConfig(base, out)
	useWorld(&cfg, 1000, 192)
	cfg.Pairs = 8
	cfg.LoRA = lora.Config{R: 8, Alpha: 16, Targets: []string{"all-linear"}, Seed: 1}
	cfg.Train.Steps, cfg.Train.LR, cfg.Train.WarmupSteps = 100, 2e-3, 5
	cfg.Train.LogEvery, cfg.Train.EvalEvery = 10, 50
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := res.Eval
	t.Logf("held-out: rewards/accuracies %.3f, margins %.4f, loss %.4f; prefers chosen: policy %.3f, start %.3f",
		ev.Metrics.RewardsAccuracies, ev.Metrics.RewardsMargins, ev.Metrics.Loss, ev.PolicyPrefersChosen, ev.ReferencePrefersChosen)
	if ev.Metrics.RewardsAccuracies < 0.6 {
		t.Errorf("held-out rewards/accuracies %.3f, want ≥ 0.6", ev.Metrics.RewardsAccuracies)
	}
	if ev.Metrics.Loss >= math.Ln2 || ev.Metrics.RewardsMargins <= 0 {
		t.Errorf("held-out loss %.4f (want < log 2), margin %.4f (want > 0)", ev.Metrics.Loss, ev.Metrics.RewardsMargins)
	}
	if ev.PolicyPrefersChosen < ev.ReferencePrefersChosen+0.04 {
		t.Errorf("policy prefers chosen on %.3f of held-out pairs, the starting model on %.3f: want ≥ 0.04 more",
			ev.PolicyPrefersChosen, ev.ReferencePrefersChosen)
	}
	// The eval_ metrics rise over training (the first evaluation is at
	// update 50).
	var first, last float64
	recs, err := train.ReadMetrics(train.MetricsFile(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if v, ok := r["eval_rewards/margins"]; ok {
			if first == 0 {
				first = v
			}
			last = v
		}
	}
	if !(last > first && first > 0) {
		t.Errorf("eval_rewards/margins went from %v to %v", first, last)
	}
}

// TestConfigValidate checks that each invalid setting is reported by
// Validate and by Run, naming its key.
func TestConfigValidate(t *testing.T) {
	good := testConfig("base", "out")
	configtest.Check(t, good, Config.Validate, configtest.StageRun(Run), []configtest.Case[Config]{
		{Key: KeyOut, Edit: func(c *Config) { c.Out = "" }},
		{Key: KeyBase, Edit: func(c *Config) { c.Base = "" }},
		{Key: KeyData, Edit: func(c *Config) { c.Rows = nil }},
		{Key: KeyPairs, Edit: func(c *Config) { c.Pairs = 0 }},
		{Key: KeyPairs, Edit: func(c *Config) { c.Pairs = -2 }},
		{Key: KeyMaxLen, Edit: func(c *Config) { c.MaxLen = 1 }},
		{Key: KeyEvalFraction, Edit: func(c *Config) { c.HeldOut = 1 }},
		{Key: KeyEvalFraction, Edit: func(c *Config) { c.HeldOut = -0.5 }},
		{Key: KeyEvalPairs, Edit: func(c *Config) { c.EvalMax = -1 }},
		{Key: KeyBuckets, Edit: func(c *Config) { c.Buckets = []int{96, 80} }},
		{Key: KeyBuckets, Edit: func(c *Config) { c.Buckets = []int{32} }},
		{Key: KeyChatTemplate, Edit: func(c *Config) { c.ChatTemplate = "vicuna" }},
		{Key: KeyTruncation, Edit: func(c *Config) { c.Truncation = "middle" }},
		{Key: KeyBaseDtype, Edit: func(c *Config) { c.BaseDtype = "int8" }},
		{Key: KeyBeta, Edit: func(c *Config) { c.Loss.Beta = 0 }},
		{Key: KeyLossType, Edit: func(c *Config) { c.Loss.Type = "kto" }},
		{Key: KeyRPOAlpha, Edit: func(c *Config) { c.Loss.SFTWeight = -1 }},
		{Key: lora.KeyR, Edit: func(c *Config) { c.LoRA.R = 0 }},
		{Key: lora.KeyDropout, Edit: func(c *Config) { c.LoRA.Dropout = 1 }},
		{Key: train.KeySteps, Edit: func(c *Config) { c.Train.Steps = 0 }},
		{Key: train.KeyGradAccum, Edit: func(c *Config) { c.Train.GradAccum = 0 }},
		{Key: train.KeyPeakLR, Edit: func(c *Config) { c.Train.LR = 0 }},
	})
	if b := (Config{MaxLen: 200}).buckets(); !slices.Equal(b, []int{32, 64, 128, 200}) {
		t.Errorf("default buckets %v", b)
	}
}

// TestImportedDataHeldOut trains on a JSONL file in TRL's standard shape,
// imported into the run, with a held-out fraction of it for evaluation.
func TestImportedDataHeldOut(t *testing.T) {
	base := microBase(t, 5)
	src := filepath.Join(t.TempDir(), "prefs.jsonl")
	var lines []byte
	for _, p := range world.New(9).Preferences(world.Train, 40) {
		lines = appendJSONL(lines, map[string]string{"prompt": p.Prompt, "chosen": p.Chosen, "rejected": p.Rejected})
	}
	if err := os.WriteFile(src, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "dpo")
	cfg := testConfig(base, out)
	cfg.Rows, cfg.EvalRows, cfg.Data, cfg.HeldOut, cfg.Train.Steps = nil, nil, src, 0.2, 2
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.TrainPairs != 32 || res.EvalPairs != 8 || res.Eval == nil || res.Eval.Pairs != 8 {
		t.Errorf("train %d, eval %d pairs (eval %+v), want 32 and 8", res.TrainPairs, res.EvalPairs, res.Eval)
	}
	if n, err := data.CountRows(filepath.Join(DataDir(out), "train.arrow")); err != nil || n != 40 {
		t.Errorf("imported dataset: %d rows, %v", n, err)
	}
}

// TestBF16Base trains DPO from an SFT adapter with the merged base held
// in bfloat16 (--base-dtype bfloat16) and in float32: every logged loss
// and margin agrees within a rounding difference (stated margin: 2 % of
// the loss, 0.02 nats of the margins), the merged base written beside
// the adapter stays float32, and the bfloat16 run did round the base
// (its losses are not bit for bit the float32 run's).
func TestBF16Base(t *testing.T) {
	base := microBase(t, 5)
	sft := sftAdapter(t, base)
	run := func(dtype string) (string, []map[string]float64) {
		return runLogged(t, base, func(cfg *Config) {
			cfg.SFTAdapter, cfg.BaseDtype = sft, dtype
			cfg.Train.LR = 1e-2
		})
	}
	_, full := run(finetune.BaseFloat32)
	out, half := run(finetune.BaseBFloat16)
	if len(full) != len(half) {
		t.Fatalf("%d vs %d metric records", len(full), len(half))
	}
	same := true
	for i := range full {
		for k, tol := range map[string]float64{"loss": 0.02, "eval_loss": 0.02, "rewards/margins": 0.02, "eval_rewards/margins": 0.02} {
			a, ok := full[i][k]
			if !ok {
				continue
			}
			b := half[i][k]
			same = same && a == b
			if k == "loss" || k == "eval_loss" {
				tol *= math.Abs(a)
			}
			if math.Abs(a-b) > tol {
				t.Errorf("record %d %s: float32 %.6g, bfloat16 %.6g", i, k, a, b)
			}
		}
	}
	if same {
		t.Error("the bfloat16 run logged exactly the float32 run's figures: was the base rounded?")
	}
	w, _, err := mgguf.LoadBase(BaseDir(out))
	if err != nil {
		t.Fatal(err)
	}
	if model.BF16(w.Embed) != nil || w.Embed.Dtype() != tensor.Float32 {
		t.Errorf("the merged base was written as %v", w.Embed.Dtype())
	}
}
