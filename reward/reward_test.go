package reward

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// trained is a reward model trained once on default-world preferences and
// shared by the tests that read it.
var trained struct {
	dir               tinymodel.SharedDir
	valid, train, out string
	res               Result
}

func TestMain(m *testing.M) {
	code := m.Run()
	trained.dir.Remove()
	os.Exit(code)
}

// trainedModel trains the shared reward model: the committed small base
// with LoRA on every linear module, 2000 training pairs of the default
// world, 60 updates of 8 pairs, 400 held-out pairs of the Valid split
// (items that never occur in training, in any phrasing).
func trainedModel(t *testing.T) {
	t.Helper()
	trained.dir.Make(t, "reward-test", func(d string) error {
		trained.train, trained.valid = filepath.Join(d, "train.arrow"), filepath.Join(d, "valid.arrow")
		worldPreferences(t, trained.train, world.Train, 2000)
		worldPreferences(t, trained.valid, world.Valid, 400)
		cfg := DefaultConfig()
		cfg.Base, cfg.Data, cfg.EvalData, cfg.Out = worldBaseDir, trained.train, trained.valid, filepath.Join(d, "rm")
		cfg.Train.Steps, cfg.Train.LR, cfg.Train.Quiet = 60, 2e-3, true
		cfg.Train.EvalEvery, cfg.Train.CheckpointEvery, cfg.Train.LogEvery = 30, 0, 10
		trained.out = cfg.Out
		var err error
		trained.res, err = Run(context.Background(), cfg)
		return err
	})
}

