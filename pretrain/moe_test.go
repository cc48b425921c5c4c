package pretrain

import (
	"context"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// deepseekMicro is microModel as a DeepSeek-V2 model: latent attention, a
// dense first layer, then a MoE of 4 experts (top 2) and a shared one.
func deepseekMicro() *model.Config {
	c := microModel()
	c.Architectures, c.ModelType, c.NumKeyValueHeads, c.TieWordEmbeddings = []string{"DeepseekV2ForCausalLM"}, "deepseek_v2", 0, false
	c.DeepSeek = &model.DeepSeek{KVLoraRank: 16, QKNopeHeadDim: 8, QKRopeHeadDim: 8, VHeadDim: 16,
		NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 32,
		FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: model.ScoringSoftmax, TopkMethod: model.TopkGreedy,
		RoutedScalingFactor: 1}
	return c
}

// Pretraining a DeepSeek model logs the MoE layer's expert load at every
// logged update and, with moe-aux-loss-alpha > 0, the balance term inside
// the loss; a dense model refuses a positive weight, naming the key.
func TestPretrainMoEMetrics(t *testing.T) {
	docs := syntheticCorpus(200, 1)
	run := func(name string, c *model.Config, alpha float64) ([]map[string]float64, error) {
		cfg := microConfig(filepath.Join(t.TempDir(), name), docs)
		cfg.Model = c
		cfg.Train.Steps, cfg.Train.LogEvery, cfg.Train.WarmupSteps = 2, 1, 0
		cfg.Train.MoEAuxLossAlpha = alpha
		if _, err := Run(context.Background(), cfg); err != nil {
			return nil, err
		}
		return train.ReadMetrics(train.MetricsFile(cfg.Out))
	}
	off, err := run("off", deepseekMicro(), 0)
	if err != nil {
		t.Fatal(err)
	}
	on, err := run("on", deepseekMicro(), 0.1)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range append(off, on...) {
		if _, trained := r[train.KeyLoss]; !trained {
			continue // the held-out evaluation's record
		}
		if _, ok := r[finetune.MetricLoadCV(1)]; !ok {
			t.Errorf("step %v lacks %s", r[train.KeyStep], finetune.MetricLoadCV(1))
		}
		if _, ok := r[finetune.MetricLoadCV(0)]; ok {
			t.Errorf("step %v logs the dense layer 0's load", r[train.KeyStep])
		}
	}
	aux := on[0][finetune.MetricMoEAuxLoss]
	if !(aux > 0) || math.Abs(on[0][train.KeyLoss]-off[0][train.KeyLoss]-aux) > 1e-9 {
		t.Errorf("first update: loss %v with the term %v, %v without", on[0][train.KeyLoss], aux, off[0][train.KeyLoss])
	}
	if _, err := run("dense", microModel(), 0.1); err == nil || !strings.Contains(err.Error(), train.KeyMoEAuxLossAlpha) {
		t.Errorf("alpha 0.1 on a dense model: %v, want an error naming %s", err, train.KeyMoEAuxLossAlpha)
	}
}
