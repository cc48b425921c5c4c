package gguf

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/gotune/gotune/internal/benchutil"
	"github.com/gotune/gotune/internal/kernel"
	"github.com/gotune/gotune/internal/q8"
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
// first token), each the median of three rounds. llama.cpp's threads wait for
// each other by spinning, so its two-thread figure collapses when
// anything else holds a core. Beside them stands the memory-read bound
// (readBound): batch-1 decoding reads every weight once a token, so no
// engine decodes faster than the machine reads those bytes.
func BenchmarkLlamaCppDecodeStories15M(b *testing.B) { benchLlamaCpp(b, "stories15M", 128, F32) }

// BenchmarkLlamaCppDecodeQwen05 is the same on the qwen05 preset
// (Qwen2.5-0.5B's shape, a 2 GB F32 GGUF), 32 new tokens.
func BenchmarkLlamaCppDecodeQwen05(b *testing.B) { benchLlamaCpp(b, "qwen05", 32, F32) }

// BenchmarkLlamaCppDecodeQwen05BF16 is the qwen05 preset in bfloat16 on
// both sides: llama.cpp decodes the BF16 GGUF export and gotune the same
// weights held in bfloat16 (model.Weights.StoreBF16, the values of the
// export exactly), a 1 GB read a token.
func BenchmarkLlamaCppDecodeQwen05BF16(b *testing.B) { benchLlamaCpp(b, "qwen05", 32, BF16) }

// BenchmarkLlamaCppDecodeQwen05Q8 is the qwen05 preset in Q8_0 on both
// sides: llama.cpp decodes the Q8_0 GGUF export and gotune the same
// weights held in Q8_0 (model.Weights.StoreQ8: ggml's rule, the export's
// blocks exactly), a 0.56 GB read a token.
func BenchmarkLlamaCppDecodeQwen05Q8(b *testing.B) { benchLlamaCpp(b, "qwen05", 32, Q8_0) }

func benchLlamaCpp(b *testing.B, preset string, newTokens int, dtype Dtype) {
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
	if err := Save(path, w, tok, Options{Dtype: dtype}); err != nil {
		b.Fatal(err)
	}
	switch dtype {
	case BF16:
		w.StoreBF16(nil)
	case Q8_0:
		w.StoreQ8()
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
	// This machine's memory bandwidth moves with its neighbours' load, so
	// each iteration measures three rounds, llama.cpp, gotune and the read
	// bound one after the other, and the figures are medians over the
	// rounds (ratios: the median of each round's own ratio).
	const rounds = 3
	m := map[string][]float64{}
	add := func(metric string, v float64) { m[metric] = append(m[metric], v) }
	for range b.N * rounds {
		res := run(req)
		cpp, cpp2, cppPre := res.Models[0].DecodeTokensPerSecond, res.Models[1].DecodeTokensPerSecond, res.Models[2].PrefillTokensPerSecond
		pre := first(prompt)
		t0 := time.Now()
		if _, err := e.Generate(ctx, []generate.Request{{Prompt: prompt, Options: generate.Options{MaxTokens: newTokens, IgnoreEOS: true}}}); err != nil {
			b.Fatal(err)
		}
		gotune := float64(newTokens-1) / (time.Since(t0).Seconds() - pre)
		gotunePre := float64(prefillLen) / first(long)
		bound := readBound(w)
		add("llamacpp-decode-tok/s", cpp)
		add("llamacpp-2threads-decode-tok/s", cpp2)
		add("gotune-decode-tok/s", gotune)
		add("gotune/llamacpp", gotune/cpp)
		add("gotune/llamacpp-2threads", gotune/cpp2)
		add("llamacpp-prefill-tok/s", cppPre)
		add("gotune-prefill-tok/s", gotunePre)
		add("prefill-gotune/llamacpp", gotunePre/cppPre)
		add("read-bound-tok/s", bound)
		add("gotune/read-bound", gotune/bound)
		add("llamacpp/read-bound", cpp/bound)
	}
	for metric, v := range m {
		slices.Sort(v)
		b.ReportMetric(v[len(v)/2], metric)
	}
}

// readBound is the decoding speed, in tokens per second, of an engine that
// only read each weight a batch-1 decoding step reads (every parameter but
// the rows of an untied input embedding other than the token's), once, in
// its stored format, split among the cores as the engine splits its
// products (benchutil.ReadSeconds): the memory-bandwidth bound.
func readBound(w *model.Weights) float64 {
	var parts [][]byte
	for _, p := range w.Named() {
		if p.Tensor == w.Embed && w.LMHead != w.Embed {
			continue
		}
		switch d := p.Tensor.Data().(type) {
		case []float32:
			parts = append(parts, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 4*len(d)))
		case []uint16:
			parts = append(parts, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), 2*len(d)))
		case []q8.Block:
			parts = append(parts, unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(d))), int(unsafe.Sizeof(q8.Block{}))*len(d)))
		default:
			panic(fmt.Sprintf("readBound: %s holds %T", p.Name, d))
		}
	}
	return 1 / benchutil.ReadSeconds(parts, runtime.GOMAXPROCS(0), kernel.SpinParallel)
}