// TestRewardModelLearnsWorldPreferences: after 60 updates the reward model
// ranks 400 held-out pairs far better than chance (measured: accuracy
// 0.685, with the pure-Go and the OpenBLAS build alike; chance 0.5, one
// standard error 0.025), and it logs TRL's metrics, training and held-out.
func TestRewardModelLearnsWorldPreferences(t *testing.T) {
	trainedModel(t)
	res := trained.res
	if res.TrainPairs != 2000 || res.EvalPairs != 400 || res.Dropped != 0 || res.Steps != 60 {
		t.Fatalf("result %+v", res)
	}
	t.Logf("held-out metrics after %d updates: %+v", res.Steps, res.Eval)
	if res.Eval.Accuracy < 0.62 {
		t.Errorf("held-out accuracy %.3f, want ≥ 0.62 (chance is 0.5)", res.Eval.Accuracy)
	}
	if res.Eval.Margin <= 0 || res.Eval.MinReward >= res.Eval.MeanReward || res.Eval.MaxReward <= res.Eval.MeanReward {
		t.Errorf("held-out metrics %+v", res.Eval)
	}
	recs, err := train.ReadMetrics(train.MetricsFile(trained.out))
	if err != nil {
		t.Fatal(err)
	}
	var evals, trains int
	for _, r := range recs {
		if _, ok := r["eval_accuracy"]; ok {
			evals++
			for _, k := range []string{"eval_margin", "eval_mean_reward", "eval_min_reward", "eval_max_reward", "eval_loss"} {
				if _, ok := r[k]; !ok {
					t.Errorf("eval record lacks %s: %v", k, r)
				}
			}
			continue
		}
		trains++
		for _, k := range []string{"accuracy", "margin", "mean_reward", "min_reward", "max_reward", "loss", "grad_norm", "learning_rate", "epoch"} {
			if _, ok := r[k]; !ok {
				t.Errorf("training record lacks %s: %v", k, r)
			}
		}
	}
	if evals != 2 || trains != 6 {
		t.Errorf("%d eval and %d training records, want 2 and 6", evals, trains)
	}
	last := recs[len(recs)-1]
	if last["eval_accuracy"] != res.Eval.Accuracy {
		t.Errorf("last logged eval accuracy %v, result %v", last["eval_accuracy"], res.Eval.Accuracy)
	}

	// The adapter is a PEFT SEQ_CLS adapter with the head in modules_to_save.
	pc, err := lora.ReadConfig(res.AdapterDir)
	if err != nil {
		t.Fatal(err)
	}
	if pc.TaskType != finetune.RewardTaskType || !slices.Contains(pc.ModulesToSave, finetune.ScoreHead) {
		t.Errorf("adapter config task_type %q, modules_to_save %v", pc.TaskType, pc.ModulesToSave)
	}
	r, err := safetensors.Open(filepath.Join(res.AdapterDir, lora.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if info, ok := r.Info("base_model.model.score.weight"); !ok || !slices.Equal(info.Shape, []int{1, 64}) {
		t.Errorf("score head in the adapter: %v %v", info, ok)
	}

	// Loading the saved adapter on a fresh copy of the base scores the
	// held-out pairs exactly as the end of training did.
	m, err := finetune.OpenMerged(worldBaseDir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := finetune.LoadRewardModel(m, res.AdapterDir); err != nil {
		t.Fatal(err)
	}
	enc, _ := finetune.NewSequenceEncoder(m.Tokenizer)
	var pairs []Pair
	prefs, _ := data.ReadPreferences(trained.valid)
	for i, p := range prefs {
		pr, err := encodePair(enc, p, i)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, pr)
	}
	sc, err := finetune.NewScorer(m, 16, res.SeqLen)
	if err != nil {
		t.Fatal(err)
	}
	met, err := Evaluate(context.Background(), sc, LossConfig{}, pairs, false)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(met.Accuracy-res.Eval.Accuracy) > 1e-12 || math.Abs(met.Margin-res.Eval.Margin) > 1e-5*(1+math.Abs(met.Margin)) {
		t.Errorf("reloaded model: %+v, at the end of training: %+v", met, res.Eval)
	}
}

// TestScoreAddsColumns scores an instructions and a preferences dataset and
// checks the columns against the scorer's own numbers; a prompts dataset is
// refused.
func TestScoreAddsColumns(t *testing.T) {
	trainedModel(t)
	dir := t.TempDir()
	ins := world.New(3).Instructions(world.Valid, 12).Rows()
	insPath := filepath.Join(dir, "ins.arrow")
	if err := data.WriteInstructions(insPath, ins); err != nil {
		t.Fatal(err)
	}
	cfg := ScoreConfig{Base: worldBaseDir, Adapter: trained.res.AdapterDir, Data: insPath, Out: filepath.Join(dir, "ins-scored.arrow"), BatchSize: 5}
	res, err := Score(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != data.KindInstructions || res.Rows != 12 || !slices.Equal(res.Columns, []string{"reward"}) || res.Truncated != 0 {
		t.Fatalf("result %+v", res)
	}
	got := readFloatColumn(t, cfg.Out, "reward", 12)

	// The same numbers from a scorer of another batch shape.
	m, err := finetune.OpenMerged(worldBaseDir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := finetune.LoadRewardModel(m, trained.res.AdapterDir); err != nil {
		t.Fatal(err)
	}
	var seqs [][]int
	T := 0
	for _, x := range ins {
		ids := append(m.Tokenizer.Encode(tokenizer.FormatAlpaca(x.Instruction, x.Input), true), m.Tokenizer.Encode(x.Output, false)...)
		ids = append(ids, m.Tokenizer.EOS())
		seqs = append(seqs, ids)
		T = max(T, len(ids))
	}
	sc, err := finetune.NewScorer(m, 3, T+7)
	if err != nil {
		t.Fatal(err)
	}
	want, err := sc.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-4*(1+math.Abs(want[i])) {
			t.Errorf("row %d: column %v, scorer %v", i, got[i], want[i])
		}
	}

	// Preferences get score_chosen and score_rejected, in place.
	prefPath := filepath.Join(dir, "prefs.arrow")
	worldPreferences(t, prefPath, world.Valid, 20)
	res, err = Score(context.Background(), ScoreConfig{Base: worldBaseDir, Adapter: trained.res.AdapterDir, Data: prefPath, Out: prefPath})
	if err != nil {
		t.Fatal(err)
	}
	if res.Kind != data.KindPreferences || res.Rows != 20 || !slices.Equal(res.Columns, []string{"score_chosen", "score_rejected"}) {
		t.Fatalf("result %+v", res)
	}
	back, err := data.ReadPreferences(prefPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range back {
		if p.ScoreChosen == nil || p.ScoreRejected == nil || *p.ScoreChosen == *p.ScoreRejected || p.Chosen == "" {
			t.Fatalf("row %d: %+v", i, p)
		}
	}

	prompts := filepath.Join(dir, "prompts.arrow")
	if err := data.WritePrompts(prompts, []data.Prompt{{Prompt: "hi"}}); err != nil {
		t.Fatal(err)
	}
	_, err = Score(context.Background(), ScoreConfig{Base: worldBaseDir, Adapter: trained.res.AdapterDir, Data: prompts, Out: prompts + ".out"})
	if err == nil || !strings.Contains(err.Error(), "no completions") {
		t.Errorf("scoring prompts: %v", err)
	}
	// Too long sequences keep their end.
	res, err = Score(context.Background(), ScoreConfig{Base: worldBaseDir, Adapter: trained.res.AdapterDir, Data: insPath, Out: cfg.Out, MaxLength: 8})
	if err != nil || res.Truncated != 12 {
		t.Errorf("truncation: %+v %v", res, err)
	}
}

// readFloatColumn reads a float64 column of an instructions dataset.
func readFloatColumn(t *testing.T, path, name string, n int) []float64 {
	t.Helper()
	ds, err := data.OpenDataset(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	var out []float64
	for {
		rec, err := ds.Next()
		if err != nil {
			break
		}
		idx := ds.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("%s has no column %s", path, name)
		}
		col, ok := rec.Column(idx[0]).(interface{ Value(int) float64 })
		if !ok {
			t.Fatalf("column %s is %T", name, rec.Column(idx[0]))
		}
		for i := range int(rec.NumRows()) {
			out = append(out, col.Value(i))
		}
	}
	if len(out) != n {
		t.Fatalf("%d values in %s, want %d", len(out), name, n)
	}
	return out
}

// TestResume: a run interrupted after 3 of 8 updates and resumed ends with
// the same adapter, bit for bit, and the same metrics as an uninterrupted
// run, with dropout and margins in play.
func TestResume(t *testing.T) {
	dir := t.TempDir()
	base := worldBaseDir
	var rows []data.Preference
	for i, p := range world.New(4).Preferences(world.Train, 24) {
		rows = append(rows, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected, Margin: data.Float(float64(i%3) / 2)})
	}
	prefs := filepath.Join(dir, "prefs.arrow")
	if err := data.WritePreferences(prefs, rows); err != nil {
		t.Fatal(err)
	}
	config := func(out string) Config {
		cfg := DefaultConfig()
		cfg.Base, cfg.Data, cfg.HeldOut, cfg.Out = base, prefs, 0.25, out
		cfg.BatchSize, cfg.LoRA.Dropout, cfg.Loss.CenterCoefficient = 2, 0.1, 0.01
		cfg.Train.Steps, cfg.Train.GradAccum, cfg.Train.Quiet = 8, 2, true
		cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 1, 4, 0
		return cfg
	}
	straight := config(filepath.Join(dir, "straight"))
	want, err := Run(context.Background(), straight)
	if err != nil {
		t.Fatal(err)
	}
	cut := config(filepath.Join(dir, "cut"))
	_, err = Run(tinymodel.CancelAfterLines{Context: context.Background(), Path: train.MetricsFile(cut.Out), N: 3}, cut)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	st, err := train.LoadState(cut.Out)
	if err != nil || st.Step != 3 {
		t.Fatalf("checkpoint after the interruption: %+v %v", st, err)
	}
	if _, err := Run(context.Background(), cut); err == nil || !strings.Contains(err.Error(), "holds a training checkpoint") {
		t.Errorf("a fresh run over a checkpoint: %v", err)
	}
	cut.Resume = true
	got, err := Run(context.Background(), cut)
	if err != nil {
		t.Fatal(err)
	}
	if got.Eval != want.Eval {
		t.Errorf("resumed eval %+v, uninterrupted %+v", got.Eval, want.Eval)
	}
	a, _ := os.ReadFile(filepath.Join(want.AdapterDir, lora.WeightsFile))
	b, _ := os.ReadFile(filepath.Join(got.AdapterDir, lora.WeightsFile))
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Error("resumed adapter differs from the uninterrupted one")
	}
	// The records agree but for the wall-clock throughput.
	ma, errA := train.ReadMetrics(train.MetricsFile(straight.Out))
	mb, errB := train.ReadMetrics(train.MetricsFile(cut.Out))
	if errA != nil || errB != nil || len(ma) != len(mb) {
		t.Fatalf("%d vs %d metric records (%v, %v)", len(ma), len(mb), errA, errB)
	}
	for i := range ma {
		for k, v := range ma[i] {
			if k != train.KeyTokensPerSec && mb[i][k] != v {
				t.Errorf("record %d, %s: resumed %v, uninterrupted %v", i, k, mb[i][k], v)
			}
		}
	}
}

// TestLossGatherAndGradient checks the training program against the loss
// computed from independently read scores, margins included, and its
// gradient with respect to the score head against central differences.
func TestLossGatherAndGradient(t *testing.T) {
	m, err := finetune.OpenMerged(worldBaseDir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := m.NewAdapter(lora.Config{R: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	m.Extra[finetune.ScoreHead] = newHead(m.Weights.Config.HiddenSize, 0.5, 9)
	enc, _ := finetune.NewSequenceEncoder(m.Tokenizer)
	var batch []Pair
	for i, p := range world.New(5).Preferences(world.Train, 3) {
		pr, err := encodePair(enc, p.Row(), i)
		if err != nil {
			t.Fatal(err)
		}
		pr.Margin = float64(i) * 0.3
		batch = append(batch, pr)
	}
	T := 0
	for _, p := range batch {
		T = max(T, len(p.Chosen), len(p.Rejected))
	}
	lc := LossConfig{CenterCoefficient: 0.05}
	tr, err := newTrainer(m, lc, len(batch), T+3)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := finetune.NewScorer(m, 2, T+1)
	if err != nil {
		t.Fatal(err)
	}
	lossOf := func() float64 {
		met, err := Evaluate(context.Background(), sc, lc, batch, true)
		if err != nil {
			t.Fatal(err)
		}
		return met.Loss
	}
	params := m.Params()
	m.ZeroGrad()
	met, err := tr.step(batch, true)
	if err != nil {
		t.Fatal(err)
	}
	if want := lossOf(); math.Abs(met[train.KeyLoss]-want) > 1e-5 {
		t.Fatalf("training loss %v, from the scorer %v", met[train.KeyLoss], want)
	}
	var head train.Param
	for _, p := range params {
		if p.Name == "extra."+finetune.ScoreHead {
			head = p
		}
	}
	grad := slices.Clone(head.Grad())
	w := model.F32(m.Extra[finetune.ScoreHead])
	for _, i := range []int{0, 7, 33, 63} {
		const eps = 1e-2
		old := w[i]
		w[i] = old + eps
		up := lossOf()
		w[i] = old - eps
		down := lossOf()
		w[i] = old
		fd := (up - down) / (2 * eps)
		if math.Abs(fd-float64(grad[i])) > 2e-3+0.02*math.Abs(fd) {
			t.Errorf("∂L/∂head[%d]: graph %v, central difference %v", i, grad[i], fd)
		}
	}
}

// TestEncoder checks the sequence layout and the conversational form.
func TestEncoder(t *testing.T) {
	m, err := finetune.OpenMerged(worldBaseDir, "")
	if err != nil {
		t.Fatal(err)
	}
	tok := m.Tokenizer
	enc, _ := finetune.NewSequenceEncoder(tok)
	p, err := encodePair(enc, data.Preference{Prompt: "Add 2 and 3.", Chosen: "5", Rejected: "6"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	prompt := tok.Encode("Add 2 and 3.", true)
	if prompt[0] != tok.BOS() || !slices.Equal(p.Chosen, append(append(slices.Clone(prompt), tok.Encode("5", false)...), tok.EOS())) {
		t.Errorf("chosen %v", p.Chosen)
	}
	// Without a chat_template a conversation renders as SFT renders it by
	// default: with the Alpaca template, after BOS.
	msgs := []data.Message{{Role: "user", Content: "Add 2 and 3."}}
	if ids, err := enc.Prompt("", msgs); err != nil || !slices.Equal(ids, tok.Encode(tokenizer.FormatAlpaca("Add 2 and 3.", ""), true)) {
		t.Errorf("conversation without a template: %v, %v", ids, err)
	}
	ids, err := enc.Completion("", msgs, []data.Message{{Role: "assistant", Content: "5"}})
	if err != nil || !slices.Equal(ids, append(tok.Encode("5", false), tok.EOS())) {
		t.Errorf("completion without a template: %v, %v", ids, err)
	}
	tok.ChatTemplate = "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
	enc, err = finetune.NewSequenceEncoder(tok)
	if err != nil {
		t.Fatal(err)
	}
	p, err = encodePair(enc, data.Preference{PromptMessages: msgs,
		ChosenMessages: []data.Message{{Role: "assistant", Content: "5"}}, RejectedMessages: []data.Message{{Role: "assistant", Content: "6"}}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.Token(tok.BOS())
	head := tok.Encode(bos+"<user>Add 2 and 3.<assistant>", false)
	if head[0] != tok.BOS() {
		t.Fatalf("the BOS text in the template did not encode to the BOS token: %v", head)
	}
	want := append(append(head, tok.Encode("5", false)...), tok.EOS())
	if !slices.Equal(p.Chosen, want) {
		t.Errorf("conversational chosen %v (%q), want %v", p.Chosen, tok.Decode(p.Chosen, false), want)
	}
}

// FuzzPairOrderRestore feeds arbitrary checkpoint positions to the pair
// order: it must reject them or keep dealing valid indices.
func FuzzPairOrderRestore(f *testing.F) {
	f.Add([]byte(`{"epoch": 2, "pos": 3}`), 5)
	f.Add([]byte(`{"epoch": 0, "pos": 5}`), 5)
	f.Fuzz(func(t *testing.T, raw []byte, n int) {
		if n < 1 || n > 1000 {
			return
		}
		o := &pairOrder{N: n, Seed: 1}
		if err := o.Restore(raw); err != nil {
			return
		}
		for range 2*n + 1 {
			if i := o.Next(); i < 0 || i >= n {
				t.Fatalf("index %d of %d pairs after restoring %s", i, n, raw)
			}
		}
	})
}

// TestBF16Backbone trains the reward model on a backbone held in bfloat16
// (--base-dtype bfloat16) and in float32: the held-out accuracy and loss
// agree within a rounding difference (stated margins: 0.05 nats of loss,
// two held-out pairs of accuracy), and the bfloat16 run did round (its
// figures are not bit for bit the float32 run's).
func TestBF16Backbone(t *testing.T) {
	dir := t.TempDir()
	rows := world.New(5).Preferences(world.Train, 32).Rows()
	prefs := filepath.Join(dir, "prefs.arrow")
	if err := data.WritePreferences(prefs, rows); err != nil {
		t.Fatal(err)
	}
	run := func(dtype string) Result {
		cfg := DefaultConfig()
		cfg.Base, cfg.Data, cfg.HeldOut, cfg.Out = worldBaseDir, prefs, 0.25, filepath.Join(dir, dtype)
		cfg.BaseDtype, cfg.BatchSize = dtype, 4
		cfg.Train.Steps, cfg.Train.Quiet, cfg.Train.CheckpointEvery = 8, true, 0
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	full, half := run(finetune.BaseFloat32), run(finetune.BaseBFloat16)
	t.Logf("held-out: float32 %+v, bfloat16 %+v", full.Eval, half.Eval)
	if half.Eval == full.Eval {
		t.Error("the bfloat16 run gave exactly the float32 run's figures: was the backbone rounded?")
	}
	if d := math.Abs(half.Eval.Loss - full.Eval.Loss); d > 0.05 {
		t.Errorf("held-out loss %.4f in bfloat16, %.4f in float32", half.Eval.Loss, full.Eval.Loss)
	}
	if d := math.Abs(half.Eval.Accuracy-full.Eval.Accuracy) * float64(full.EvalPairs); d > 2 {
		t.Errorf("held-out accuracy %.3f in bfloat16, %.3f in float32", half.Eval.Accuracy, full.Eval.Accuracy)
	}
}
