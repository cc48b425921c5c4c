package reward

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// A reward model on a DeepSeek base logs its MoE layer's expert load at
// every update and, with moe-aux-loss-alpha > 0, adds the balance term to
// the first update's loss (same weights, same pairs) and logs it.
func TestRewardLogsExpertLoad(t *testing.T) {
	dir := t.TempDir()
	tok, err := tokenizer.Load(worldBaseDir)
	if err != nil {
		t.Fatal(err)
	}
	c := model.Config{Architectures: []string{"DeepseekV2ForCausalLM"}, ModelType: "deepseek_v2", HiddenSize: 32,
		IntermediateSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 2, VocabSize: tok.VocabSize(),
		MaxPositionEmbeddings: 256, RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 10000,
		DeepSeek: &model.DeepSeek{KVLoraRank: 16, QKNopeHeadDim: 8, QKRopeHeadDim: 8, VHeadDim: 16,
			NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 32,
			FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: model.ScoringSoftmax, TopkMethod: model.TopkGreedy,
			RoutedScalingFactor: 1}}
	w, err := model.NewRandom(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "base")
	if err := hf.SaveModel(base, w, hf.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(base); err != nil {
		t.Fatal(err)
	}
	var rows []data.Preference
	for _, p := range world.New(4).Preferences(world.Train, 16) {
		rows = append(rows, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected})
	}
	prefs := filepath.Join(dir, "prefs.arrow")
	if err := data.WritePreferences(prefs, rows); err != nil {
		t.Fatal(err)
	}
	run := func(name string, alpha float64) []map[string]float64 {
		cfg := DefaultConfig()
		cfg.Base, cfg.Data, cfg.HeldOut, cfg.Out = base, prefs, 0, filepath.Join(dir, name)
		cfg.BatchSize, cfg.LoRA.Targets = 2, []string{"all-linear"}
		cfg.Train.Steps, cfg.Train.LogEvery, cfg.Train.Quiet, cfg.Train.MoEAuxLossAlpha = 2, 1, true, alpha
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
	}
	aux := on[0][finetune.MetricMoEAuxLoss]
	if !(aux > 0) || math.Abs(on[0]["loss"]-off[0]["loss"]-aux) > 1e-9 {
		t.Errorf("first update: loss %v with the term %v, %v without", on[0]["loss"], aux, off[0]["loss"])
	}
}
