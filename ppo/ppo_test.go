package ppo

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	G "gorgonia.org/gorgonia"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/internal/stagetest"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/train"
)

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// TestPPORaisesRewardScore: on the default world, 12 rollouts of 32
// responses (6 new tokens, β = 0.05) raise the reward model's mean score
// and the KL-regularised objective, while the KL to the reference stays
// below 8 nats per response. Measured: scores 1.00, 1.30, 1.07 over the
// first three rollouts, 1.97, 1.89, 1.73 over the last three; KL at most
// 3.4.
func TestPPORaisesRewardScore(t *testing.T) {
	rlhfFixture(t)
	cfg := DefaultConfig()
	cfg.Base, cfg.RewardAdapter, cfg.Prompts, cfg.EvalPrompts = worldBaseDir, fixture.rm, fixture.prompts, fixture.evalPs
	cfg.Out = filepath.Join(t.TempDir(), "ppo")
	cfg.Iterations, cfg.RolloutBatch, cfg.MaxNewTokens, cfg.MissingEOSPenalty = 12, 32, 6, 0
	cfg.Train.LR, cfg.Train.Quiet, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 3e-3, true, 0, 0
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rollouts) != 12 || res.Steps != 48 || res.Prompts != 256 || res.EvalPrompts != 32 {
		t.Fatalf("result %+v", res)
	}
	var scores, objective []float64
	for i, s := range res.Rollouts {
		t.Logf("rollout %2d: score %.3f  KL %.3f  entropy %.2f  objective %.3f", i, s.Scores, s.KL, s.Entropy, s.RLHFReward)
		scores, objective = append(scores, s.Scores), append(objective, s.RLHFReward)
		if s.KL >= 8 {
			t.Errorf("rollout %d: KL %.3f nats, want < 8", i, s.KL)
		}
	}
	if res.Rollouts[0].KL != 0 {
		t.Errorf("the first rollout's policy is the reference, but KL = %v", res.Rollouts[0].KL)
	}
	if first, last := mean(scores[:3]), mean(scores[9:]); last < first+0.4 {
		t.Errorf("mean score %.3f over the first three rollouts, %.3f over the last three: want a rise ≥ 0.4", first, last)
	}
	if first, last := mean(objective[:3]), mean(objective[9:]); last <= first {
		t.Errorf("objective %.3f → %.3f: want a rise", first, last)
	}

	// One log record per rollout with TRL's names, and the held-out one.
	recs, err := train.ReadMetrics(train.MetricsFile(cfg.Out))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 13 {
		t.Fatalf("%d metric records, want 12 + 1", len(recs))
	}
	for i, r := range recs[:12] {
		for _, k := range []string{"objective/kl", "objective/entropy", "objective/rlhf_reward", "objective/scores",
			"objective/non_score_reward", "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg",
			"val/clipfrac_avg", "loss", "learning_rate", "episode"} {
			if _, ok := r[k]; !ok {
				t.Errorf("record %d lacks %s", i, k)
			}
		}
		if r["objective/scores"] != scores[i] || r["episode"] != float64(32*(i+1)) {
			t.Errorf("record %d: scores %v episode %v, want %v %d", i, r["objective/scores"], r["episode"], scores[i], 32*(i+1))
		}
		if c := r["policy/clipfrac_avg"]; c < 0 || c > 1 || r["policy/approxkl_avg"] > 0.5 {
			t.Errorf("record %d: clip fraction %v, approx KL %v", i, c, r["policy/approxkl_avg"])
		}
	}
	if _, ok := recs[12]["eval_objective/scores"]; !ok {
		t.Errorf("last record %v has no held-out score", recs[12])
	}

	// The policy adapter is a plain CAUSAL_LM PEFT adapter; the value head
	// lies beside it.
	pc, err := lora.ReadConfig(res.AdapterDir)
	if err != nil {
		t.Fatal(err)
	}
	if pc.TaskType != "CAUSAL_LM" || len(pc.ModulesToSave) != 0 {
		t.Errorf("adapter config: task_type %q, modules_to_save %v", pc.TaskType, pc.ModulesToSave)
	}
	ts, _, err := safetensors.ReadFile(res.ValueHead)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0].Name != "value.weight" || !slices.Equal(ts[0].Shape, []int{1, 64}) || ts[0].Data[0] == 0 {
		t.Errorf("value head file: %+v", ts)
	}
}

