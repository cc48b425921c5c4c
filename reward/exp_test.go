package reward

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotune/gotune/world"
)

func TestExperiment(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now()
	worldBase(t, filepath.Join(dir, "base"), 1)
	fmt.Println("fixture", time.Since(t0))
	worldPreferences(t, filepath.Join(dir, "train.arrow"), world.Train, 2000)
	worldPreferences(t, filepath.Join(dir, "valid.arrow"), world.Valid, 200)
	cfg := DefaultConfig()
	cfg.Base, cfg.Data, cfg.EvalData, cfg.Out = filepath.Join(dir, "base"), filepath.Join(dir, "train.arrow"), filepath.Join(dir, "valid.arrow"), filepath.Join(dir, "rm")
	cfg.Train.Steps, cfg.Train.EvalEvery, cfg.Train.Quiet = 200, 25, true
	cfg.Train.LR = 2e-3
	t0 = time.Now()
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("run", time.Since(t0), res)
	b, _ := os.ReadFile(filepath.Join(dir, "rm", "metrics.jsonl"))
	fmt.Println(string(b))
}
