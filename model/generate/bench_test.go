package generate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/model"
)

// Reference decode speeds on stories15M from perf/ANCHORS.md (2-core
// machine, f32, batch 1, 128 new tokens): llama.cpp's llama-bench tg128 and
// PyTorch 1.13 greedy decoding with a KV cache after a 32-token prompt
// (OPENBLAS_CORETYPE=Haswell).
const (
	anchorLlamaCppTokS = 445
	anchorPyTorchTokS  = 184
)

// BenchmarkDecodeStories15M decodes 128 new tokens greedily after a 32-token
// prompt on random stories15M weights, at batch 1 and batch 8. It reports
// decode-tok/s (new tokens per second of decoding, prefill excluded, as
// llama-bench's tg figure), e2e-tok/s (prefill included) and the ratios to
// the anchors, decode-tok/cpu-s (per second of process CPU time, which
// other work on the machine does not dilute) and the KV cache's bytes per
// token. Run with -tags openblas for the BLAS build.
func BenchmarkDecodeStories15M(b *testing.B) { benchDecode(b, "stories15M", true) }

// BenchmarkDecodeStories15MMoE is the same decoding on the stories15M-moe
// preset (DeepSeek-V2 latent attention and mixture of experts, stories15M's
// active size), whose cache holds the latent and the rope key per layer.
func BenchmarkDecodeStories15MMoE(b *testing.B) { benchDecode(b, "stories15M-moe", false) }

// benchDecode decodes on a preset; anchors adds the ratios to the dense
// stories15M reference figures.
func benchDecode(b *testing.B, preset string, anchors bool) {
	c, err := model.Preset(preset, 0)
	if err != nil {
		b.Fatal(err)
	}
	w, err := model.NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	e, err := New(w, nil)
	if err != nil {
		b.Fatal(err)
	}
	const promptLen, newTokens = 32, 128
	if anchors {
		b.Logf("backend %s; anchors (batch 1): llama.cpp f32 %d tok/s, PyTorch %d tok/s", blas.Backend(), anchorLlamaCppTokS, anchorPyTorchTokS)
	}
	for _, B := range []int{1, 8} {
		b.Run(fmt.Sprintf("batch%d", B), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, uint64(B)))
			reqs := make([]Request, B)
			for i := range reqs {
				reqs[i] = Request{Prompt: randTokens(r, promptLen, c.VocabSize), Options: Options{MaxTokens: newTokens, IgnoreEOS: true}}
			}
			prefillOnly := make([]Request, B)
			for i := range reqs {
				prefillOnly[i] = reqs[i]
				prefillOnly[i].MaxTokens = 1
			}
			ctx := context.Background()
			if _, err := e.Generate(ctx, reqs); err != nil { // warm the buffers
				b.Fatal(err)
			}
			var total, prefill, cpuTotal, cpuPrefill time.Duration
			b.ResetTimer()
			for range b.N {
				t0, c0 := time.Now(), cpuTime()
				if _, err := e.Generate(ctx, prefillOnly); err != nil {
					b.Fatal(err)
				}
				t1, c1 := time.Now(), cpuTime()
				res, err := e.Generate(ctx, reqs)
				if err != nil {
					b.Fatal(err)
				}
				t2, c2 := time.Now(), cpuTime()
				cpuPrefill += c1 - c0
				cpuTotal += c2 - c1
				for _, r := range res {
					if len(r.Tokens) != newTokens {
						b.Fatalf("generated %d tokens, want %d", len(r.Tokens), newTokens)
					}
				}
				prefill += t1.Sub(t0)
				total += t2.Sub(t1)
			}
			decode := float64(B*(newTokens-1)) / (total - prefill).Seconds() * float64(b.N)
			b.ReportMetric(decode, "decode-tok/s")
			// Tokens per second of CPU time: a figure that stays comparable
			// when other work shares the cores (×2 for both cores busy).
			b.ReportMetric(float64(B*(newTokens-1))/(cpuTotal-cpuPrefill).Seconds()*float64(b.N), "decode-tok/cpu-s")
			b.ReportMetric(float64(B*newTokens)/total.Seconds()*float64(b.N), "e2e-tok/s")
			b.ReportMetric(float64(e.CacheBytesPerToken()), "KV-bytes/tok")
			if anchors {
				b.ReportMetric(decode/anchorLlamaCppTokS, "x-llama.cpp")
				b.ReportMetric(decode/anchorPyTorchTokS, "x-pytorch")
			}
		})
	}
}

// cpuTime is the CPU time this process has used (user + system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
