// Package stagetest holds what the training stages' tests check alike: a
// tiny DeepSeek (MLA + MoE) base model written as a Hugging Face directory
// with a given tokenizer, the check that a stage trained on it logs every
// update's expert load and adds the balance loss it is asked for, and a
// copy of a base rounded to bfloat16 values for the --base-dtype tests.
// Only tests import it.
//
// May import: finetune, train, model/..., tokenizer/..., checkpoints/...
// and the other test helpers; never a stage, the pipeline, serve or cmd.
package stagetest

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// DeepSeekConfig is a two-layer DeepSeek-V2 of width 32 over tok's
// vocabulary and special tokens: a dense first layer (layer 0) and an MoE
// layer (layer 1) of 4 routed experts, 2 per token, and a shared one,
// softmax greedy routing.
func DeepSeekConfig(tok *tokenizer.Tokenizer) model.Config {
	return model.Config{Architectures: []string{"DeepseekV2ForCausalLM"}, ModelType: "deepseek_v2", HiddenSize: 32,
		IntermediateSize: 64, NumHiddenLayers: 2, NumAttentionHeads: 2, VocabSize: tok.VocabSize(),
		MaxPositionEmbeddings: 256, RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 10000,
		BOSTokenID: tok.BOS(), EOSTokenID: tok.EOS(),
		DeepSeek: &model.DeepSeek{KVLoraRank: 16, QKNopeHeadDim: 8, QKRopeHeadDim: 8, VHeadDim: 16,
			NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 32,
			FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: model.ScoringSoftmax, TopkMethod: model.TopkGreedy,
			RoutedScalingFactor: 1}}
}

// SaveDeepSeek writes random weights (of seed) of DeepSeekConfig over
// tok's vocabulary, and tok, to the model directory dir.
func SaveDeepSeek(tb testing.TB, dir string, tok *tokenizer.Tokenizer, seed uint64) {
	tb.Helper()
	w, err := model.NewRandom(DeepSeekConfig(tok), seed)
	if err != nil {
		tb.Fatal(err)
	}
	if err := hf.SaveModel(dir, w, hf.SaveOptions{}); err != nil {
		tb.Fatal(err)
	}
	if err := tok.Save(dir); err != nil {
		tb.Fatal(err)
	}
}

// CheckExpertLogging trains twice through run, which returns the output
// directory of a run with the given balance-loss weight, once with weight
// 0 and once with 0.1, and checks that every logged update reports the
// load of MoE layer moe (and, when dense ≥ 0, none of dense layer dense),
// that only the weighted run logs the balance term, and that its first
// update's loss exceeds the unweighted one's by exactly that term (the
// same weights see the same data, so the rest of the loss is equal). tol
// bounds that difference.
func CheckExpertLogging(t *testing.T, run func(name string, alpha float64) string, moe, dense int, tol float64) {
	t.Helper()
	read := func(name string, alpha float64) []map[string]float64 {
		recs, err := train.ReadMetrics(train.MetricsFile(run(name, alpha)))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			t.Fatalf("%s: no metrics logged", name)
		}
		return recs
	}
	off, on := read("off", 0), read("on", 0.1)
	for _, r := range append(off, on...) {
		if _, ok := r[train.KeyLoss]; !ok {
			continue
		}
		if _, ok := r[finetune.MetricLoadCV(moe)]; !ok {
			t.Errorf("an update lacks %s: %v", finetune.MetricLoadCV(moe), r)
		}
		if dense >= 0 {
			if _, ok := r[finetune.MetricLoadMax(dense)]; ok {
				t.Errorf("the dense layer %d logs a load: %v", dense, r)
			}
		}
	}
	aux := on[0][finetune.MetricMoEAuxLoss]
	if _, ok := off[0][finetune.MetricMoEAuxLoss]; ok || !(aux > 0) {
		t.Fatalf("%s: %v with weight 0.1, present with weight 0: %v", finetune.MetricMoEAuxLoss, aux, ok)
	}
	if d := on[0][train.KeyLoss] - off[0][train.KeyLoss]; math.Abs(d-aux) > tol {
		t.Errorf("first update: loss %v with the term %v, %v without (difference %v)", on[0][train.KeyLoss], aux, off[0][train.KeyLoss], d)
	}
}

// RoundedBase writes a copy of the model directory dir (a Hugging Face
// directory with its tokenizer) to a temporary directory, its embeddings
// and linear weights — the matrices model.Weights.StoreBF16 converts —
// rounded to bfloat16 values kept in float32, and returns the copy's path.
// A stage run on the copy with --base-dtype bfloat16 holds exactly the
// values a float32 run on it holds, so the two runs differ only by the
// order of the sums.
func RoundedBase(tb testing.TB, dir string) string {
	tb.Helper()
	half, err := hf.LoadModel(dir)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := hf.LoadModel(dir)
	if err != nil {
		tb.Fatal(err)
	}
	half.StoreBF16(nil)
	halves := half.Named()
	for i, n := range w.Named() {
		bits, ok := halves[i].Tensor.Data().([]uint16)
		if !ok {
			continue
		}
		d := model.F32(n.Tensor)
		for j, h := range bits {
			d[j] = bf16.ToFloat32(h)
		}
	}
	out := tb.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasSuffix(name, ".safetensors") || strings.HasSuffix(name, ".safetensors.index.json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	if err := hf.SaveModel(out, w, hf.SaveOptions{}); err != nil {
		tb.Fatal(err)
	}
	return out
}
