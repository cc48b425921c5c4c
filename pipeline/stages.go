package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/eval"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/onpolicy"
)

// FileEval is the eval stage's result file.
const FileEval = "eval.json"

// Files of the pairs stage, under <run>/pairs: the preference dataset and
// its onpolicy.Report as JSON.
const (
	FileMinedPairs  = "preferences.arrow"
	FilePairsReport = "report.json"
)

// runPairs mines preference pairs from the SFT model's own answers
// (package onpolicy): for every training pair's task it samples answers,
// checks them with the world's checker, and pairs the correct answer with
// the model's most frequent wrong one. Tasks the model always answered
// right keep the world's plausible wrong answer. Reward modelling and DPO
// train on the result, so they learn from the mistakes the SFT model makes.
func (d *Default) runPairs(ctx context.Context, _ bool) error {
	w, tok, err := eval.LoadModel(d.BaseDir, d.adapterDir("sft"))
	if err != nil {
		return err
	}
	engine, err := generate.New(w, tok)
	if err != nil {
		return err
	}
	prefs := world.New(d.Sizes.WorldSeed).Preferences(world.Train, d.Sizes.Pairs)
	tasks := make([]onpolicy.Task, len(prefs))
	for i, p := range prefs {
		task := p.Task
		tasks[i] = onpolicy.Task{Prompt: p.Prompt, Answer: p.Chosen, Correct: func(a string) bool { return world.Check(task, a) }}
	}
	cfg := onpolicy.DefaultConfig()
	cfg.Samples, cfg.MaxTokens, cfg.Stop, cfg.Seed = d.Sizes.PairSamples, evalMaxTokens, []string{"\n"}, uint64(d.Sizes.WorldSeed)
	cfg.Encode = func(p string) []int { return tok.EncodePromptCompletion(p, "", true, false).IDs }
	mined, index, rep, err := onpolicy.Mine(ctx, engine, tasks, cfg)
	if err != nil {
		return err
	}
	d.logf("  pairs: %s", rep)
	rows := prefs.Rows()
	for k, i := range index {
		rows[i] = mined[k]
	}
	if err := data.WritePreferences(d.minedPairs(), rows); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(d.stageDir("pairs"), FilePairsReport), append(raw, '\n'))
}

// evalMaxTokens bounds the answers of the eval and pairs stages: the
// world's answers are a few tokens long.
const evalMaxTokens = 24

// familyLine formats per-family accuracies in the world's family order.
func familyLine(fams map[string]eval.FamilyScore) string {
	var b strings.Builder
	for _, f := range world.Families() {
		c, ok := fams[string(f)]
		if !ok {
			continue
		}
		fmt.Fprintf(&b, " %s %d/%d", f, c.Correct, c.Total)
	}
	return b.String()
}

// runEval scores the base, SFT, DPO, PPO and GRPO models by exact match on the
// world's Test split, decoding greedily.
func (d *Default) runEval(ctx context.Context, _ bool) error {
	tasks := evalTasks(world.New(d.Sizes.WorldSeed).Tasks(world.Test, d.Sizes.EvalTasks))
	sftAdapter := d.adapterDir("sft")
	variants := []struct {
		name     string
		adapters []string // merged in order; the last is merged too
	}{
		{"base", nil},
		{"sft", []string{sftAdapter}},
		{"dpo", []string{sftAdapter, d.adapterDir("dpo")}},
		{"ppo", []string{sftAdapter, d.adapterDir("ppo")}},
		{"grpo", []string{sftAdapter, d.adapterDir("grpo")}},
	}
	for _, arm := range seedArms {
		variants = append(variants, struct {
			name     string
			adapters []string
		}{arm.model, []string{d.seedAdapter(arm.model)}})
	}
	cfg := eval.MatchConfig{MaxTokens: evalMaxTokens, Stop: []string{"\n"}, Samples: EvalSamples, Temperature: EvalTemperature,
		Seed: uint64(d.Sizes.WorldSeed), Batch: 32}
	var scores []eval.Score
	for _, v := range variants {
		s, err := eval.ScoreModel(ctx, d.BaseDir, v.adapters, tasks, cfg)
		if err != nil {
			return fmt.Errorf("eval %s: %w", v.name, err)
		}
		s.Model = v.name
		d.logf("  eval: %-4s exact match greedy %.3f (%s), sampled %.3f (%s)", v.name,
			s.Accuracy, strings.TrimSpace(familyLine(s.Families)), s.Sampled.Accuracy, strings.TrimSpace(familyLine(s.Sampled.Families)))
		scores = append(scores, s)
	}
	raw, err := json.MarshalIndent(scores, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(d.stageDir("eval"), FileEval), append(raw, '\n'))
}

// Sampled evaluation: EvalSamples answers per task at EvalTemperature, the
// temperature PPO's rollouts use. Greedy decoding shows the single most
// likely answer; the sampled score also shows how much probability a model
// puts on the right answer, which is what preference training moves first.
const (
	EvalSamples     = 4
	EvalTemperature = 1.0
)

// evalTasks are the world's tasks as eval scores them: by exact match of
// the answer, grouped by family.
func evalTasks(tasks []world.Task) []eval.Task {
	out := make([]eval.Task, len(tasks))
	for i, t := range tasks {
		out[i] = eval.Task{Prompt: t.Prompt(), Answer: t.Answer, Family: string(t.Family)}
	}
	return out
}
