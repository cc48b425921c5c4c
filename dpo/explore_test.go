package dpo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/world"
)

func env(k string, d float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(k), 64); err == nil {
		return v
	}
	return d
}

func compactPrefs(t testing.TB, split world.Split, n int) string {
	var rows []data.Preference
	for _, tk := range world.New(3).Tasks(split, n) {
		p := tk.Instruction + "\n"
		if tk.Input != "" {
			p += tk.Input + "\n"
		}
		rows = append(rows, data.Preference{Prompt: p, Chosen: tk.Answer, Rejected: tk.Wrong})
	}
	path := filepath.Join(t.TempDir(), split.String()+".arrow")
	if err := data.WritePreferences(path, rows); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestExplore(t *testing.T) {
	base := microBase(t, 1)
	cfg := testConfig(base, filepath.Join(t.TempDir(), "out"))
	cfg.Data, cfg.EvalData = compactPrefs(t, world.Train, 2000), compactPrefs(t, world.Valid, 96)
	cfg.Buckets, cfg.MaxLen = []int{32, 48}, 48
	cfg.Pairs = int(env("P", 8))
	cfg.Train.Steps, cfg.Train.LR, cfg.Train.WarmupSteps = int(env("STEPS", 100)), env("LR", 1e-2), 5
	cfg.Loss.Beta = env("BETA", 0.1)
	if os.Getenv("ALL") != "" {
		cfg.LoRA.Targets = []string{"all-linear"}
	}
	cfg.LoRA.R, cfg.LoRA.Alpha = int(env("R", 8)), env("ALPHA", 16)
	cfg.Train.EvalEvery, cfg.Train.LogEvery = int(env("EE", 1000)), 25
	t0 := time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%v %+v\n", time.Since(t0), res.Eval)
	for _, m := range readMetrics(t, cfg.Out) {
		fmt.Printf("%v %v %v %v\n", m["step"], m["loss"], m["rewards/accuracies"], m["eval_rewards/accuracies"])
	}
}
