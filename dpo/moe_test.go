package dpo

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// DPO of a DeepSeek model logs its MoE layer's expert load at every
// update and, with moe-aux-loss-alpha > 0, adds the balance term to the
// first update's loss (same weights, same pairs) and logs it.
func TestDPOLogsExpertLoad(t *testing.T) {
	tok := microTokenizer(t)
	c := microConfig(tok.VocabSize())
	c.Architectures, c.ModelType, c.NumKeyValueHeads, c.TieWordEmbeddings = []string{"DeepseekV2ForCausalLM"}, "deepseek_v2", 0, false
	c.DeepSeek = &model.DeepSeek{KVLoraRank: 16, QKNopeHeadDim: 8, QKRopeHeadDim: 8, VHeadDim: 16,
		NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 32,
		FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: model.ScoringSoftmax, TopkMethod: model.TopkGreedy,
		RoutedScalingFactor: 1}
	w, err := model.NewRandom(c, 2)
	if err != nil {
		t.Fatal(err)
	}
	base := saveBase(t, w, tok)
	run := func(name string, alpha float64) []map[string]float64 {
		cfg := testConfig(base, filepath.Join(t.TempDir(), name))
		cfg.Train.Steps, cfg.Train.MoEAuxLossAlpha = 2, alpha
		cfg.LoRA.Targets = []string{"all-linear"}
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		recs, err := train.ReadMetrics(train.MetricsFile(cfg.Out))
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	off, on := run("off", 0), run("on", 0.1)
	for _, r := range append(off, on...) {
		if _, ok := r["loss"]; !ok {
			continue
		}
		if _, ok := r[finetune.MetricLoadCV(1)]; !ok {
			t.Errorf("an update lacks %s: %v", finetune.MetricLoadCV(1), r)
		}
		if _, ok := r[finetune.MetricLoadMax(0)]; ok {
			t.Errorf("the dense layer 0 logs a load: %v", r)
		}
	}
	aux := on[0][finetune.MetricMoEAuxLoss]
	if !(aux > 0) || math.Abs(on[0]["loss"]-off[0]["loss"]-aux) > 1e-9 {
		t.Errorf("first update: loss %v with the term %v, %v without", on[0]["loss"], aux, off[0]["loss"])
	}
}
