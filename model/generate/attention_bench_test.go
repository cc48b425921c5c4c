package generate

import (
	"math/rand/v2"
	"testing"

	"github.com/gotune/gotune/internal/benchutil"
	"github.com/gotune/gotune/model"
)

// BenchmarkAttentionDecode decodes at batch 1 after a 4096-token prefill
// on the tiny preset with softmax attention, causal linear attention and
// Gated Attention Units (model.WithAttention, equal parameter counts): 32
// tokens per operation, from position 4096 on. It reports decode tokens/s
// and the sequence's state (the key/value cache, or the constant-size
// running sums) in KiB at the last position.
func BenchmarkAttentionDecode(b *testing.B) {
	for _, att := range model.AttentionNames {
		b.Run(att, func(b *testing.B) {
			c, err := model.Preset("tiny", 0)
			if err != nil {
				b.Fatal(err)
			}
			c.MaxPositionEmbeddings = 1 << 16
			if c, err = model.WithAttention(c, att); err != nil {
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
			const prefill, perOp = 4096, 32
			r := rand.New(rand.NewPCG(1, 1))
			st := e.NewState()
			prompt := randTokens(r, prefill, c.VocabSize)
			if _, err := e.Forward([]*State{st}, [][]int{prompt}); err != nil {
				b.Fatal(err)
			}
			tok := []int{1}
			cpu0 := benchutil.CPUSeconds()
			for b.Loop() {
				for range perOp {
					out, err := e.Forward([]*State{st}, [][]int{tok})
					if err != nil {
						b.Fatal(err)
					}
					tok[0] = argmax(out[0])
				}
			}
			n := float64(perOp * b.N)
			b.ReportMetric(n/b.Elapsed().Seconds(), "decode-tok/s")
			b.ReportMetric(n/(benchutil.CPUSeconds()-cpu0), "decode-tok/cpu-s")
			b.ReportMetric(float64(e.StateBytes()+e.CacheBytesPerToken()*st.Len())/1024, "state-KiB")
			b.Logf("%s: position %d", att, st.Len())
		})
	}
}
