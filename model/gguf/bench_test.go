package gguf

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/tokenizer"
)

// BenchmarkLlamaCppDecodeStories15M exports random stories15M weights as
// an F32 GGUF and decodes 128 tokens greedily after a 32-token prompt in
// llama.cpp (the checker's generation loop, on one thread and on two) and
// in gotune's engine, in the same run, reporting the decode speeds
// (prefill excluded) and gotune's over llama.cpp's one-thread figure;
// then the same for the prefill of a 256-token prompt (255 on
// stories15M's 256 positions; the prompt's tokens over the time to the
// first token). llama.cpp's threads wait for
// each other by spinning, so its two-thread figure collapses when
// anything else holds a core.
func BenchmarkLlamaCppDecodeStories15M(b *testing.B) { benchLlamaCpp(b, "stories15M", 128) }

// BenchmarkLlamaCppDecodeQwen05 is the same on the qwen05 preset
// (Qwen2.5-0.5B's shape, a 2 GB F32 GGUF), 32 new tokens.
func BenchmarkLlamaCppDecodeQwen05(b *testing.B) { benchLlamaCpp(b, "qwen05", 32) }

func benchLlamaCpp(b *testing.B, preset string, newTokens int) {
	c, err := model.Preset(preset, 0)
	if err != nil {
		b.Fatal(err)
	}
	w, err := model.NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	tok := tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>"})
	path := filepath.Join(b.TempDir(), preset+".gguf")
	if err := Save(path, w, tok, Options{}); err != nil {
		b.Fatal(err)
	}
	run := llamaCppB(b)
	// A 256-token prefill, or as many as leave room for one new token.
	const promptLen = 32
	prefillLen := min(256, c.MaxPositionEmbeddings-1)
	r := rand.New(rand.NewPCG(1, 1))
	randPrompt := func(n int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = r.IntN(c.VocabSize)
		}
		return p
	}
	prompt, long := randPrompt(promptLen), randPrompt(prefillLen)
	e, err := generate.New(w, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	// first is the seconds to the first token after p.
	first := func(p []int) float64 {
		t0 := time.Now()
		if _, err := e.Generate(ctx, []generate.Request{{Prompt: p, Options: generate.Options{MaxTokens: 1}}}); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0).Seconds()
	}
	req := checkRequest{Models: []modelRequest{
		{Path: path, ContextSize: 512, Vocab: c.VocabSize, Speed: &greedyRequest{Prompt: prompt, N: newTokens}, Threads: 1},
		{Path: path, ContextSize: 512, Vocab: c.VocabSize, Speed: &greedyRequest{Prompt: prompt, N: newTokens}, Threads: 2},
		{Path: path, ContextSize: 512, Vocab: c.VocabSize, Speed: &greedyRequest{Prompt: long, N: 2}, Threads: 2},
	}}
	first(prompt) // warm the engine's buffers
	var cppTokS, cpp2TokS, cppPrefill, goTokS, goPrefill float64
	for range b.N {
		res := run(req)
		cppTokS += res.Models[0].DecodeTokensPerSecond
		cpp2TokS += res.Models[1].DecodeTokensPerSecond
		cppPrefill += res.Models[2].PrefillTokensPerSecond
		pre := first(prompt)
		t0 := time.Now()
		if _, err := e.Generate(ctx, []generate.Request{{Prompt: prompt, Options: generate.Options{MaxTokens: newTokens, IgnoreEOS: true}}}); err != nil {
			b.Fatal(err)
		}
		goTokS += float64(newTokens-1) / (time.Since(t0).Seconds() - pre)
		goPrefill += float64(prefillLen) / first(long)
	}
	n := float64(b.N)
	b.ReportMetric(cppTokS/n, "llamacpp-decode-tok/s")
	b.ReportMetric(cpp2TokS/n, "llamacpp-2threads-decode-tok/s")
	b.ReportMetric(goTokS/n, "gotune-decode-tok/s")
	b.ReportMetric(goTokS/cppTokS, "gotune/llamacpp")
	b.ReportMetric(cppPrefill/n, "llamacpp-prefill-tok/s")
	b.ReportMetric(goPrefill/n, "gotune-prefill-tok/s")
	b.ReportMetric(goPrefill/cppPrefill, "prefill-gotune/llamacpp")
}
