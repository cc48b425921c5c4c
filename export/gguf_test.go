package export

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// TestGGUFExport merges an adapter into its base and writes GGUF: the
// file loads back with the logits of the base plus the live adapter
// (within 1e-5: the merge rounds in float32), a Modelfile names it, and the
// adapter GGUF is a llama.cpp LoRA adapter of every module.
func TestGGUFExport(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir := filepath.Join(root, "base"), filepath.Join(root, "adapter")
	w := writeBase(t, baseDir, 32, 1)
	a := trainedAdapter(t, w, "all-linear")
	if err := a.Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	want := logits(t, w, a)
	out, adapterOut := filepath.Join(root, "gguf", "merged.gguf"), filepath.Join(root, "gguf", "lora.gguf")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Config{Adapter: adapterDir, Out: out, Format: FormatGGUF, AdapterGGUF: adapterOut})
	if err != nil {
		t.Fatal(err)
	}
	if res.Base != baseDir || res.Modules != len(a.Modules) {
		t.Fatalf("result %+v", res)
	}
	got, _, err := mgguf.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := tinymodel.MaxRelDiff(want, logits(t, got, nil)); d > 1e-5 {
		t.Fatalf("the GGUF export's logits differ from base + adapter by %.3g of their scale", d)
	}
	mf, err := os.ReadFile(filepath.Join(root, "gguf", "Modelfile"))
	if err != nil || !strings.HasPrefix(string(mf), "FROM ./merged.gguf\n") {
		t.Fatalf("Modelfile: %v\n%s", err, mf)
	}
	f, err := gguf.Open(adapterOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if typ, _ := f.String("general.type"); typ != "adapter" || len(f.Tensors) != 2*len(a.Modules) {
		t.Fatalf("adapter GGUF: general.type %q, %d tensors for %d modules", typ, len(f.Tensors), len(a.Modules))
	}
	if alpha, _ := f.Float("adapter.lora.alpha"); alpha != 8 {
		t.Fatalf("adapter.lora.alpha %v, want 8 (α/r·r)", alpha)
	}
}

// TestGGUFConvert converts a model directory alone (no adapter) to Q8_0
// GGUF, and converts the world base model, whose GGUF the llama.cpp tests
// check, with its own tokenizer.
func TestGGUFConvert(t *testing.T) {
	root := t.TempDir()
	baseDir := filepath.Join(root, "base")
	w := writeBase(t, baseDir, 32, 2)
	out := filepath.Join(root, "base-q8.gguf")
	if _, err := Run(context.Background(), Config{Base: baseDir, Out: out, Format: FormatGGUF, GGUFDtype: mgguf.Q8_0}); err != nil {
		t.Fatal(err)
	}
	got, tok, err := mgguf.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := tinymodel.MaxRelDiff(logits(t, w, nil), logits(t, got, nil)); d > 0.02 {
		t.Fatalf("Q8_0 logits differ by %.3g of their scale", d)
	}
	if tok.VocabSize() != 260 {
		t.Fatalf("tokenizer of %d tokens", tok.VocabSize())
	}
	world := filepath.Join(root, "world.gguf")
	if _, err := Run(context.Background(), Config{Base: tinymodel.WorldBase(), Out: world, Format: FormatGGUF}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := mgguf.Load(world); err != nil {
		t.Fatal(err)
	}
}

func TestGGUFExportRefuses(t *testing.T) {
	root := t.TempDir()
	baseDir := filepath.Join(root, "base")
	writeBase(t, baseDir, 16, 1)
	notGGUF := filepath.Join(root, "notes.gguf")
	if err := os.WriteFile(notGGUF, []byte("my notes"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Base: baseDir, Out: filepath.Join(root, "m.bin"), Format: FormatGGUF}, "must be a file name ending in .gguf"},
		{Config{Base: baseDir, Out: notGGUF, Format: FormatGGUF}, "is not a GGUF file; refusing to replace it"},
		{Config{Base: baseDir, AdapterGGUF: filepath.Join(root, "a.gguf"), Format: FormatGGUF}, "an adapter output needs an adapter"},
		{Config{Base: baseDir, Format: FormatGGUF}, "needs an output file"},
		{Config{Base: baseDir, Out: filepath.Join(root, "m.gguf"), Format: FormatGGUF, GGUFDtype: "q4_k"}, `GGUF dtype "q4_k"`},
		{Config{Base: baseDir, Out: filepath.Join(root, "m.gguf"), Format: "onnx"}, `format "onnx"`},
	} {
		if _, err := Run(context.Background(), tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want it to contain %q", tc.cfg, err, tc.want)
		}
	}
}

