package sft

import (
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/benchutil"
	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// The stories15M training step of perf/ANCHORS.md: batch 8 × 256 tokens,
// random weights, every token in the loss.
const benchB, benchT = 8, 256

// peakRSS is the process's peak resident set (VmHWM) in MiB; the
// benchmark is skipped where it cannot be read (outside Linux).
func peakRSS(b *testing.B) float64 {
	mib := benchutil.PeakRSSMiB()
	if mib == 0 {
		b.Skip("no VmHWM in /proc/self/status: peak RSS is measured on Linux only")
	}
	return mib
}

func fillBatch(g *model.Graph, weights []float32) {
	V := int32(g.Config.VocabSize)
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32(i*7919+13) % V
		g.In.Targets[i] = int32(i*104729+7) % V
		weights[i] = 1
	}
}

// timeSteps runs step once to warm up, then b.N times, and returns the
// wall time and the CPU-seconds (all threads) of the b.N runs.
func timeSteps(b *testing.B, step func() error) (time.Duration, float64) {
	if err := step(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	t0, c0 := time.Now(), benchutil.CPUSeconds()
	for range b.N {
		if err := step(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(t0), benchutil.CPUSeconds()-c0
	b.StopTimer()
	return elapsed, cpu
}

// runSteps times b.N training steps (forward, backward, AdamW update)
// after one warm-up step and reports tokens/s, tokens per CPU-second (all
// threads together: a figure that holds on a machine shared with other
// work, where wall time does not) and the peak RSS.
func runSteps(b *testing.B, step func() error) {
	runStepsOf(b, benchB*benchT, step)
}

// runStepsOf is runSteps for steps of the given number of tokens; it
// returns the tokens/s it reported.
func runStepsOf(b *testing.B, stepTokens int, step func() error) float64 {
	elapsed, cpu := timeSteps(b, step)
	tokens := float64(stepTokens * b.N)
	b.ReportMetric(tokens/elapsed.Seconds(), "tok/s")
	b.ReportMetric(tokens/cpu, "tok/cpu-s")
	b.ReportMetric(peakRSS(b), "peakRSS-MiB")
	return tokens / elapsed.Seconds()
}

// BenchmarkLoRASFTStories15M is one SFT update of the stories15M shape
// with LoRA r = 8 on q, k, v, o: forward, backward through the frozen base
// to the adapters only, AdamW on the adapter matrices.
// The figures are a sub-benchmark named by the build (openblas or
// purego), so that `go tool task bench` sets both builds side by side.
func BenchmarkLoRASFTStories15M(b *testing.B) {
	b.Run(blas.Backend(), func(b *testing.B) {
		benchLoRASFT(b, "stories15M", benchB, benchT, qkvo)
	})
}

// BenchmarkLoRASFTStories15MKernels is BenchmarkLoRASFTStories15M on
// OpenBLAS's kernels and on gotune's in one process of the OpenBLAS build
// (blas.UseOwn): what GOTUNE_GEMM chooses between under the kernels
// OPENBLAS_CORETYPE selects. The pure-Go build has only gotune's.
func BenchmarkLoRASFTStories15MKernels(b *testing.B) {
	for _, k := range []struct {
		name string
		own  bool
	}{{"openblas", false}, {"gotune", true}} {
		b.Run(k.name, func(b *testing.B) {
			restore, err := blas.UseOwn(k.own)
			if err != nil {
				b.Skip(err)
			}
			defer restore()
			benchLoRASFT(b, "stories15M", benchB, benchT, qkvo)
		})
	}
}

// qkvo are the LoRA targets of perf/ANCHORS.md's LoRA rows.
var qkvo = []string{"q_proj", "k_proj", "v_proj", "o_proj"}

// BenchmarkLoRASFTSmall is the same update on the "small" preset (dim 768,
// 12 layers, GQA 12/4, vocabulary 32000) at 4 × 512 tokens, the second
// size of perf/ANCHORS.md. `go tool task bench` runs it in a process of
// its own, so that its peak RSS is its own.
func BenchmarkLoRASFTSmall(b *testing.B) { benchLoRASFT(b, "small", 4, 512, qkvo) }

// BenchmarkLoRASFTSmallBF16 is BenchmarkLoRASFTSmall with the frozen
// base's embeddings and linear weights held in bfloat16 (sft --base-dtype
// bfloat16); its own process, as the float32 row.
func BenchmarkLoRASFTSmallBF16(b *testing.B) { benchLoRASFTBF16(b, "small", 4, 512) }

// BenchmarkLoRASFTQwen05BF16 is BenchmarkLoRASFTQwen05 on a bfloat16
// base.
func BenchmarkLoRASFTQwen05BF16(b *testing.B) { benchLoRASFTBF16(b, "qwen05", 1, 512) }

// benchLoRASFTBF16 runs benchLoRASFT on weights of their own held in
// bfloat16 (the float32 rows' cached weights stay float32).
func benchLoRASFTBF16(b *testing.B, preset string, B, T int) {
	key := preset + "/bf16"
	if presetWeights[key] == nil {
		w := tinymodel.Preset(b, preset, 1)
		w.StoreBF16(nil)
		presetWeights[key] = w
		debug.FreeOSMemory() // the float32 copies
	}
	benchLoRASFT(b, key, B, T, qkvo)
}

// BenchmarkLoRASFTQwen05 is the same update on the "qwen05" preset
// (Qwen2.5-0.5B's shape: dim 896, 24 layers, 14/2 heads, FFN 4864, a
// tied 151936-token vocabulary) at 1 × 512 tokens, the third size of
// perf/ANCHORS.md; run in a process of its own as BenchmarkLoRASFTSmall.
func BenchmarkLoRASFTQwen05(b *testing.B) { benchLoRASFT(b, "qwen05", 1, 512, qkvo) }

// BenchmarkLoRASFTScaling is the same update at the shapes that separate
// how a step grows with the batch (the small preset at 1, 2 and 4 rows of
// 512 tokens) and with the sequence length (the qwen05 preset at one row
// of 256, 512, 1024 and 2048 tokens): the measurements behind the README's
// scaling statement. Run each case in a process of its own for its peak
// RSS (go tool task bench-scaling does).
func BenchmarkLoRASFTScaling(b *testing.B) {
	for _, c := range []struct {
		preset string
		B, T   int
	}{{"small", 1, 512}, {"small", 2, 512}, {"small", 4, 512}, {"qwen05", 1, 256}, {"qwen05", 1, 512}, {"qwen05", 1, 1024}, {"qwen05", 1, 2048}} {
		b.Run(fmt.Sprintf("%s/B=%d/T=%d", c.preset, c.B, c.T), func(b *testing.B) { benchLoRASFT(b, c.preset, c.B, c.T, qkvo) })
	}
	// With gradient checkpointing, where the activations dominate.
	for _, T := range []int{512, 2048} {
		b.Run(fmt.Sprintf("checkpointing-qwen05/B=1/T=%d", T), func(b *testing.B) { benchLoRASFTWith(b, "qwen05", 1, T, qkvo, true) })
	}
}

// BenchmarkLoRASFTStories15MMoE is the same update on the stories15M-moe
// preset (DeepSeek-V2: latent attention, 16 routed experts of which 2 run
// per token, 2 shared), the same active size, with LoRA r = 8 on its
// attention projections (q_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj).
// It also reports the active parameters per token (the embedding lookup
// excluded, routed experts counted for the share a token runs), the
// denominator of MoE's cost per active parameter.
func BenchmarkLoRASFTStories15MMoE(b *testing.B) {
	benchLoRASFT(b, "stories15M-moe", benchB, benchT, []string{"q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj"})
}

// presetWeights caches each preset's random weights across the runs of
// a benchmark (the testing package calls it once with b.N = 1 before the
// timed run): drawing 0.5 B normal numbers takes longer than a step.
var presetWeights = map[string]*model.Weights{}

// benchLoRASFT times the LoRA SFT update of preset on B×T-token batches
// and reports, besides runSteps' figures, the active parameters and the
// model GFLOP/s of perf/ANCHORS.md's counting (4·N per token with a frozen
// base: forward 2N, input gradients 2N; N the active parameters, the
// head included; attention's own products not counted).
func benchLoRASFT(b *testing.B, preset string, B, T int, targets []string) {
	benchLoRASFTWith(b, preset, B, T, targets, false)
}

// benchLoRASFTWith is benchLoRASFT with gradient checkpointing on or off.
func benchLoRASFTWith(b *testing.B, preset string, B, T int, targets []string, checkpoint bool) {
	w := presetWeights[preset]
	if w == nil {
		w = tinymodel.Preset(b, preset, 1)
		presetWeights[preset] = w
	}
	benchutil.ResetPeakRSS()
	m := finetune.New("", w, tokenizer.NewByteLevel(nil))
	if err := m.SetGradientCheckpointing(checkpoint); err != nil {
		b.Fatal(err)
	}
	if err := m.NewAdapter(lora.Config{R: 8, Alpha: 16, Targets: targets, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	p, err := m.Program("sft", B, T, true, finetune.TokenLoss)
	if err != nil {
		b.Fatal(err)
	}
	fillBatch(p.Graph, p.Graph.Vector("weights"))
	params := m.Params()
	update := newBenchUpdate(paramValues(params))
	tps := runStepsOf(b, B*T, func() error {
		if err := p.Run(); err != nil {
			return err
		}
		update.step(func(i int) []float32 { return params[i].Grad() })
		m.ZeroGrad()
		return nil
	})
	n := activeParams(w)
	b.ReportMetric(n/1e6, "active-Mparams")
	b.ReportMetric(4*n*tps/1e9, "model-GFLOP/s")
}

// activeParams counts the weights a token's forward pass multiplies with:
// every tensor but the embedding table (a lookup), routed experts weighted
// by the share of them a token runs (num_experts_per_tok of
// n_routed_experts).
func activeParams(w *model.Weights) float64 {
	var n float64
	for _, t := range w.Named() {
		size := float64(t.Tensor.Shape().TotalSize())
		switch {
		case strings.HasSuffix(t.Name, "embed_tokens.weight"):
			continue
		case strings.Contains(t.Name, ".mlp.experts."):
			size *= float64(w.Config.NumExpertsPerTok) / float64(w.Config.NRoutedExperts)
		}
		n += size
	}
	if w.Config.TieWordEmbeddings {
		n += float64(w.Embed.Shape().TotalSize()) // the head multiplies with it
	}
	return n
}

// BenchmarkFullFTStories15M is the same step with every weight trainable
// (AdamW over all 24 M parameters), the baseline LoRA's memory is
// compared with; a sub-benchmark named by the build, like
// BenchmarkLoRASFTStories15M.
func BenchmarkFullFTStories15M(b *testing.B) {
	b.Run(blas.Backend(), func(b *testing.B) { benchFullFT(b, "stories15M", benchB, benchT) })
}

// BenchmarkFullFTSmall is the full fine-tune step of the "small" preset at
// 4 × 512 tokens (AdamW over all 125 M parameters), the second size's
// full fine-tune row of perf/ANCHORS.md; `go tool task bench-sizes` runs
// it in a process of its own, beside PyTorch's.
func BenchmarkFullFTSmall(b *testing.B) { benchFullFT(b, "small", 4, 512) }

// benchFullFT times the full fine-tune step of preset at B × T tokens:
// tokens/s, tokens per CPU-second, peak RSS and model GFLOP/s (6·N a
// token: the forward pass, the input gradients and the weight gradients).
func benchFullFT(b *testing.B, preset string, B, T int) {
	benchutil.ResetPeakRSS()
	w := tinymodel.Preset(b, preset, 1)
	g, err := model.Build(w, model.GraphOptions{B: B, T: T, Trainable: func(string) bool { return true }})
	if err != nil {
		b.Fatal(err)
	}
	loss := g.MeanNLL(g.InputVector("weights", B*T))
	prog, err := g.Compile(loss, g.Trainable, loss)
	if err != nil {
		b.Fatal(err)
	}
	fillBatch(g, g.Vector("weights"))
	named := w.Named()
	values := make([][]float32, len(named))
	for i, n := range named {
		values[i] = model.F32(n.Tensor)
	}
	update := newBenchUpdate(values)
	tps := runStepsOf(b, B*T, func() error {
		if err := prog.Run(); err != nil {
			return err
		}
		update.step(func(i int) []float32 { return prog.Grad(g.Trainable[i]) })
		prog.ZeroGrad()
		return nil
	})
	b.ReportMetric(6*activeParams(w)*tps/1e9, "model-GFLOP/s")
}

// skewedExamples are n rows of a length-skewed dataset, as chat data is:
// four in five of 16 to 64 tokens, the rest of 64 to 256, the second half
// of each in the loss.
func skewedExamples(n, vocab int) []data.Example {
	r := rand.New(rand.NewPCG(5, 8))
	out := make([]data.Example, n)
	for i := range out {
		length := 16 + r.IntN(48)
		if r.IntN(5) == 0 {
			length = 64 + r.IntN(192)
		}
		ex := data.Example{IDs: make([]int, length), Mask: make([]bool, length), Row: i}
		for j := range ex.IDs {
			ex.IDs[j], ex.Mask[j] = r.IntN(vocab), j >= length/2
		}
		out[i] = ex
	}
	return out
}

// BenchmarkSFTPackingStories15M is one epoch of LoRA SFT updates (r = 8
// on q, k, v, o) over 128 length-skewed rows on the stories15M shape, in
// batches of 8 rows: padded (the default, each batch padded to the
// smallest of the length buckets 64, 128, 256 holding its longest row)
// and packed (--packing: rows of 256 tokens each holding several
// documents, attention blocked between them). real-tok/s counts the
// dataset's tokens only, not padding: the figure packing is for.
func BenchmarkSFTPackingStories15M(b *testing.B) {
	for _, packed := range []bool{false, true} {
		name := map[bool]string{false: "padded", true: "packed"}[packed]
		b.Run(name, func(b *testing.B) {
			w := tinymodel.Preset(b, "stories15M", 1)
			m := finetune.New("", w, tokenizer.NewByteLevel(nil))
			if err := m.NewAdapter(lora.Config{R: 8, Alpha: 16, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}, Seed: 1}); err != nil {
				b.Fatal(err)
			}
			opts := data.BatchOptions{BatchSize: benchB, MaxLen: benchT, Buckets: finetune.LengthBuckets(benchT), Pack: packed}
			if packed {
				opts.Buckets = nil
			}
			batcher, _, err := data.NewBatcher(skewedExamples(128, w.Config.VocabSize), opts)
			if err != nil {
				b.Fatal(err)
			}
			batches := batcher.Epoch(0)
			var real, slots float64
			programs := map[int]*finetune.Program{}
			for _, bt := range batches {
				for _, n := range bt.Lengths {
					real += float64(n)
				}
				slots += float64(bt.B * bt.T)
				if programs[bt.T] == nil {
					build := m.Program
					if packed {
						build = m.PackedProgram
					}
					if programs[bt.T], err = build("sft", benchB, bt.T, true, finetune.TokenLoss); err != nil {
						b.Fatal(err)
					}
				}
			}
			params := m.Params()
			update := newBenchUpdate(paramValues(params))
			epoch := func() error {
				for _, bt := range batches {
					p := programs[bt.T]
					finetune.LoadBatch(p, bt)
					if err := p.Run(); err != nil {
						return err
					}
					update.step(func(i int) []float32 { return params[i].Grad() })
					m.ZeroGrad()
				}
				return nil
			}
			elapsed, cpu := timeSteps(b, epoch)
			b.ReportMetric(real*float64(b.N)/elapsed.Seconds(), "real-tok/s")
			b.ReportMetric(real*float64(b.N)/cpu, "real-tok/cpu-s")
			b.ReportMetric(1-real/slots, "pad-fraction")
			b.ReportMetric(float64(len(batches)), "batches/epoch")
		})
	}
}

// benchUpdate is the optimizer update every training benchmark times after
// its backward pass: AdamW (no decay) over values, with the gradients
// clipped to a global norm of 1.
type benchUpdate struct {
	values, grads [][]float32
	decay         []bool
	opt           *train.AdamW
}

// newBenchUpdate prepares the update of the given parameter values.
func newBenchUpdate(values [][]float32) *benchUpdate {
	sizes := make([]int, len(values))
	for i, v := range values {
		sizes[i] = len(v)
	}
	return &benchUpdate{values: values, grads: make([][]float32, len(values)), decay: make([]bool, len(values)),
		opt: train.NewAdamW(0.9, 0.999, 1e-8, 0, sizes)}
}

// step applies the update, grad(i) being parameter i's gradient.
func (u *benchUpdate) step(grad func(i int) []float32) {
	for i := range u.grads {
		u.grads[i] = grad(i)
	}
	train.ClipGlobalNorm(u.grads, 1)
	u.opt.Update(u.values, u.grads, u.decay, 1e-4)
}

// paramValues are the values of fine-tuning parameters.
func paramValues(params []train.Param) [][]float32 {
	v := make([][]float32, len(params))
	for i, q := range params {
		v[i] = q.Value
	}
	return v
}
