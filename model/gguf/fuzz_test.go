package gguf

import (
	"bytes"
	"testing"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
)

// FuzzLoad feeds mutations of a small model's GGUF file to the model
// loader (metadata → config and tokenizer, tensors → weights): it must
// return weights or an error, never panic.
func FuzzLoad(f *testing.F) {
	for _, mt := range []string{"llama", "qwen3"} {
		// A small seed: the fuzzer slows down badly on large inputs.
		tok := tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>"})
		c := familyConfig(f, mt, tok.VocabSize())
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads = 32, 32, 1, 2, 1
		if mt == "qwen3" {
			c.HeadDimOverride = 16
		}
		w, err := model.NewRandom(c, 1)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(fuzzSeed(f, w, tok))
	}
	// A small DeepSeek-V3 (deepseek2: split attn_k_b/attn_v_b, stacked
	// experts, groups, YaRN).
	tok := tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>"})
	c := testDeepSeekConfig(f, "deepseek_v3-yarn", tok.VocabSize())
	c.HiddenSize, c.NumHiddenLayers, c.NumAttentionHeads, c.IntermediateSize = 32, 2, 2, 32
	w, err := model.NewRandom(c, 1)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fuzzSeed(f, w, tok))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := gguf.Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		if w, tok, err := load(g); err == nil && (w == nil || tok == nil) {
			t.Fatal("load returned no error and no model")
		}
	})
}

// fuzzSeed is the Q8_0 GGUF file of w.
func fuzzSeed(f *testing.F, w *model.Weights, tok *tokenizer.Tokenizer) []byte {
	f.Helper()
	kv, err := Metadata(w, Options{})
	if err != nil {
		f.Fatal(err)
	}
	tkv, err := TokenizerMetadata(tok, w.Config.VocabSize)
	if err != nil {
		f.Fatal(err)
	}
	tensors, err := Tensors(w, Q8_0)
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, append(kv, tkv...), tensors); err != nil {
		f.Fatal(err)
	}
	return buf.Bytes()
}
