package tinymodel

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/tokenizer"
)

// worldBaseDir is where WorldBase's model is committed; regenerate it with
//
//	go test ./internal/tinymodel -run TestGenerateWorldBase -gen-base
const worldBaseDir = "testdata/worldbase"

var genBase = flag.Bool("gen-base", false, "regenerate "+worldBaseDir+" (pretrains for a few minutes)")

// TestGenerateWorldBase pretrains the committed base: 2 layers of width 64
// (GQA 4/2 heads), a 512-token BPE vocabulary trained on the corpus, 600
// updates of 16 × 64 tokens over 4000 documents of world 7's corpus, stored
// in float16.
func TestGenerateWorldBase(t *testing.T) {
	if !*genBase {
		t.Skip("regenerates " + worldBaseDir + " only when run with -gen-base")
	}
	c, err := model.Preset("tiny", 512)
	if err != nil {
		t.Fatal(err)
	}
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 64, 160, 2
	c.NumAttentionHeads, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 4, 2, 128
	cfg := pretrain.DefaultConfig()
	cfg.Docs, cfg.Model, cfg.VocabSize, cfg.Out = world.New(7).Corpus(4000), &c, 512, t.TempDir()
	cfg.SeqLen, cfg.BatchSize, cfg.HeldOut, cfg.EvalMax = 64, 16, 0.02, 32
	t.Logf("%d documents", len(cfg.Docs))
	cfg.Train.Steps, cfg.Train.LR, cfg.Train.WarmupSteps, cfg.Train.Quiet = 600, 5e-3, 30, true
	cfg.Train.EvalEvery, cfg.Train.CheckpointEvery, cfg.Train.LogEvery = 100, 0, 50
	res, err := pretrain.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("held-out loss %.3f", res.EvalLoss)
	w, err := hf.LoadModel(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(cfg.Out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(worldBaseDir); err != nil {
		t.Fatal(err)
	}
	if err := hf.SaveModel(worldBaseDir, w, hf.SaveOptions{Dtype: "F16"}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(worldBaseDir); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(worldBaseDir)
	for _, e := range entries {
		info, _ := e.Info()
		t.Logf("%s: %d bytes", filepath.Join(worldBaseDir, e.Name()), info.Size())
	}
}