// TestGGUFBase: an adapter trained on a GGUF base (its
// base_model_name_or_path is the .gguf file) exports to a Hugging Face
// directory and to GGUF, both with the logits of the base plus the live
// adapter.
func TestGGUFBase(t *testing.T) {
	root := t.TempDir()
	baseDir := filepath.Join(root, "base")
	w := writeBase(t, baseDir, 32, 4)
	tok, err := tokenizer.Load(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	baseGGUF := filepath.Join(root, "base.gguf")
	if err := mgguf.Save(baseGGUF, w, tok, mgguf.Options{}); err != nil {
		t.Fatal(err)
	}
	a := trainedAdapter(t, w, "q_proj", "k_proj", "down_proj")
	adapterDir := filepath.Join(root, "adapter")
	if err := a.Save(adapterDir, baseGGUF, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	want := logits(t, w, a)
	hfOut := filepath.Join(root, "merged")
	cfg := DefaultConfig()
	cfg.Adapter, cfg.Out = adapterDir, hfOut
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	got, err := hf.LoadModel(hfOut)
	if err != nil {
		t.Fatal(err)
	}
	if d := tinymodel.MaxRelDiff(want, logits(t, got, nil)); d > 1e-5 {
		t.Fatalf("Hugging Face export of a GGUF base: logits differ by %.3g", d)
	}
	if _, err := tokenizer.Load(hfOut); err != nil {
		t.Fatalf("the export has no tokenizer: %v", err)
	}
	ggufOut := filepath.Join(root, "merged.gguf")
	// The format follows the .gguf extension.
	if _, err := Run(context.Background(), Config{Adapter: adapterDir, Out: ggufOut}); err != nil {
		t.Fatal(err)
	}
	g, _, err := mgguf.Load(ggufOut)
	if err != nil {
		t.Fatal(err)
	}
	if d := tinymodel.MaxRelDiff(want, logits(t, g, nil)); d > 1e-5 {
		t.Fatalf("GGUF export of a GGUF base: logits differ by %.3g", d)
	}
}

// TestAdapterGGUFBesideHF: --adapter-gguf with a Hugging Face export
// writes both.
func TestAdapterGGUFBesideHF(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir := filepath.Join(root, "base"), filepath.Join(root, "adapter")
	w := writeBase(t, baseDir, 16, 1)
	if err := trainedAdapter(t, w, "q_proj").Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	out, lora := filepath.Join(root, "merged"), filepath.Join(root, "lora.gguf")
	cfg := DefaultConfig()
	cfg.Adapter, cfg.Out, cfg.AdapterGGUF = adapterDir, out, lora
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := hf.LoadModel(out); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(lora)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.Tensor("blk.1.attn_q.weight.lora_b"); !ok || len(f.Tensors) != 4 {
		t.Fatalf("adapter GGUF holds %d tensors", len(f.Tensors))
	}
}

// TestGGUFExportDeepSeek merges an adapter on every linear module
// (attention, shared and routed experts) into a DeepSeek-V3 base and
// writes llama.cpp's deepseek2 GGUF: it loads back with the logits of the
// base plus the live adapter. The adapter alone is not written as GGUF,
// and the error says so.
func TestGGUFExportDeepSeek(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir := filepath.Join(root, "base"), filepath.Join(root, "adapter")
	q := 16
	c := model.Config{Architectures: []string{"DeepseekV3ForCausalLM"}, ModelType: "deepseek_v3", HiddenSize: 32,
		IntermediateSize: 48, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 2, VocabSize: 260,
		MaxPositionEmbeddings: 32, RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 10000,
		DeepSeek: &model.DeepSeek{QLoraRank: &q, KVLoraRank: 16, QKNopeHeadDim: 8, QKRopeHeadDim: 4, VHeadDim: 8,
			NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 16, FirstKDenseReplace: 1,
			MoeLayerFreq: 1, ScoringFunc: model.ScoringSigmoid, TopkMethod: model.TopkNoAuxTC, NGroup: 2, TopkGroup: 1,
			NormTopkProb: true, RoutedScalingFactor: 2.5}}
	w, err := model.NewRandom(c, 4)
	if err != nil {
		t.Fatal(err)
	}
	tinymodel.Save(t, baseDir, w, tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"}))
	a := trainedAdapter(t, w, "all-linear")
	if err := a.Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "merged.gguf")
	if _, err := Run(context.Background(), Config{Adapter: adapterDir, Out: out, Format: FormatGGUF}); err != nil {
		t.Fatal(err)
	}
	got, _, err := mgguf.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if arch := got.Config.ModelType; arch != "deepseek_v3" {
		t.Fatalf("model_type %s after the round trip", arch)
	}
	if d := tinymodel.MaxRelDiff(logits(t, w, a), logits(t, got, nil)); d > 1e-5 {
		t.Fatalf("the GGUF export's logits differ from base + adapter by %.3g of their scale", d)
	}
	_, err = Run(context.Background(), Config{Adapter: adapterDir, AdapterGGUF: filepath.Join(root, "lora.gguf"), Format: FormatGGUF})
	if err == nil || !strings.Contains(err.Error(), "LoRA adapters of model_type deepseek_v3 are not written as GGUF") {
		t.Fatalf("DeepSeek adapter GGUF: error %v", err)
	}
}
