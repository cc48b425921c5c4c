package sft

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/world"
)

func TestProbePretrain(t *testing.T) {
	root := t.TempDir()
	tk := worldTokenizer(t)
	_ = tk
	c := model.Config{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenSize: 32,
		IntermediateSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1,
		VocabSize: 512, MaxPositionEmbeddings: 128, RMSNormEps: 1e-5, HiddenAct: "silu", RopeTheta: 10000}
	pc := pretrain.DefaultConfig()
	pc.Docs = world.New(7).Corpus(2000)
	pc.Model = &c
	pc.VocabSize = 512
	pc.SeqLen, pc.BatchSize = 64, 16
	pc.Out = filepath.Join(root, "base")
	pc.Train.Steps, pc.Train.WarmupSteps, pc.Train.EvalEvery, pc.Train.CheckpointEvery = 150, 10, 0, 0
	pc.Train.LR = 1e-2
	pc.Train.Quiet = true
	t0 := time.Now()
	res, err := pretrain.Run(context.Background(), pc)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pretrain %v: %+v", time.Since(t0), res)
	cfg := testConfig(pc.Out, filepath.Join(root, "sft"))
	t0 = time.Now()
	r, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sft %v: %.4f -> %.4f", time.Since(t0), r.BaseEvalLoss, r.EvalLoss)
}
