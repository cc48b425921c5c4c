package dpo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotune/gotune/checkpoints"
	"github.com/gotune/gotune/generate"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/world"
)

func exactMatch(t *testing.T, base string, adapters []string, tasks []world.Task) float64 {
	w, err := checkpoints.LoadModel(base)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range adapters {
		a, _, _, err := lora.Load(dir, w)
		if err != nil {
			t.Fatal(err)
		}
		a.Merge(w)
	}
	e, err := generate.New(w, tok)
	if err != nil {
		t.Fatal(err)
	}
	reqs := make([]generate.Request, len(tasks))
	for i, tk := range tasks {
		reqs[i] = generate.Request{Prompt: tok.EncodePromptCompletion(tk.Prompt(), "", true, false).IDs, Options: generate.Options{MaxTokens: 24, Stop: []string{"\n"}}}
	}
	var answers []string
	for i := 0; i < len(reqs); i += 16 {
		res, err := e.Generate(context.Background(), reqs[i:min(i+16, len(reqs))])
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res {
			answers = append(answers, r.Text)
		}
	}
	acc, _ := world.Score(tasks, answers)
	return acc.Rate()
}

func TestTune(t *testing.T) {
	dir := os.Getenv("DPO_TUNE")
	if dir == "" {
		t.Skip("no DPO_TUNE")
	}
	tasks := world.New(1).Tasks(world.Test, 300)
	if os.Getenv("SFTSCORE") != "" {
		fmt.Printf("sft exact match %.3f\n", exactMatch(t, filepath.Join(dir, "base"), []string{filepath.Join(dir, "sft/adapter")}, tasks))
	}
	cfg := DefaultConfig()
	cfg.Base, cfg.SFTAdapter = filepath.Join(dir, "base"), filepath.Join(dir, "sft/adapter")
	cfg.Out = filepath.Join(t.TempDir(), "dpo")
	cfg.WorldPairs, cfg.WorldEvalPairs = 1500, 200
	cfg.Train.Steps, cfg.Train.WarmupSteps, cfg.Train.EvalEvery, cfg.Train.LogEvery = 120, 6, 24, 12
	cfg.Train.Quiet = true
	cfg.Train.LR = envs("LR", "2e-4")[0]
	cfg.Pairs = int(envs("P", "4")[0])
	cfg.Loss.Beta = envs("BETA", "0.1")[0]
	cfg.Loss.SFTWeight = envs("RPO", "0")[0]
	if os.Getenv("ALL") != "" {
		cfg.LoRA.Targets = []string{"all-linear"}
	}
	t0 := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ev := res.Eval
	fmt.Printf("%v: acc %.3f margin %.3f loss %.4f logps %.3f/%.3f pol %.3f ref %.3f\n", time.Since(t0), ev.Metrics.RewardsAccuracies, ev.Metrics.RewardsMargins, ev.Metrics.Loss, ev.Metrics.LogpsChosen, ev.Metrics.LogpsRejected, ev.PolicyPrefersChosen, ev.ReferencePrefersChosen)
	for _, m := range readMetrics(t, cfg.Out) {
		if v, ok := m["eval_rewards/accuracies"]; ok {
			fmt.Printf("  step %v eval acc %.3f margin %.3f chosen %.3f rejected %.3f\n", m["step"], v, m["eval_rewards/margins"], m["eval_rewards/chosen"], m["eval_rewards/rejected"])
		}
	}
	fmt.Printf("dpo exact match %.3f\n", exactMatch(t, filepath.Join(cfg.Out, "base"), []string{res.AdapterDir}, tasks))
}
