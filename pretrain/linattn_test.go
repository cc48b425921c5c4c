package pretrain

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/model/hf"
)

// --attention linear and gau pretrain the preset with that attention: the
// written config.json carries gotune_attention (and GAU's parameters), the
// model loads back, the held-out loss falls below a random model's, and
// the parameter count is the softmax preset's within 1%.
func TestPretrainAttentionOption(t *testing.T) {
	docs := syntheticCorpus(400, 2)
	for _, att := range []string{model.AttentionLinear, model.AttentionGAU} {
		t.Run(att, func(t *testing.T) {
			cfg := microConfig(filepath.Join(t.TempDir(), att), docs)
			cfg.Model, cfg.Preset, cfg.Attention = nil, "tiny", att
			cfg.BatchSize, cfg.Train.Steps, cfg.Train.WarmupSteps = 4, 30, 3
			if att == model.AttentionGAU {
				cfg.GAUChunk = 8 // the 32-token windows span four chunks
			}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			w, err := hf.LoadModel(cfg.Out)
			if err != nil {
				t.Fatal(err)
			}
			if w.Config.Attention != att || w.Config.GAUChunk != cfg.GAUChunk {
				t.Fatalf("config.json says gotune_attention %q, chunk %d", w.Config.Attention, w.Config.GAUChunk)
			}
			soft, err := model.Preset("tiny", w.Config.VocabSize)
			if err != nil {
				t.Fatal(err)
			}
			sw, err := model.NewRandom(soft, 1)
			if err != nil {
				t.Fatal(err)
			}
			if d := math.Abs(float64(w.NumParams()-sw.NumParams())) / float64(sw.NumParams()); d > 0.01 {
				t.Errorf("%d parameters, softmax preset %d", w.NumParams(), sw.NumParams())
			}
			if !(res.EvalLoss < math.Log(float64(w.Config.VocabSize))-0.5) {
				t.Errorf("held-out loss %.3f after %d updates (ln V = %.3f)", res.EvalLoss, cfg.Train.Steps, math.Log(float64(w.Config.VocabSize)))
			}
			if _, err := generate.New(w, nil); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d parameters (softmax %d), held-out loss %.3f", att, w.NumParams(), sw.NumParams(), res.EvalLoss)
		})
	}
}
