package export

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// A merged export of a Qwen3 base keeps its family: config.json says
// qwen3 with its head_dim, the per-head q/k norms are saved unchanged, and
// the reloaded model gives the logits of the base with the live adapter.
func TestMergedExportKeepsQwen3(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir, out := filepath.Join(root, "base"), filepath.Join(root, "adapter"), filepath.Join(root, "merged")
	c := model.Config{Architectures: []string{"Qwen3ForCausalLM"}, ModelType: "qwen3", HiddenSize: 16,
		IntermediateSize: 32, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1, HeadDimOverride: 12,
		VocabSize: 260, MaxPositionEmbeddings: 32, RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 1e6}
	w, err := model.NewRandom(c, 4)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range w.Layers {
		for j := range model.F32(l.QNorm) {
			model.F32(l.QNorm)[j] = 1 + 0.05*float32(i+j)
			model.F32(l.KNorm)[j] = 1 - 0.03*float32(i+j)
		}
	}
	tinymodel.Save(t, baseDir, w, tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"}))
	a := trainedAdapter(t, w, "all-linear")
	if err := a.Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	live := logits(t, w, a)

	cfg := DefaultConfig()
	cfg.Adapter, cfg.Out = adapterDir, out
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	merged, err := hf.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	mc := merged.Config
	if mc.ModelType != "qwen3" || !slices.Equal(mc.Architectures, []string{"Qwen3ForCausalLM"}) || mc.HeadDim() != 12 || mc.TieWordEmbeddings {
		t.Fatalf("merged config %+v", mc)
	}
	for i, l := range merged.Layers {
		if !slices.Equal(model.F32(l.QNorm), model.F32(w.Layers[i].QNorm)) || !slices.Equal(model.F32(l.KNorm), model.F32(w.Layers[i].KNorm)) {
			t.Errorf("layer %d q/k norms changed in the export", i)
		}
	}
	if d := tinymodel.MaxRelDiff(live, logits(t, merged, nil)); d > 1e-5 {
		t.Errorf("merged logits differ from base+adapter by %.3g relative (want ≤ 1e-5)", d)
	}
}
