package dpo

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/internal/stagetest"
	"github.com/gotune/gotune/model"
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
	stagetest.CheckExpertLogging(t, func(name string, alpha float64) string {
		cfg := testConfig(base, filepath.Join(t.TempDir(), name))
		cfg.Train.Steps, cfg.Train.MoEAuxLossAlpha = 2, alpha
		cfg.LoRA.Targets = []string{"all-linear"}
		if _, err := Run(context.Background(), cfg); err != nil {
			t.Fatal(err)
		}
		return cfg.Out
	}, 1, 0, 1e-9)
}
