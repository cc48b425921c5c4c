package gguf

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
)

// familyConfig returns a small config of a family: GQA, and what the
// family adds (biases for qwen2, q/k norms and a head_dim that is not C/H
// for qwen3).
func familyConfig(t testing.TB, modelType string, vocab int) model.Config {
	t.Helper()
	c, err := model.Preset("tiny", vocab)
	if err != nil {
		t.Fatal(err)
	}
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads = 64, 96, 2, 4, 2
	c.MaxPositionEmbeddings, c.TieWordEmbeddings = 64, false
	fam, err := model.LookupFamily(modelType)
	if err != nil {
		t.Fatal(err)
	}
	c.ModelType, c.Architectures = modelType, fam.Architectures[:1]
	switch modelType {
	case "qwen2":
		c.AttentionBias, c.RopeTheta, c.RMSNormEps = true, 1e6, 1e-6
	case "qwen3":
		c.HeadDimOverride, c.TieWordEmbeddings = 32, true
	case "mistral":
		c.SlidingWindow = nil
	}
	return c
}

// randomModel returns random weights of a family (biases and norms
// perturbed too, so that a misplaced one shows) with the byte-level
// tokenizer of the tiny models.
func randomModel(t testing.TB, modelType string, seed uint64) (*model.Weights, *tokenizer.Tokenizer) {
	t.Helper()
	tok := tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>"})
	c := familyConfig(t, modelType, tok.VocabSize()+3) // three embeddings no token uses
	w, err := model.NewRandom(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range w.Named() {
		if n.Tensor.Dims() == 1 {
			for j := range model.F32(n.Tensor) {
				model.F32(n.Tensor)[j] += 0.1 * float32((i+j)%7-3)
			}
		}
	}
	return w, tok
}

// TestRoundTripF32 exports each family and loads it back: the config, the
// tokenizer and every weight come back exactly, so the logits equal the
// original's (within 1e-6).
func TestRoundTripF32(t *testing.T) {
	for _, mt := range []string{"llama", "llama3-scaled", "mistral", "qwen2", "qwen3"} {
		t.Run(mt, func(t *testing.T) {
			w, tok := randomModel(t, strings.TrimSuffix(mt, "3-scaled"), 7)
			if mt == "llama3-scaled" {
				// Llama-3.1's RoPE scaling travels as rope_freqs.weight.
				w.Config.RopeTheta = 500000
				w.Config.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8192}
			}
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := Save(path, w, tok, Options{Dtype: F32}); err != nil {
				t.Fatal(err)
			}
			got, gtok, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			want := w.Config
			if mt == "mistral" {
				want.ModelType, want.Architectures = "llama", []string{"LlamaForCausalLM"} // llama.cpp runs Mistral as llama
			}
			want.BOSTokenID, want.EOSTokenID = tok.BOS(), tok.EOS()
			want.TorchDtype = "float32"
			if !reflect.DeepEqual(got.Config, want) {
				t.Fatalf("config:\n got %+v\nwant %+v", got.Config, want)
			}
			gn, wn := got.Named(), w.Named()
			for i := range wn {
				if gn[i].Name != wn[i].Name || !slices.Equal(model.F32(gn[i].Tensor), model.F32(wn[i].Tensor)) {
					t.Fatalf("tensor %s differs after the round trip", wn[i].Name)
				}
			}
			a := tinymodel.Logits(t, w, model.GraphOptions{B: 1, T: 8})
			b := tinymodel.Logits(t, got, model.GraphOptions{B: 1, T: 8})
			for i := range a {
				if d := a[i] - b[i]; d > 1e-6 || d < -1e-6 {
					t.Fatalf("logit %d: %v after the round trip, %v before", i, b[i], a[i])
				}
			}
			for _, s := range []string{"Hello, world!", "<|bos|>x  y\n\n12345 it's"} {
				if x, y := tok.Encode(s, true), gtok.Encode(s, true); !slices.Equal(x, y) {
					t.Fatalf("%q: tokenizer from GGUF gives %v, original %v", s, y, x)
				}
			}
		})
	}
}

// TestQuantizedRoundTrip: F16 and Q8_0 exports load back within their
// precision, with norms and biases kept F32.
func TestQuantizedRoundTrip(t *testing.T) {
	w, tok := randomModel(t, "qwen2", 3)
	for _, d := range []Dtype{F16, BF16, Q8_0} {
		path := filepath.Join(t.TempDir(), string(d)+".gguf")
		if err := Save(path, w, tok, Options{Dtype: d}); err != nil {
			t.Fatal(err)
		}
		f, err := gguf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, ti := range f.Tensors {
			want := d.tensorType()
			if len(ti.Shape) == 1 {
				want = gguf.F32
			}
			if ti.Type != want {
				t.Errorf("%s: tensor %s is %s, want %s", d, ti.Name, ti.Type, want)
			}
		}
		if ft, _ := f.Int("general.file_type"); ft != int64(d.fileType()) {
			t.Errorf("%s: general.file_type %d", d, ft)
		}
		f.Close()
		got, _, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		a := tinymodel.Logits(t, w, model.GraphOptions{B: 1, T: 8})
		b := tinymodel.Logits(t, got, model.GraphOptions{B: 1, T: 8})
		if r := tinymodel.MaxRelDiff(a, b); r > 0.02 {
			t.Errorf("%s: logits differ by %.3g of their scale", d, r)
		}
	}
}

