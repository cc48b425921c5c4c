package pretrain

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// syntheticCorpus writes n documents of a small regular language: simple
// sentences over a few dozen words, counting runs and sums. It has enough
// structure for a small model to learn quickly and enough variety that
// held-out documents are new.
func syntheticCorpus(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 99))
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	nums := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
	var docs []string
	for range n {
		var s []string
		for k := 2 + r.IntN(3); k > 0; k-- {
			switch r.IntN(3) {
			case 0:
				s = append(s, fmt.Sprintf("the %s %s %s the %s.",
					pick("small", "red", "old", "happy"), pick("cat", "dog", "bird", "fox"),
					pick("sees", "likes", "chases", "finds"), pick("ball", "tree", "house", "river")))
			case 1:
				a := r.IntN(6)
				run := slices.Clone(nums[a : a+3+r.IntN(3)])
				s = append(s, "count: "+strings.Join(run, " ")+".")
			default:
				a, b := r.IntN(6), r.IntN(5)
				s = append(s, fmt.Sprintf("%s plus %s is %s.", nums[a], nums[b], nums[a+b]))
			}
		}
		docs = append(docs, strings.Join(s, " "))
	}
	return docs
}

// microModel is a small LLaMA shape (GQA, tied embeddings) that trains in
// seconds.
func microModel() *model.Config {
	c, _ := model.Preset("tiny", 0)
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 64, 160, 2
	c.NumAttentionHeads, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 4, 2, 64
	c.VocabSize = 320
	return &c
}

func microConfig(dir string, docs []string) Config {
	cfg := DefaultConfig()
	cfg.Docs, cfg.Model, cfg.Out = docs, microModel(), dir
	cfg.SeqLen, cfg.BatchSize, cfg.HeldOut, cfg.EvalMax = 32, 8, 0.1, 0
	t := &cfg.Train
	t.Steps, t.LR, t.WarmupSteps, t.Quiet = 150, 3e-3, 10, true
	t.EvalEvery, t.CheckpointEvery, t.LogEvery = 0, 0, 10
	return cfg
}

// TestPretrainLowersHeldOutLoss: 150 updates of 8 × 32 tokens must take
// the held-out loss from about ln V (a random model, ≈ 5.8 nats) to less
// than a quarter of it (measured: 5.80 → 0.74).
func TestPretrainLowersHeldOutLoss(t *testing.T) {
	dir := t.TempDir()
	docs := syntheticCorpus(1500, 1)
	cfg := microConfig(dir, docs)
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The untrained model of the same seed, scored the same way.
	w, err := hf.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	w0, err := model.NewRandom(w.Config, cfg.ModelSeed)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, held := SplitHeldOut(docs, cfg.HeldOut)
	s := finetune.Windows{Stream: finetune.Tokenize(tok, held), T: cfg.SeqLen}
	// finetune's test checks TextLoss against an independent float64
	// scoring of the same windows.
	before, n, err := finetune.TextLoss(context.Background(), w0, s, 8, int32(tok.PAD()))
	if err != nil {
		t.Fatal(err)
	}
	after, _, err := finetune.TextLoss(context.Background(), w, s, 8, int32(tok.PAD()))
	if err != nil {
		t.Fatal(err)
	}
	if n != len(s.Stream)-1 {
		t.Fatalf("scored %d targets of a %d-token stream", n, len(s.Stream))
	}
	t.Logf("held-out loss %.4f → %.4f (ln V = %.4f) on %d tokens; loop reported %.4f", before, after, math.Log(float64(w.Config.VocabSize)), len(s.Stream)-1, res.EvalLoss)
	if math.Abs(before-math.Log(float64(w.Config.VocabSize))) > 0.1 {
		t.Errorf("untrained loss %.4f is not ≈ ln V", before)
	}
	if after > before/4 {
		t.Errorf("held-out loss %.4f → %.4f: did not fall below a quarter", before, after)
	}
	if math.Abs(after-res.EvalLoss) > 1e-4*after {
		t.Errorf("loop's final eval %.6f differs from a fresh evaluation %.6f", res.EvalLoss, after)
	}
	for _, f := range []string{"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "metrics.jsonl", "state/trainer_state.json", "state/model.safetensors"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	if w.Config.BOSTokenID == nil || w.Config.EOSTokenID == nil {
		t.Errorf("config lacks bos/eos: %+v", w.Config)
	}
	recs, err := train.ReadMetrics(train.MetricsFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last["step"] != 150 || last["eval_loss"] == 0 || last["epoch"] <= 0 {
		t.Errorf("last metrics record %v", last)
	}
}

// TestPretrainResume interrupts a run with Ctrl-C, resumes it, and
// requires the same final weights as an uninterrupted run.
func TestPretrainResume(t *testing.T) {
	docs := syntheticCorpus(300, 2)
	short := func(dir string) Config {
		cfg := microConfig(dir, docs)
		cfg.Model.NumHiddenLayers = 1
		cfg.Train.Steps, cfg.Train.CheckpointEvery, cfg.Train.LogEvery = 12, 5, 1
		return cfg
	}
	refDir := t.TempDir()
	if _, err := Run(context.Background(), short(refDir)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// Ctrl-C arrives before update 8: the loop checks the context once
	// before each update.
	ctx := &cancelAfter{Context: context.Background(), limit: 7}
	if _, err := Run(ctx, short(dir)); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run returned %v", err)
	}
	if st, err := train.LoadState(dir); err != nil || st.Step != 7 {
		t.Fatalf("checkpoint after the interruption: %+v, %v", st, err)
	}
	if _, err := Run(context.Background(), short(dir)); err == nil || !strings.Contains(err.Error(), "holds a training checkpoint") {
		t.Fatalf("restart without resume: %v", err)
	}
	cfg := short(dir)
	cfg.Resume = true
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	want, err := hf.LoadModel(refDir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := hf.LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range want.Named() {
		if !slices.Equal(model.F32(n.Tensor), model.F32(got.Named()[i].Tensor)) {
			t.Errorf("%s differs after interrupt and resume", n.Name)
		}
	}
	a, _ := train.ReadMetrics(train.MetricsFile(refDir))
	b, _ := train.ReadMetrics(train.MetricsFile(dir))
	if len(a) != len(b) {
		t.Fatalf("%d vs %d metrics records", len(a), len(b))
	}
	for i := range a {
		if a[i]["loss"] != b[i]["loss"] || a[i]["eval_loss"] != b[i]["eval_loss"] {
			t.Errorf("record %d: %v vs %v", i, a[i], b[i])
		}
	}
}

// cancelAfter is a context that reports cancellation from its limit+1-th
// Err call on, which interrupts a loop at a chosen update.
type cancelAfter struct {
	context.Context
	calls, limit int
}

func (c *cancelAfter) Err() error {
	if c.calls++; c.calls > c.limit {
		return context.Canceled
	}
	return nil
}
