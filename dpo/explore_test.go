package dpo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gotune/gotune/lora"
)

func envs(k, d string) []float64 {
	v := os.Getenv(k)
	if v == "" {
		v = d
	}
	var out []float64
	for _, s := range strings.Split(v, ",") {
		f, _ := strconv.ParseFloat(s, 64)
		out = append(out, f)
	}
	return out
}

func TestExplore(t *testing.T) {
	base := microBase(t, 1)
	for _, seed := range envs("SEEDS", "1,2,3") {
		for _, lr := range envs("LRS", "3e-3") {
			for _, beta := range envs("BETAS", "0.1") {
				cfg := testConfig(base, filepath.Join(t.TempDir(), "out"))
				cfg.WorldSeed = int64(seed)
				cfg.WorldPairs, cfg.WorldEvalPairs = 1000, int(envs("NE", "96")[0])
				cfg.Pairs = int(envs("P", "8")[0])
				cfg.LoRA = lora.Config{R: 8, Alpha: 16, Targets: []string{"all-linear"}, Seed: 1}
				cfg.Train.Steps, cfg.Train.LR, cfg.Train.WarmupSteps = int(envs("STEPS", "100")[0]), lr, 5
				cfg.Loss.Beta = beta
				cfg.Train.LogEvery, cfg.Train.EvalEvery = 50, 1000
				res, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				ev := res.Eval
				fmt.Printf("seed %v lr %v beta %v: acc %.3f margin %.4f loss %.4f pol %.3f ref %.3f\n", seed, lr, beta, ev.Metrics.RewardsAccuracies, ev.Metrics.RewardsMargins, ev.Metrics.Loss, ev.PolicyPrefersChosen, ev.ReferencePrefersChosen)
			}
		}
	}
}