// TestPermute checks the q/k row order against convert_hf_to_gguf.py's
// permute for one head of dimension 4 (rows 0 1 | 2 3 → 0 2 1 3) and its
// inverse.
func TestPermute(t *testing.T) {
	x := []float32{0, 1, 2, 3, 10, 11, 12, 13}
	p := permuteRows(x, 2, 1)
	if want := []float32{0, 2, 1, 3, 10, 12, 11, 13}; !slices.Equal(p, want) {
		t.Fatalf("permute %v, want %v", p, want)
	}
	if back := unpermuteRows(p, 2, 1); !slices.Equal(back, x) {
		t.Fatalf("unpermute %v, want %v", back, x)
	}
}

// TestLayout checks names, shapes and metadata against llama.cpp's:
// reversed dimensions (ne[0] = the input features), blk.N names, qwen3's
// key_length and q/k norms, no output.weight when embeddings are tied.
func TestLayout(t *testing.T) {
	w, tok := randomModel(t, "qwen3", 1)
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := Save(path, w, tok, Options{}); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for key, want := range map[string]any{
		"general.architecture": "qwen3", "qwen3.attention.key_length": uint32(32), "qwen3.attention.head_count_kv": uint32(2),
		"qwen3.embedding_length": uint32(64), "qwen3.block_count": uint32(2), "tokenizer.ggml.model": "gpt2",
		"tokenizer.ggml.pre": "dbrx", "tokenizer.ggml.add_bos_token": true, "tokenizer.ggml.bos_token_id": uint32(256),
	} {
		if got, _ := f.Get(key); !reflect.DeepEqual(got, want) {
			t.Errorf("metadata %s = %#v, want %#v", key, got, want)
		}
	}
	q, ok := f.Tensor("blk.1.attn_q.weight")
	if !ok || !slices.Equal(q.Shape, []int{4 * 32, 64}) {
		t.Errorf("blk.1.attn_q.weight: %+v", q)
	}
	for _, name := range []string{"blk.0.attn_q_norm.weight", "blk.0.attn_k_norm.weight", "output_norm.weight", "token_embd.weight"} {
		if _, ok := f.Tensor(name); !ok {
			t.Errorf("tensor %s is missing", name)
		}
	}
	if _, ok := f.Tensor("output.weight"); ok {
		t.Error("output.weight written for tied embeddings")
	}
	toks, _ := f.Get("tokenizer.ggml.tokens")
	if n := len(toks.([]string)); n != w.Config.VocabSize || toks.([]string)[n-1] != fmt.Sprintf("[PAD%d]", n-1) {
		t.Errorf("tokens: %d, last %q (want %d, padded)", n, toks.([]string)[n-1], w.Config.VocabSize)
	}
}

// TestFixtureTokenizers: the tokenizer rebuilt from the GGUF metadata of
// each fixture tokenizer (Qwen3, Llama-3, Llama-2) encodes the fixtures'
// golden texts token for token as the Hugging Face tokenizer does.
func TestFixtureTokenizers(t *testing.T) {
	for _, name := range []string{"qwen3", "llama3", "llama2"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join("..", "..", "tokenizer", "testdata", name)
			orig, err := tokenizer.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			kv, err := TokenizerMetadata(orig, orig.VocabSize())
			if err != nil {
				t.Fatal(err)
			}
			f := fileOf(t, kv)
			back, err := LoadTokenizer(f)
			if err != nil {
				t.Fatal(err)
			}
			texts := goldenTexts(t, filepath.Join(dir, "golden.jsonl"))
			for _, s := range texts {
				for _, special := range []bool{false, true} {
					if a, b := orig.Encode(s, special), back.Encode(s, special); !slices.Equal(a, b) {
						t.Fatalf("%q (special %v): from GGUF %v, Hugging Face %v", s, special, b, a)
					}
				}
			}
			if back.BOS() != orig.BOS() || back.EOS() != orig.EOS() || back.ChatTemplate != orig.ChatTemplate {
				t.Fatalf("specials or chat template differ: %v vs %v", back, orig)
			}
		})
	}
}

