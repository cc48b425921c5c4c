package dpo

import (
	"context"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/benchutil"
	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// PyTorch 1.13's DPO train step on stories15M from perf/ANCHORS.md (2-core
// machine, float32, 4 pairs of 256-token rows per step, LoRA r = 8 on
// q, k, v, o, reference forward without gradients): 0.9 pairs/s under the
// machine's default OPENBLAS_CORETYPE=Haswell, 1.5–1.7 with SkylakeX.
const (
	anchorPyTorchPairsHaswell  = 0.9
	anchorPyTorchPairsSkylakeX = 1.6
)

// BenchmarkDPOStories15M is one DPO update on random stories15M weights:
// 4 pairs, chosen and rejected rows of 256 tokens (128 prompt + 128
// completion), sigmoid loss, a rank-8 adapter on q, k, v, o, AdamW. The
// "live" case runs the reference forward pass (adapter off) beside every
// step, as the PyTorch anchor does; "precomputed" reads stored reference
// log-probs. It reports pairs/s, the ratio to the PyTorch anchor of the
// same OpenBLAS kernel setting, and the peak resident set of the case. Run with
//
//	go test -tags openblas ./dpo -run '^$' -bench DPOStories15M -benchtime 5x
func BenchmarkDPOStories15M(b *testing.B) {
	for _, live := range []bool{true, false} {
		name := "live"
		if !live {
			name = "precomputed"
		}
		b.Run(name, func(b *testing.B) {
			benchutil.ResetPeakRSS()
			benchDPO(b, live)
		})
	}
}

func benchDPO(b *testing.B, live bool) {
	const P, T = 4, 256
	w := tinymodel.Preset(b, "stories15M", 1)
	c := w.Config
	m := finetune.New("", w, tokenizer.NewByteLevel([]string{"<|pad|>"}))
	if err := m.NewAdapter(lora.DefaultConfig()); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	row := func() data.Example {
		ex := data.Example{IDs: make([]int, T), Mask: make([]bool, T)}
		for i := range ex.IDs {
			ex.IDs[i] = r.IntN(c.VocabSize)
			ex.Mask[i] = i >= T/2
		}
		return ex
	}
	pairs := make([]*pair, 4*P)
	for i := range pairs {
		pairs[i] = &pair{row: i, chosen: row(), rejected: row(), refChosen: -1300 - float64(i), refRejected: -1310}
	}
	tr := newTrainer(m, LossConfig{Beta: 0.1}, P, []int{T})
	tr.live, tr.train, tr.order = live, pairs, &order{Seed: 1, N: len(pairs)}
	params := m.Params()
	values, grads := make([][]float32, len(params)), make([][]float32, len(params))
	sizes, decay := make([]int, len(params)), make([]bool, len(params))
	for i, p := range params {
		values[i], sizes[i] = p.Value, len(p.Value)
	}
	opt := train.NewAdamW(0.9, 0.999, 1e-8, 0, sizes)
	ctx := context.Background()
	update := func() {
		m.ZeroGrad()
		if _, err := tr.step(ctx); err != nil {
			b.Fatal(err)
		}
		for i, p := range params {
			grads[i] = p.Grad()
		}
		train.ClipGlobalNorm(grads, 1)
		opt.Update(values, grads, decay, 1e-4)
	}
	update() // compile the programs and touch every buffer once
	for b.Loop() {
		update()
	}
	rate := float64(P*b.N) / b.Elapsed().Seconds()
	anchor, setting := anchorPyTorchPairsHaswell, "Haswell (default)"
	if strings.EqualFold(os.Getenv("OPENBLAS_CORETYPE"), "SkylakeX") {
		anchor, setting = anchorPyTorchPairsSkylakeX, "SkylakeX"
	}
	b.ReportMetric(rate, "pairs/s")
	b.ReportMetric(rate/anchor, "x-pytorch")
	b.ReportMetric(benchutil.PeakRSSMiB(), "peakRSS-MiB")
	b.Logf("blas %s, OPENBLAS_CORETYPE %s: %.2f pairs/s vs PyTorch %.1f pairs/s; loss %.4f",
		blas.Backend(), setting, rate, anchor, tr.st.Last.Loss)
}
