package model

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/gotune/gotune/internal/benchutil"
	"gorgonia.org/gorgonia"
)

// BenchmarkAttentionTrain is a full training step (forward, loss, every
// gradient) of the tiny preset with softmax attention, causal linear
// attention and Gated Attention Units (WithAttention: equal parameter
// counts, GAU chunk 256) at sequence lengths T = 256, 1024 and 4096, with
// B·T = 4096 tokens per step so that only the attention's dependence on T
// changes the cost. It reports tokens/s, CPU seconds per step and the
// process's peak resident set: run each case in its own process for its
// memory figure (go tool task bench-attention does).
func BenchmarkAttentionTrain(b *testing.B) {
	for _, att := range AttentionNames {
		for _, T := range []int{256, 1024, 4096} {
			b.Run(fmt.Sprintf("%s/T=%d", att, T), func(b *testing.B) { benchAttentionTrain(b, att, T) })
		}
	}
}

func benchAttentionTrain(b *testing.B, att string, T int) {
	B := 4096 / T
	c, err := Preset("tiny", 0)
	if err != nil {
		b.Fatal(err)
	}
	c.MaxPositionEmbeddings = 8192
	if c, err = WithAttention(c, att); err != nil {
		b.Fatal(err)
	}
	w, err := NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	g, err := Build(w, GraphOptions{B: B, T: T, Trainable: func(string) bool { return true }})
	if err != nil {
		b.Fatal(err)
	}
	loss := g.MeanNLL(g.InputVector("weights", B*T))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32(r.IntN(c.VocabSize))
		g.In.Targets[i] = int32(r.IntN(c.VocabSize))
		g.Vector("weights")[i] = 1
	}
	p, err := g.Compile(loss, []*gorgonia.Node(g.Trainable))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Run(); err != nil { // warm-up: first touch of every buffer
		b.Fatal(err)
	}
	cpu0 := benchutil.CPUSeconds()
	for b.Loop() {
		p.ZeroGrad()
		if err := p.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tok/s")
	b.ReportMetric((benchutil.CPUSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	b.ReportMetric(benchutil.PeakRSSMiB(), "peakRSS-MiB")
	b.Logf("%s: %d parameters, %d × %d tokens, loss %.4f", att, w.NumParams(), B, T, Value32(loss)[0])
}