// TestLoadRefuses: metadata and tensors the model cannot take are errors
// naming them.
func TestLoadRefuses(t *testing.T) {
	w, tok := randomModel(t, "llama", 1)
	kv, err := Metadata(w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tkv, err := TokenizerMetadata(tok, w.Config.VocabSize)
	if err != nil {
		t.Fatal(err)
	}
	tensors, err := Tensors(w, F32)
	if err != nil {
		t.Fatal(err)
	}
	set := func(kv []gguf.KV, key string, v any) []gguf.KV {
		kv = slices.Clone(kv)
		for i := range kv {
			if kv[i].Key == key {
				kv[i].Value = v
				return kv
			}
		}
		return append(kv, gguf.KV{Key: key, Value: v})
	}
	for _, tc := range []struct {
		name    string
		kv      []gguf.KV
		tensors []gguf.Tensor
		want    string
	}{
		{"arch", set(kv, "general.architecture", "falcon"), tensors, `general.architecture "falcon" is not implemented`},
		{"adapter", set(kv, "general.type", "adapter"), tensors, "not a model"},
		{"rope dims", set(kv, "llama.rope.dimension_count", uint32(8)), tensors, "partial rotary"},
		{"rope dims type", set(kv, "llama.rope.dimension_count", "eight"), tensors, "llama.rope.dimension_count"},
		{"value width", set(kv, "llama.attention.value_length", uint32(4)), tensors, "metadata llama.attention.value_length 4 differs from the head dimension"},
		{"block count", set(kv, "llama.block_count", uint32(1_000_000)), tensors, "metadata llama.block_count 1000000: the file holds only"},
		{"width", set(kv, "llama.feed_forward_length", uint32(1<<20)), tensors, "tensor blk.0.ffn_gate.weight has shape [96 64], the config needs [1048576 64]"},
		{"sliding window", set(kv, "llama.attention.sliding_window", uint32(16)), tensors, "metadata llama.attention.sliding_window = 16 is not implemented"},
		{"yarn", set(kv, "llama.rope.scaling.type", "yarn"), tensors, "metadata llama.rope.scaling.type = yarn is not implemented"},
		{"extra tensor", kv, append(slices.Clone(tensors), gguf.Tensor{Name: "blk.0.extra.weight", Shape: []int{1}, Data: []float32{0}}), "tensor blk.0.extra.weight is not used"},
		{"missing tensor", kv, tensors[1:], "tensor token_embd.weight is missing"},
		{"pre", set(tkv, "tokenizer.ggml.pre", "tekken"), tensors, `pre-tokenizer "tekken" is not implemented`},
	} {
		all := tc.kv
		if tc.name != "pre" {
			all = append(slices.Clone(tc.kv), tkv...)
		} else {
			all = append(slices.Clone(kv), tc.kv...)
		}
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := gguf.WriteFile(path, all, tc.tensors); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Load(path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// TestModelfile: FROM the file, a TEMPLATE of the chat format, stops.
func TestModelfile(t *testing.T) {
	tok, err := tokenizer.Load(filepath.Join("..", "..", "tokenizer", "testdata", "qwen3"))
	if err != nil {
		t.Fatal(err)
	}
	mf := Modelfile("./model.gguf", tok)
	for _, want := range []string{"FROM ./model.gguf\n", `TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}`, `PARAMETER stop "<|im_end|>"`} {
		if !strings.Contains(mf, want) {
			t.Errorf("Modelfile lacks %q:\n%s", want, mf)
		}
	}
	plain := tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>"})
	mf = Modelfile("m.gguf", plain)
	if !strings.Contains(mf, "### Instruction:\n{{ .Prompt }}") || !strings.Contains(mf, `PARAMETER stop "<|eos|>"`) {
		t.Errorf("Modelfile without a chat template:\n%s", mf)
	}
	plain.ChatTemplate = "{% for m in messages %}{{ m.content }}{% endfor %}"
	if mf := Modelfile("m.gguf", plain); strings.Contains(mf, "TEMPLATE") || !strings.Contains(mf, "FROM m.gguf") {
		t.Errorf("Modelfile of an unknown chat template:\n%s", mf)
	}
}

// TestExpectedTensors: the shapes checked before allocating are those
// model.Allocate lays out, for every family.
func TestExpectedTensors(t *testing.T) {
	for _, mt := range []string{"llama", "qwen2", "qwen3"} {
		w, _ := randomModel(t, mt, 1)
		var got []string
		for _, e := range expectedTensors(w.Config) {
			got = append(got, fmt.Sprint(e.name, e.shape))
		}
		var want []string
		for _, n := range w.Named() {
			name, err := tensorName(n.Name)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, fmt.Sprint(name, []int(n.Tensor.Shape())))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: expected tensors\n%v\nAllocate lays out\n%v", mt, got, want)
		}
	}
}

// gotune's linear-time attention options have no GGUF architecture: the
// export is refused, naming the key, instead of writing tensors llama.cpp
// would run as softmax attention.
func TestLinearTimeAttentionExportRefused(t *testing.T) {
	for _, att := range []string{model.AttentionLinear, model.AttentionGAU} {
		c := model.Config{ModelType: "llama", HiddenSize: 16, IntermediateSize: 32, NumHiddenLayers: 1,
			NumAttentionHeads: 2, VocabSize: 32, MaxPositionEmbeddings: 16, RMSNormEps: 1e-5, HiddenAct: "silu", Attention: att}
		if att == model.AttentionGAU {
			c.GAUSharedDim, c.GAUChunk = 4, 4
		}
		w, err := model.NewRandom(c, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Tensors(w, F32); err == nil || !strings.Contains(err.Error(), "gotune_attention") {
			t.Errorf("%s: export error %v, want one naming gotune_attention", att, err)
		}
	}
}