// TestResume: a run interrupted in the middle of a rollout's updates (the
// checkpoint then holds the rollout) and resumed ends with the same policy
// adapter and value head, bit for bit, the same adaptive β and the same
// metrics as an uninterrupted run.
func TestResume(t *testing.T) {
	rlhfFixture(t)
	dir := t.TempDir()
	config := func(out string) Config {
		cfg := DefaultConfig()
		cfg.Base, cfg.RewardAdapter, cfg.Prompts, cfg.EvalPrompts, cfg.EvalMax = worldBaseDir, fixture.rm, fixture.prompts, fixture.evalPs, 4
		cfg.Out = out
		cfg.Iterations, cfg.RolloutBatch, cfg.MiniBatches, cfg.Epochs, cfg.MaxNewTokens = 2, 6, 3, 1, 4
		cfg.AdaptiveKL, cfg.KLTarget, cfg.KLHorizon, cfg.KLEstimator = true, 0.01, 12, K3
		cfg.Train.LR, cfg.Train.Quiet, cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 1e-2, true, 1, 4, 0
		return cfg
	}
	straight := config(filepath.Join(dir, "straight"))
	want, err := Run(context.Background(), straight)
	if err != nil {
		t.Fatal(err)
	}
	if want.KLCoef == straight.KLCoef {
		t.Fatalf("β stayed %v: the adaptive controller is not exercised", want.KLCoef)
	}
	cut := config(filepath.Join(dir, "cut"))
	if _, err := Run(tinymodel.CancelAfterLines{Context: context.Background(), Path: train.MetricsFile(cut.Out), N: 2}, cut); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v", err)
	}
	st, err := train.LoadState(cut.Out)
	if err != nil {
		t.Fatal(err)
	}
	var saved savedState
	if err := json.Unmarshal(st.Data, &saved); err != nil || st.Step != 2 || len(saved.Rollout) == 0 {
		t.Fatalf("checkpoint at update %d, rollout saved: %v (%v)", st.Step, len(saved.Rollout) > 0, err)
	}
	cut.Resume = true
	got, err := Run(context.Background(), cut)
	if err != nil {
		t.Fatal(err)
	}
	if got.KLCoef != want.KLCoef || got.Last != want.Last {
		t.Errorf("resumed: β %v, last rollout %+v; uninterrupted: β %v, %+v", got.KLCoef, got.Last, want.KLCoef, want.Last)
	}
	for _, f := range []string{filepath.Join("adapter", lora.WeightsFile), ValueHeadFile} {
		a, _ := os.ReadFile(filepath.Join(straight.Out, f))
		b, _ := os.ReadFile(filepath.Join(cut.Out, f))
		if len(a) == 0 || !slices.Equal(a, b) {
			t.Errorf("%s differs between the resumed and the uninterrupted run", f)
		}
	}
	// The records agree but for the wall-clock throughput.
	ma, errA := train.ReadMetrics(train.MetricsFile(straight.Out))
	mb, errB := train.ReadMetrics(train.MetricsFile(cut.Out))
	if errA != nil || errB != nil || len(ma) != len(mb) || len(ma) != 8 {
		t.Fatalf("%d vs %d metric records (%v, %v), want 6 + 2", len(ma), len(mb), errA, errB)
	}
	for i := range ma {
		for k, v := range ma[i] {
			if k != train.KeyTokensPerSec && mb[i][k] != v {
				t.Errorf("record %d, %s: resumed %v, uninterrupted %v", i, k, mb[i][k], v)
			}
		}
	}
}

// logSoftmaxAt returns log softmax(logits)[id] and the entropy of the
// distribution, in float64.
func logSoftmaxAt(logits []float32, id int) (float64, float64) {
	lse := tinymodel.LogSumExp(logits)
	var h float64
	for _, v := range logits {
		lp := float64(v) - lse
		h -= math.Exp(lp) * lp
	}
	return float64(logits[id]) - lse, h
}

