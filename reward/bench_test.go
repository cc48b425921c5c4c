package reward

import (
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/tokenizer"
)

// BenchmarkRewardStepStories15M times one reward-model training step on
// the stories15M shape with random weights: 4 pairs of 256-token chosen and
// rejected sequences (the DPO workload of perf/ANCHORS.md without its
// reference pass), LoRA r = 8 on q, k, v, o, forward and backward through
// the score head. Reported: pairs/s and tokens/s.
func BenchmarkRewardStepStories15M(b *testing.B) {
	const P, T = 4, 256
	w := tinymodel.Preset(b, "stories15M", 1)
	c := w.Config
	m := finetune.New("stories15M", w, tokenizer.NewByteLevel([]string{"<s>", "</s>"}))
	if err := m.NewAdapter(lora.Config{R: 8, Alpha: 16, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	m.Extra[finetune.ScoreHead] = newHead(c.HiddenSize, 0.02, 1)
	tr, err := newTrainer(m, LossConfig{}, P, T)
	if err != nil {
		b.Fatal(err)
	}
	batch := make([]Pair, P)
	for p := range batch {
		batch[p].Chosen, batch[p].Rejected = make([]int, T), make([]int, T-p)
		for i := range batch[p].Chosen {
			batch[p].Chosen[i] = (i*7919 + 13*p) % c.VocabSize
		}
		for i := range batch[p].Rejected {
			batch[p].Rejected[i] = (i*104729 + 7*p) % c.VocabSize
		}
	}
	m.Params() // as in training: the gradient accumulators exist
	if _, err := tr.step(batch, false); err != nil {
		b.Fatal(err)
	}
	m.ZeroGrad()
	b.ResetTimer()
	for range b.N {
		if _, err := tr.step(batch, false); err != nil {
			b.Fatal(err)
		}
		m.ZeroGrad()
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(P*b.N)/s, "pairs/s")
	b.ReportMetric(float64(2*P*T*b.N)/s, "tok/s")
}
