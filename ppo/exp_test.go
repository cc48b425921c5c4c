package ppo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var rmSteps = 40

func TestExperiment(t *testing.T) {
	if v := os.Getenv("HS"); v != "" { fmt.Sscan(v, &headScale) }
	t0 := time.Now()
	f := newFixture(t, rmSteps)
	fmt.Println("fixture", time.Since(t0))
	cfg := DefaultConfig()
	cfg.Base, cfg.RewardAdapter, cfg.Prompts, cfg.EvalPrompts, cfg.Out = f.base, f.rm, f.prompts, f.evalPrompts, filepath.Join(f.dir, "ppo")
	cfg.Iterations, cfg.RolloutBatch, cfg.MaxNewTokens, cfg.MissingEOSPenalty = 15, 16, 6, 0
	cfg.Train.Quiet = true
	if v := os.Getenv("RB"); v != "" { fmt.Sscan(v, &cfg.RolloutBatch) }
	if v := os.Getenv("EP"); v != "" { fmt.Sscan(v, &cfg.Epochs) }
	if v := os.Getenv("RMS"); v != "" { fmt.Sscan(v, &rmSteps) }
	if v := os.Getenv("BETA"); v != "" { fmt.Sscan(v, &cfg.KLCoef) }
	if v := os.Getenv("HS"); v != "" { fmt.Sscan(v, &headScale) }
	if v := os.Getenv("LR"); v != "" { fmt.Sscan(v, &cfg.Train.LR) }
	if v := os.Getenv("IT"); v != "" { fmt.Sscan(v, &cfg.Iterations) }
	cfg.Train.EvalEvery = 20
	t0 = time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("run", time.Since(t0), res.SeqLen, res.Steps, res.KLCoef, res.Eval)
	for i, s := range res.Rollouts {
		fmt.Printf("%d scores %.3f kl %.3f ent %.2f rlhf %.3f\n", i, s.Scores, s.KL, s.Entropy, s.RLHFReward)
	}
	b, _ := os.ReadFile(filepath.Join(cfg.Out, "metrics.jsonl"))
	_ = b
}
