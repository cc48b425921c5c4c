package grpo

import (
	"context"
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/tokenizer"
)

// benchRunner builds a GRPO runner on the stories15M shape with random
// weights and a LoRA policy adapter (r = 8 on q, k, v, o): generation
// batches of 2 prompts of 64 tokens × 4 completions of up to 32 tokens,
// updated in one micro-batch of 8 rows. The reward is the completion's
// length parity, so that groups have a spread of rewards.
func benchRunner(b *testing.B) (*runner, []prompt) {
	const P, G, promptLen, R = 2, 4, 64, 32
	w := tinymodel.Preset(b, "stories15M", 1)
	tok := tokenizer.NewByteLevel([]string{"<s>", "</s>"})
	policy := finetune.New("stories15M", w, tok)
	cfg := DefaultConfig()
	cfg.NumGenerations, cfg.GenerationBatchSize, cfg.MaxCompletionLength = G, P*G, R
	cfg.LoRA.Targets = []string{"q_proj", "k_proj", "v_proj", "o_proj"}
	if err := policy.NewAdapter(cfg.LoRA); err != nil {
		b.Fatal(err)
	}
	parity := rowFunc("parity", func(s Sample) (float64, error) { return float64(len(s.IDs) % 2), nil })
	r, err := newRunner(cfg, policy, []rewardFunc{parity}, promptLen+R)
	if err != nil {
		b.Fatal(err)
	}
	ps := make([]prompt, P)
	for i := range ps {
		ps[i].idx = i
		for j := range promptLen {
			ps[i].ids = append(ps[i].ids, (i*7919+j*104729+13)%256)
		}
	}
	policy.Params()
	return r, ps
}

// BenchmarkGRPORolloutStories15M times one generation batch: 4 sampled
// completions of each of 2 prompts with the KV-cache engine (each prompt
// prefilled once for its group, the adapter live), their rewards and
// group advantages. Reported: completions/s and generated tokens/s.
func BenchmarkGRPORolloutStories15M(b *testing.B) {
	r, ps := benchRunner(b)
	ctx := context.Background()
	var tokens, completions int
	b.ResetTimer()
	for i := range b.N {
		if err := r.generate(ctx, i, ps); err != nil {
			b.Fatal(err)
		}
		tokens += r.batch.tokens()
		completions += len(r.batch.Seqs)
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(completions)/s, "completions/s")
	b.ReportMetric(float64(tokens)/s, "gen-tok/s")
}

// BenchmarkGRPOUpdateStories15M times one update on a generation batch of
// 8 rows of 96 tokens (64 prompt + up to 32 completion): forward and
// backward through the clipped objective. Reported: sequence tokens/s.
func BenchmarkGRPOUpdateStories15M(b *testing.B) {
	r, ps := benchRunner(b)
	if err := r.generate(context.Background(), 0, ps); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		r.policy.ZeroGrad()
		if _, err := r.update(0, i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(r.batch.Seqs)*r.T*b.N)/b.Elapsed().Seconds(), "tok/s")
}
