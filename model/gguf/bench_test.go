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
// (prefill excluded) and gotune's over llama.cpp's one-thread figure.
// llama.cpp's threads wait for each other by spinning, so its two-thread
// figure collapses when anything else holds a core.
func BenchmarkLlamaCppDecodeStories15M(b *testing.B) {
	c, err := model.Preset("stories15M", 0)
	if err != nil {
		b.Fatal(err)
	}
	w, err := model.NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	tok := tokenizer.NewByteLevel([]string{"<|bos|>", "<|eos|>"})
	path := filepath.Join(b.TempDir(), "stories15M.gguf")
	if err := Save(path, w, tok, Options{}); err != nil {
		b.Fatal(err)
	}
	run := llamaCppB(b)
	const promptLen, newTokens = 32, 128
	r := rand.New(rand.NewPCG(1, 1))
	prompt := make([]int, promptLen)
	for i := range prompt {
		prompt[i] = r.IntN(c.VocabSize)
	}
	e, err := generate.New(w, nil)
	if err != nil {
		b.Fatal(err)
	}
	speed := &greedyRequest{Prompt: prompt, N: newTokens}
	req := checkRequest{Models: []modelRequest{
		{Path: path, ContextSize: 256, Vocab: c.VocabSize, Speed: speed, Threads: 1},
		{Path: path, ContextSize: 256, Vocab: c.VocabSize, Speed: speed, Threads: 2},
	}}
	var cppTokS, cpp2TokS, goTokS float64
	ctx := context.Background()
	for range b.N {
		res := run(req)
		cppTokS += res.Models[0].DecodeTokensPerSecond
		cpp2TokS += res.Models[1].DecodeTokensPerSecond
		t0 := time.Now()
		if _, err := e.Generate(ctx, []generate.Request{{Prompt: prompt, Options: generate.Options{MaxTokens: 1}}}); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := e.Generate(ctx, []generate.Request{{Prompt: prompt, Options: generate.Options{MaxTokens: newTokens, IgnoreEOS: true}}}); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		goTokS += float64(newTokens-1) / (t2.Sub(t1) - t1.Sub(t0)).Seconds()
	}
	b.ReportMetric(cppTokS/float64(b.N), "llamacpp-decode-tok/s")
	b.ReportMetric(cpp2TokS/float64(b.N), "llamacpp-2threads-decode-tok/s")
	b.ReportMetric(goTokS/float64(b.N), "gotune-decode-tok/s")
	b.ReportMetric(goTokS/cppTokS, "gotune/llamacpp")
}
