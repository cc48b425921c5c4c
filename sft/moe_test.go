package sft

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/train"
)

// moeConfig is a three-update SFT run on world rows, without held-out
// rows, of the base in dir.
func moeConfig(base, out string, alpha float64) Config {
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = base, out
	cfg.EvalMax, cfg.EvalFraction = 0, 0
	useWorld(&cfg, 24)
	cfg.BatchSize = 4
	cfg.Train.Steps, cfg.Train.LogEvery, cfg.Train.Quiet = 3, 1, true
	cfg.Train.MoEAuxLossAlpha = alpha
	cfg.LoRA.Targets = []string{"all-linear"}
	return cfg
}

func runMetrics(t *testing.T, cfg Config) []map[string]float64 {
	t.Helper()
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	recs, err := train.ReadMetrics(train.MetricsFile(cfg.Out))
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != cfg.Train.Steps {
		t.Fatalf("%d records, want %d", len(recs), cfg.Train.Steps)
	}
	return recs
}

// SFT of a DeepSeek model logs every MoE layer's expert load at every
// update; with moe-aux-loss-alpha > 0 the first update's loss (same
// weights, same batch) exceeds the alpha = 0 run's by exactly the logged
// balance term. A dense model logs no MoE metric and refuses the setting.
func TestSFTLogsExpertLoad(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "deepseek")
	w, tok := tinymodel.DeepSeek(t, true, 3, 256, pretrain.Specials...)
	if err := hf.SaveModel(base, w, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(base); err != nil {
		t.Fatal(err)
	}
	off := runMetrics(t, moeConfig(base, filepath.Join(root, "off"), 0))
	on := runMetrics(t, moeConfig(base, filepath.Join(root, "on"), 0.5))
	for _, recs := range [][]map[string]float64{off, on} {
		for _, r := range recs {
			for l := range w.Config.NumHiddenLayers {
				_, cv := r[finetune.MetricLoadCV(l)]
				_, mx := r[finetune.MetricLoadMax(l)]
				if cv != w.Config.IsMoELayer(l) || mx != w.Config.IsMoELayer(l) {
					t.Errorf("step %v: layer %d (MoE %v) logs CV %v, max %v", r[train.KeyStep], l, w.Config.IsMoELayer(l), cv, mx)
				}
			}
		}
	}
	if _, ok := off[0][finetune.MetricMoEAuxLoss]; ok {
		t.Errorf("alpha 0 logged %s", finetune.MetricMoEAuxLoss)
	}
	aux, ok := on[0][finetune.MetricMoEAuxLoss]
	if !ok || !(aux > 0) {
		t.Fatalf("alpha 0.5: %s = %v (%v)", finetune.MetricMoEAuxLoss, aux, ok)
	}
	if d := on[0][train.KeyLoss] - off[0][train.KeyLoss]; math.Abs(d-aux) > 1e-9 {
		t.Errorf("loss with the balance term %v − without %v = %v, want the term %v", on[0][train.KeyLoss], off[0][train.KeyLoss], d, aux)
	}
	if on[0][finetune.MetricLoadCV(1)] != off[0][finetune.MetricLoadCV(1)] {
		t.Errorf("the first update's routing differs: CV %v vs %v", on[0][finetune.MetricLoadCV(1)], off[0][finetune.MetricLoadCV(1)])
	}
	if on[0][train.KeyGradNorm] == off[0][train.KeyGradNorm] {
		t.Error("the balance term left the gradient unchanged")
	}

	dense := filepath.Join(root, "dense")
	writeBase(t, dense)
	for _, r := range runMetrics(t, moeConfig(dense, filepath.Join(root, "dense-out"), 0)) {
		for k := range r {
			if strings.HasPrefix(k, "moe/") {
				t.Errorf("a dense model logged %s", k)
			}
		}
	}
	_, err := Run(context.Background(), moeConfig(dense, filepath.Join(root, "dense-alpha"), 0.1))
	if err == nil || !strings.Contains(err.Error(), train.KeyMoEAuxLossAlpha) {
		t.Errorf("alpha 0.1 on a dense model: %v, want an error naming %s", err, train.KeyMoEAuxLossAlpha)
	}
}
