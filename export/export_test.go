package export

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// writeBase saves a small random model with a byte-level tokenizer as a
// Hugging Face directory.
func writeBase(t *testing.T, dir string, hidden int, seed uint64) *model.Weights {
	t.Helper()
	c := model.Config{Architectures: []string{"LlamaForCausalLM"}, ModelType: "llama", HiddenSize: hidden,
		IntermediateSize: 2 * hidden, NumHiddenLayers: 2, NumAttentionHeads: 2, NumKeyValueHeads: 1,
		VocabSize: 260, MaxPositionEmbeddings: 32, RMSNormEps: 1e-5, HiddenAct: "silu", RopeTheta: 10000}
	w, err := model.NewRandom(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	tinymodel.Save(t, dir, w, tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"}))
	return w
}

// trainedAdapter makes an adapter with nonzero B (as after training), so
// that merging visibly changes the weights.
func trainedAdapter(t *testing.T, w *model.Weights, targets ...string) *lora.Adapter {
	t.Helper()
	a, err := lora.New(w, lora.Config{R: 4, Alpha: 8, Targets: targets, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for mi, m := range a.Modules {
		b := model.F32(m.B)
		for i := range b {
			b[i] = float32(math.Sin(float64(13*mi+i))) * 0.2
		}
	}
	return a
}

// logits runs the model (with a live adapter when a is not nil) on fixed
// tokens.
func logits(t *testing.T, w *model.Weights, a *lora.Adapter) []float32 {
	opt := model.GraphOptions{B: 2, T: 9}
	if a != nil {
		opt.Hook = a.Hook()
	}
	return tinymodel.Logits(t, w, opt)
}

// TestMergedExportReloadsWithSameLogits exports with the base taken from
// the adapter's base_model_name_or_path and a shard limit that forces
// several shards, reloads the result through hf.LoadModel and
// compares its logits with the base plus the live adapter.
func TestMergedExportReloadsWithSameLogits(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir := filepath.Join(root, "base"), filepath.Join(root, "adapter")
	out, adapterOut := filepath.Join(root, "merged"), filepath.Join(root, "adapter-copy")
	w := writeBase(t, baseDir, 16, 1)
	a := trainedAdapter(t, w, "all-linear")
	if err := a.Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	base := logits(t, w, nil)
	live := logits(t, w, a)
	if tinymodel.MaxRelDiff(base, live) < 1e-3 {
		t.Fatal("the adapter does not change the logits; the test would prove nothing")
	}

	cfg := DefaultConfig()
	cfg.Adapter, cfg.Out, cfg.AdapterOut = adapterDir, out, adapterOut
	cfg.MaxShardBytes = 20_000 // the model holds ~46 kB of float32 data
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	absBase, _ := filepath.Abs(baseDir)
	if res.Base != absBase || res.Modules != 14 {
		t.Errorf("result base %q modules %d, want %q and 14", res.Base, res.Modules, absBase)
	}
	for _, f := range []string{"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
		safetensors.IndexName(hf.WeightsBase)} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("export lacks %s: %v", f, err)
		}
	}
	shards := 0
	for _, f := range res.Files {
		if strings.HasPrefix(f, "model-") && strings.HasSuffix(f, ".safetensors") {
			shards++
		}
		if f == lora.ConfigFile || f == lora.WeightsFile || strings.HasSuffix(f, ".tmp") {
			t.Errorf("stray file %s in the merged directory", f)
		}
	}
	if shards < 2 {
		t.Errorf("want several shards under a 20 kB limit, got files %v", res.Files)
	}
	for _, f := range []string{"tokenizer.json", "tokenizer_config.json"} {
		want, _ := os.ReadFile(filepath.Join(baseDir, f))
		got, _ := os.ReadFile(filepath.Join(out, f))
		if !bytes.Equal(want, got) {
			t.Errorf("%s differs from the base's", f)
		}
	}

	merged, err := hf.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := tinymodel.MaxRelDiff(live, logits(t, merged, nil)); d > 1e-5 {
		t.Errorf("merged logits differ from base+adapter by %.3g relative (want ≤ 1e-5)", d)
	}
	// The base directory itself is untouched.
	again, err := hf.LoadModel(baseDir)
	if err != nil {
		t.Fatal(err)
	}
	if d := tinymodel.MaxRelDiff(base, logits(t, again, nil)); d != 0 {
		t.Errorf("base model changed on disk (%.3g)", d)
	}
	for _, f := range []string{lora.ConfigFile, lora.WeightsFile} {
		want, _ := os.ReadFile(filepath.Join(adapterDir, f))
		got, err := os.ReadFile(filepath.Join(adapterOut, f))
		if err != nil || !bytes.Equal(want, got) {
			t.Errorf("adapter copy %s differs from the original (%v)", f, err)
		}
	}

	// Exporting again over the previous export replaces it.
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatalf("re-export over an earlier export: %v", err)
	}
}

// TestExportHalfPrecisionConfig checks that the stored dtype is what
// config.json reports and that unknown base config fields survive.
func TestExportHalfPrecisionConfig(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir, out := filepath.Join(root, "base"), filepath.Join(root, "adapter"), filepath.Join(root, "out")
	w := writeBase(t, baseDir, 16, 2)
	raw, _ := os.ReadFile(filepath.Join(baseDir, "config.json"))
	raw = bytes.Replace(raw, []byte("{"), []byte("{\n  \"initializer_range\": 0.02,"), 1)
	if err := os.WriteFile(filepath.Join(baseDir, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := trainedAdapter(t, w, "q_proj").Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Base, cfg.Adapter, cfg.Out, cfg.Dtype = baseDir, adapterDir, out, safetensors.BF16
	if _, err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(out, "config.json"))
	for _, want := range []string{`"torch_dtype": "bfloat16"`, `"initializer_range": 0.02`} {
		if !bytes.Contains(got, []byte(want)) {
			t.Errorf("config.json lacks %s:\n%s", want, got)
		}
	}
	if _, err := hf.LoadModel(out); err != nil {
		t.Errorf("bf16 export does not reload: %v", err)
	}
}

// TestExportRefusesMismatchedBase gives an adapter trained on one base
// together with a base of another width.
func TestExportRefusesMismatchedBase(t *testing.T) {
	root := t.TempDir()
	baseDir, otherDir := filepath.Join(root, "base"), filepath.Join(root, "other")
	adapterDir, out := filepath.Join(root, "adapter"), filepath.Join(root, "out")
	w := writeBase(t, baseDir, 16, 1)
	writeBase(t, otherDir, 24, 1)
	if err := trainedAdapter(t, w, "q_proj", "v_proj").Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Base, cfg.Adapter, cfg.Out = otherDir, adapterDir, out
	_, err := Run(context.Background(), cfg)
	if err == nil {
		t.Fatal("export of an adapter onto a base of another width succeeded")
	}
	for _, want := range []string{"does not fit base model", "q_proj", "lora_A"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, serr := os.Stat(out); !os.IsNotExist(serr) {
		t.Errorf("a refused export left %s behind", out)
	}
}

// TestExportRefusals covers the other inputs an export must refuse.
func TestExportRefusals(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir := filepath.Join(root, "base"), filepath.Join(root, "adapter")
	w := writeBase(t, baseDir, 16, 1)
	a := trainedAdapter(t, w, "o_proj")
	run := func(adapter, out string) error {
		cfg := DefaultConfig()
		cfg.Adapter, cfg.Out = adapter, out
		_, err := Run(context.Background(), cfg)
		return err
	}

	// An output directory holding unrelated files is not replaced.
	if err := a.Save(adapterDir, baseDir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(root, "notes")
	if err := os.MkdirAll(foreign, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(foreign, "todo.txt"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(adapterDir, foreign); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("export over a foreign directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(foreign, "todo.txt")); err != nil {
		t.Error("the foreign directory was touched")
	}
	if err := run(adapterDir, baseDir); err == nil {
		t.Error("export over the base directory succeeded")
	}

	// No recorded base and none given.
	noBase := filepath.Join(root, "nobase")
	if err := a.Save(noBase, "", "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	if err := run(noBase, filepath.Join(root, "o1")); err == nil || !strings.Contains(err.Error(), "base_model_name_or_path") {
		t.Errorf("adapter without a base: %v", err)
	}

	// A recorded base that is gone.
	gone := filepath.Join(root, "gone")
	if err := a.Save(filepath.Join(root, "ga"), gone, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	if err := run(filepath.Join(root, "ga"), filepath.Join(root, "o2")); err == nil || !strings.Contains(err.Error(), gone) {
		t.Errorf("adapter whose base is gone: %v", err)
	}

	// A reward model's score head has no place in a causal LM.
	score := tensor.New(tensor.WithShape(1, 16), tensor.WithBacking(make([]float32, 16)))
	if err := a.Save(filepath.Join(root, "rm"), baseDir, "SEQ_CLS", lora.Extra{"score": score}); err != nil {
		t.Fatal(err)
	}
	if err := run(filepath.Join(root, "rm"), filepath.Join(root, "o3")); err == nil || !strings.Contains(err.Error(), `"score"`) {
		t.Errorf("adapter with a score head: %v", err)
	}
}

// TestExportReplacesSavedModules checks that a modules_to_save tensor
// named like a base weight (lm_head) replaces it in the export.
func TestExportReplacesSavedModules(t *testing.T) {
	root := t.TempDir()
	baseDir, adapterDir, out := filepath.Join(root, "base"), filepath.Join(root, "adapter"), filepath.Join(root, "out")
	w := writeBase(t, baseDir, 16, 1)
	head := make([]float32, len(model.F32(w.LMHead)))
	for i := range head {
		head[i] = float32(i%7) * 0.01
	}
	extra := lora.Extra{"lm_head": tensor.New(tensor.WithShape(w.LMHead.Shape()...), tensor.WithBacking(head))}
	if err := trainedAdapter(t, w, "k_proj").Save(adapterDir, baseDir, "CAUSAL_LM", extra); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Adapter, cfg.Out = adapterDir, out
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Replaced) != 1 || res.Replaced[0] != "lm_head.weight" {
		t.Errorf("replaced %v, want [lm_head.weight]", res.Replaced)
	}
	merged, err := hf.LoadModel(out)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range model.F32(merged.LMHead) {
		if v != head[i] {
			t.Fatalf("lm_head[%d] = %g, want %g", i, v, head[i])
		}
	}
}

// TestConfigValidate: Run refuses every invalid field, before reading
// anything, with an error naming its key.
func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.Adapter, valid.Out = "adapter", "out"
	configtest.Check(t, valid, Config.Validate, configtest.StageRun(Run), []configtest.Case[Config]{
		{Key: KeyAdapter, Edit: func(c *Config) { c.Adapter = "" }},
		{Key: KeyOut, Edit: func(c *Config) { c.Out = "" }},
		{Key: KeyMaxShardSize, Edit: func(c *Config) { c.MaxShardBytes = 0 }},
		{Key: KeyMaxShardSize, Edit: func(c *Config) { c.MaxShardBytes = -1 }},
		{Key: KeyDtype, Edit: func(c *Config) { c.Dtype = "" }},
		{Key: KeyDtype, Edit: func(c *Config) { c.Dtype = safetensors.I64 }},
	})
}

func TestParseDtype(t *testing.T) {
	for in, want := range map[string]safetensors.Dtype{"f32": safetensors.F32, "FLOAT32": safetensors.F32,
		"f16": safetensors.F16, "Float16": safetensors.F16, "bf16": safetensors.BF16, "bfloat16": safetensors.BF16} {
		if got, err := ParseDtype(in); got != want || err != nil {
			t.Errorf("ParseDtype(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "f64", "int8"} {
		if got, err := ParseDtype(in); err == nil || !strings.Contains(err.Error(), KeyDtype) {
			t.Errorf("ParseDtype(%q) = %q, %v; want an error naming %s", in, got, err, KeyDtype)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"123": 123, "5GB": 5_000_000_000, "200MB": 200_000_000, "2GiB": 2 << 30, "64kib": 64 << 10,
		" 10 MB ": 10_000_000, "7B": 7, "1TB": 1e12,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "0", "-5GB", "1.5GB", "5XB", "5 G B", "99999999999TB", "9223372036854775808"} {
		if n, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, n)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"5GB", "1", "200MiB", "-1", "9223372036854775807", "1e9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err == nil && n <= 0 {
			t.Fatalf("ParseSize(%q) = %d without error", s, n)
		}
	})
}
