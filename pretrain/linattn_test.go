package pretrain

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
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

// --max-positions lets a preset train on windows longer than its own 256
// positions: the written config.json carries the new
// max_position_embeddings, windows beyond it are still refused naming
// seq-len, and without the option the preset's 256 still bounds seq-len.
func TestPretrainMaxPositions(t *testing.T) {
	docs := syntheticCorpus(400, 3)
	cfg := microConfig(filepath.Join(t.TempDir(), "long"), docs)
	cfg.Model, cfg.Preset, cfg.MaxPositions = nil, "tiny", 512
	cfg.SeqLen, cfg.BatchSize, cfg.Train.Steps, cfg.Train.WarmupSteps = 320, 1, 2, 1
	pc, err := model.Preset("tiny", 0)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.SeqLen <= pc.MaxPositionEmbeddings {
		t.Fatalf("the tiny preset has %d positions; the test needs windows beyond them", pc.MaxPositionEmbeddings)
	}
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	w, err := hf.LoadModel(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if w.Config.MaxPositionEmbeddings != 512 {
		t.Errorf("config.json says max_position_embeddings %d, want 512", w.Config.MaxPositionEmbeddings)
	}
	for _, c := range []struct{ seqLen, maxPos, limit int }{{513, 512, 512}, {320, 0, pc.MaxPositionEmbeddings}} {
		bad := cfg
		bad.Out, bad.SeqLen, bad.MaxPositions = filepath.Join(t.TempDir(), "bad"), c.seqLen, c.maxPos
		want := fmt.Sprintf("%s %d exceeds the model's %d positions", KeySeqLen, c.seqLen, c.limit)
		if _, err := Run(context.Background(), bad); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("seq-len %d with max-positions %d: got %v, want an error containing %q", c.seqLen, c.maxPos, err, want)
		}
	}
}