// TestRolloutLayout checks what the graph passes of a rollout read against
// an independent computation with the generation engine's full logits: each
// response token's log-probability under the policy (adapter on) and the
// reference (adapter off), the entropies, and each value against the value
// head applied to the hidden state before the token.
func TestRolloutLayout(t *testing.T) {
	rlhfFixture(t)
	policy, err := finetune.OpenPolicyBase(worldBaseDir, "")
	if err != nil {
		t.Fatal(err)
	}
	rm := finetune.New(worldBaseDir, policy.Weights, policy.Tokenizer)
	if err := finetune.LoadRewardModel(rm, fixture.rm); err != nil {
		t.Fatal(err)
	}
	if err := policy.NewAdapter(lora.Config{R: 4, Alpha: 8, Targets: []string{"all-linear"}, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for _, m := range policy.Adapter.Modules {
		for i := range model.F32(m.B) {
			model.F32(m.B)[i] = float32(rng.NormFloat64() * 0.05)
		}
	}
	policy.Extra[ValueHeadName] = newHead(policy.Weights.Config.HiddenSize, 0.3, 4)
	cfg := DefaultConfig()
	cfg.RolloutBatch, cfg.MiniBatches, cfg.MaxNewTokens, cfg.Temperature = 4, 2, 5, 1.3
	enc, _ := finetune.NewSequenceEncoder(policy.Tokenizer)
	prompts, _, longest, err := loadPrompts(filePrompts(fixture.evalPs), enc, 100)
	if err != nil {
		t.Fatal(err)
	}
	prompts = prompts[:5] // one more than the forward batch holds twice: a partial group
	T := longest + cfg.MaxNewTokens
	r, err := newRunner(context.Background(), cfg, policy, rm, T)
	if err != nil {
		t.Fatal(err)
	}
	hidden, err := policy.Program("hidden", r.Bm, T, false, func(g *model.Graph, _ map[string]*G.Node) (*G.Node, []*G.Node, error) {
		return nil, []*G.Node{g.Hidden}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.sample(context.Background(), prompts, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := generate.New(policy.Weights, nil)
	if err != nil {
		t.Fatal(err)
	}
	head := model.F32(policy.Extra[ValueHeadName])
	C := len(head)
	var differ bool
	for b, seq := range s.seqs {
		P, n := s.promptLen[b], s.length[b]
		if !slices.Equal(seq[:P], prompts[b]) || n < 1 || n > cfg.MaxNewTokens {
			t.Fatalf("row %d: prompt/response layout %d + %d of %v", b, P, n, seq)
		}
		for _, adapter := range []bool{true, false} {
			if adapter {
				eng.SetAdapter(policy.Adapter)
			} else {
				eng.SetAdapter(nil)
			}
			st := eng.NewState()
			out, err := eng.ForwardAll([]*generate.State{st}, [][]int{seq})
			if err != nil {
				t.Fatal(err)
			}
			V := len(out[0]) / len(seq)
			var ent float64
			for j := range n {
				pos := P - 1 + j
				lp, h := logSoftmaxAt(out[0][pos*V:(pos+1)*V], seq[pos+1])
				got := s.ref[b*r.R+j]
				if adapter {
					got = s.logp[b*r.R+j]
					ent += h
				}
				if math.Abs(got-lp) > 2e-3 {
					t.Errorf("row %d token %d (adapter %v): graph log-prob %.5f, engine %.5f", b, j, adapter, got, lp)
				}
				differ = differ || s.logp[b*r.R+j] != s.ref[b*r.R+j]
			}
			if adapter && math.Abs(ent-s.entropy[b]) > 1e-2*(1+ent) {
				t.Errorf("row %d: entropy %.4f, engine %.4f", b, s.entropy[b], ent)
			}
		}
		// Values: the head on the hidden state before each response token.
		fillRows(r, hidden.Graph.In, [][]int{seq})
		if err := hidden.Run(); err != nil {
			t.Fatal(err)
		}
		h := model.Value32(hidden.Out[0])
		for j := range n {
			pos := P - 1 + j
			var v float64
			for c := range C {
				v += float64(h[pos*C+c]) * float64(head[c])
			}
			if got := s.values[b*r.R+j]; math.Abs(got-v) > 1e-4*(1+math.Abs(v)) {
				t.Errorf("row %d token %d: value %.6f, head·hidden %.6f", b, j, got, v)
			}
		}
	}
	if !differ {
		t.Error("policy and reference log-probabilities are identical: the reference pass kept the adapter")
	}
}

// fillRows writes sequences into the first rows of a (Bm, T) graph.
func fillRows(r *runner, in *model.Inputs, seqs [][]int) {
	for b := range r.Bm {
		finetune.FillRow(in, r.T, b, seqs[min(b, len(seqs)-1)], r.pad)
	}
}

// TestValidate checks that each invalid setting is reported by Validate
// and by Run, naming its key.
func TestValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Base, ok.RewardAdapter, ok.Prompts, ok.Out = "b", "r", "p", "o"
	configtest.Check(t, ok, Config.Validate, configtest.StageRun(Run), []configtest.Case[Config]{
		{Key: KeyBase, Edit: func(c *Config) { c.Base = "" }},
		{Key: KeyBaseDtype, Edit: func(c *Config) { c.BaseDtype = "int8" }},
		{Key: KeyRewardAdapter, Edit: func(c *Config) { c.RewardAdapter = "" }},
		{Key: KeyPrompts, Edit: func(c *Config) { c.Prompts = "" }},
		{Key: KeyOut, Edit: func(c *Config) { c.Out = "" }},
		{Key: KeyIterations, Edit: func(c *Config) { c.Iterations = 0 }},
		{Key: KeyRolloutBatch, Edit: func(c *Config) { c.RolloutBatch = -32 }},
		{Key: KeyRolloutBatch, Edit: func(c *Config) { c.RolloutBatch = 30; c.MiniBatches = 4 }},
		{Key: KeyMiniBatches, Edit: func(c *Config) { c.MiniBatches = 0 }},
		{Key: KeyPPOEpochs, Edit: func(c *Config) { c.Epochs = 0 }},
		{Key: KeyMaxNewTokens, Edit: func(c *Config) { c.MaxNewTokens = 0 }},
		{Key: KeyMaxPromptLength, Edit: func(c *Config) { c.MaxPromptLength = -1 }},
		{Key: KeyEvalMax, Edit: func(c *Config) { c.EvalMax = -1 }},
		{Key: KeyTemperature, Edit: func(c *Config) { c.Temperature = math.NaN() }},
		{Key: KeyTemperature, Edit: func(c *Config) { c.Temperature = -1 }},
		{Key: KeyMissingEOSPenalty, Edit: func(c *Config) { c.MissingEOSPenalty = -1 }},
		{Key: KeyKLEstimator, Edit: func(c *Config) { c.KLEstimator = "k2" }},
		{Key: KeyKLCoef, Edit: func(c *Config) { c.KLCoef = -0.1 }},
		{Key: KeyKLTarget, Edit: func(c *Config) { c.AdaptiveKL, c.KLTarget = true, 0 }},
		{Key: KeyKLHorizon, Edit: func(c *Config) { c.AdaptiveKL, c.KLHorizon = true, 0 }},
		{Key: KeyGamma, Edit: func(c *Config) { c.Gamma = 1.5 }},
		{Key: KeyLam, Edit: func(c *Config) { c.Lambda = 1.5 }},
		{Key: KeyLam, Edit: func(c *Config) { c.Lambda = -0.5 }},
		{Key: KeyClipRange, Edit: func(c *Config) { c.ClipRange = 0 }},
		{Key: KeyClipRangeValue, Edit: func(c *Config) { c.ClipRangeValue = 0 }},
		{Key: KeyVFCoef, Edit: func(c *Config) { c.VFCoef = -1 }},
		{Key: KeyValueHeadStd, Edit: func(c *Config) { c.ValueHeadStd = -1 }},
		{Key: lora.KeyR, Edit: func(c *Config) { c.LoRA.R = 0 }},
		{Key: lora.KeyInit, Edit: func(c *Config) { c.LoRA.Init = "xavier" }},
		{Key: train.KeyGradAccum, Edit: func(c *Config) { c.Train.GradAccum = 0 }},
		{Key: train.KeyPeakLR, Edit: func(c *Config) { c.Train.LR = 0 }},
		{Key: train.KeyLogEvery, Edit: func(c *Config) { c.Train.LogEvery = -1 }},
		{Key: train.KeyWarmup, Edit: func(c *Config) { c.Train.WarmupSteps = -1 }},
	})
	// LogEvery 0 logs once per rollout: the loop gets Epochs × MiniBatches.
	if got := ok.loop(); got.LogEvery != ok.Epochs*ok.MiniBatches || got.Steps != ok.Iterations*ok.Epochs*ok.MiniBatches || got.Dir != ok.Out {
		t.Errorf("loop config: log every %d, %d steps, dir %q", got.LogEvery, got.Steps, got.Dir)
	}
}

// validState is a checkpoint state with a well-formed rollout of two
// sequences for a runner with R = 3, T = 8 and 20 tokens.
func validState() []byte {
	buf := rolloutBuf{Iteration: 1, KLCoef: 0.1, Seqs: [][]int{{1, 2, 3, 4}, {5, 6, 7}}, PromptLen: []int{2, 2}, Lengths: []int{2, 1},
		Logprobs: make([]float64, 6), Values: make([]float64, 6), Advantages: make([]float64, 6), Returns: make([]float64, 6)}
	raw, _ := json.Marshal(buf)
	s, _ := json.Marshal(savedState{KLCoef: 0.2, Rollout: raw})
	return s
}

func fuzzRunner() *runner {
	cfg := DefaultConfig()
	cfg.RolloutBatch = 2
	return &runner{cfg: cfg, R: 3, T: 8, vocab: 20, kl: &AdaptiveKL{Value: 1, Target: 1, Horizon: 1}}
}

func TestRestoreChecks(t *testing.T) {
	r := fuzzRunner()
	if err := r.restore(validState()); err != nil || r.roll == nil || r.kl.Coef() != 0.2 {
		t.Fatalf("valid state: %v, rollout %v, β %v", err, r.roll != nil, r.kl.Coef())
	}
	for _, bad := range []string{
		`{"kl_coef": -1}`,
		`{"kl_coef": 0.1, "rollout": {"iteration": 0, "seqs": [[1, 2]], "prompt_len": [1], "lengths": [1]}}`,
		strings.Replace(string(validState()), `"lengths":[2,1]`, `"lengths":[2,4]`, 1),
		strings.Replace(string(validState()), `[5,6,7]`, `[5,6,70]`, 1),
		strings.Replace(string(validState()), `"prompt_len":[2,2]`, `"prompt_len":[2,0]`, 1),
	} {
		if err := fuzzRunner().restore(json.RawMessage(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

// FuzzRestore feeds arbitrary checkpoint states to restore: it must reject
// them or leave a rollout every update can index safely.
func FuzzRestore(f *testing.F) {
	f.Add(validState())
	f.Add([]byte(`{"kl_coef": 0}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		r := fuzzRunner()
		if err := r.restore(raw); err != nil || r.roll == nil {
			return
		}
		b := r.roll
		if len(b.Seqs) != r.cfg.RolloutBatch || len(b.Logprobs) != r.cfg.RolloutBatch*r.R {
			t.Fatalf("accepted a rollout of %d rows and %d log-probs", len(b.Seqs), len(b.Logprobs))
		}
		for i, seq := range b.Seqs {
			// update reads graph positions P−1 … P+n−2 of a row of T.
			p, n := b.PromptLen[i], b.Lengths[i]
			if p < 1 || n < 1 || n > r.R || p+n-2 >= r.T || p+n != len(seq) {
				t.Fatalf("accepted row %d: prompt %d, response %d, %d tokens, T = %d", i, p, n, len(seq), r.T)
			}
		}
	})
}

// TestPromptsInMemory runs PPO on prompts given in memory and on the same
// prompts in datasets: the rollouts and the held-out evaluation agree.
func TestPromptsInMemory(t *testing.T) {
	rlhfFixture(t)
	w := world.New(2)
	dir := t.TempDir()
	trainRows, evalRows := w.Prompts(world.Train, 12).Rows(), w.Prompts(world.Valid, 4).Rows()
	trainPath, evalPath := filepath.Join(dir, "prompts.arrow"), filepath.Join(dir, "eval.arrow")
	if err := data.WritePrompts(trainPath, trainRows); err != nil {
		t.Fatal(err)
	}
	if err := data.WritePrompts(evalPath, evalRows); err != nil {
		t.Fatal(err)
	}
	run := func(name string, edit func(*Config)) Result {
		cfg := DefaultConfig()
		cfg.Base, cfg.RewardAdapter, cfg.Out = worldBaseDir, fixture.rm, filepath.Join(dir, name)
		cfg.Iterations, cfg.RolloutBatch, cfg.MaxNewTokens = 1, 4, 3
		cfg.Train.Quiet, cfg.Train.CheckpointEvery = true, 0
		edit(&cfg)
		res, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	mem := run("memory", func(c *Config) { c.PromptRows, c.EvalPromptRows = trainRows, evalRows })
	files := run("files", func(c *Config) { c.Prompts, c.EvalPrompts = trainPath, evalPath })
	if mem.Prompts != 12 || mem.EvalPrompts != 4 {
		t.Errorf("in memory: %d prompts, %d held out; want 12 and 4", mem.Prompts, mem.EvalPrompts)
	}
	if mem.Last != files.Last || len(mem.Eval) == 0 || !maps.Equal(mem.Eval, files.Eval) {
		t.Errorf("in memory: rollout %+v, eval %v; from files: %+v, %v", mem.Last, mem.Eval, files.Last, files.Eval)
	}
}

// TestBF16Base runs one rollout (one epoch of two minibatches) with the
// base held in bfloat16 and in float32. On a base whose matrices are
// already bfloat16 values the two runs sample the same responses (the
// decoding engine reads bfloat16 exactly) and log the same figures but
// for the order of sums; on the base as trained the bfloat16 run logs
// other figures (the base was rounded).
func TestBF16Base(t *testing.T) {
	rlhfFixture(t)
	run := func(base, dtype string) []map[string]float64 {
		cfg := DefaultConfig()
		cfg.Base, cfg.BaseDtype, cfg.RewardAdapter, cfg.Prompts = base, dtype, fixture.rm, fixture.prompts
		cfg.Out = filepath.Join(t.TempDir(), "ppo")
		cfg.Iterations, cfg.RolloutBatch, cfg.Epochs, cfg.MaxNewTokens = 1, 8, 1, 4
		cfg.Train.Quiet, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = true, 0, 0
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		recs, err := train.ReadMetrics(train.MetricsFile(cfg.Out))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 {
			t.Fatalf("%d metric records, want 1", len(recs))
		}
		return recs
	}
	rounded := stagetest.RoundedBase(t, worldBaseDir)
	full, half := run(rounded, finetune.BaseFloat32), run(rounded, finetune.BaseBFloat16)
	keys := []string{"objective/scores", "objective/kl", "objective/entropy", "loss/policy_avg", "loss/value_avg", "loss"}
	for _, k := range keys {
		a, ok := full[0][k]
		if !ok {
			t.Fatalf("no %s in %v", k, full[0])
		}
		if b := half[0][k]; math.Abs(a-b) > 1e-4*(1+math.Abs(a)) {
			t.Errorf("%s: float32 %.7g, bfloat16 %.7g", k, a, b)
		}
	}
	rawFull, rawHalf := run(worldBaseDir, finetune.BaseFloat32), run(worldBaseDir, finetune.BaseBFloat16)
	if rawFull[0]["objective/scores"] == rawHalf[0]["objective/scores"] && rawFull[0]["loss"] == rawHalf[0]["loss"] {
		t.Error("on the unrounded base the bfloat16 run logged exactly the float32 run's score and loss: was the base held in bfloat16?")
	}
}
