package ppo

import (
	"context"
	"testing"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/tokenizer"
)

// benchRunner builds a PPO runner on the stories15M shape with random
// weights: a policy with LoRA r = 8 on q, k, v, o and a value head, and a
// reward model sharing its weights with its own adapter and score head.
// Rollouts of 8 responses are processed in one group of 8 rows of
// 64 + 32 tokens.
func benchRunner(b *testing.B) (*runner, [][]int) {
	const B, prompt, R = 8, 64, 32
	w := tinymodel.Preset(b, "stories15M", 1)
	c := w.Config
	tok := tokenizer.NewByteLevel([]string{"<s>", "</s>"})
	lc := lora.Config{R: 8, Alpha: 16, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj"}, Seed: 1}
	policy, rm := finetune.New("stories15M", w, tok), finetune.New("stories15M", w, tok)
	if err := policy.NewAdapter(lc); err != nil {
		b.Fatal(err)
	}
	lc.Seed = 2
	if err := rm.NewAdapter(lc); err != nil {
		b.Fatal(err)
	}
	policy.Extra[ValueHeadName] = newHead(c.HiddenSize, 0.02, 1)
	rm.Extra[finetune.ScoreHead] = newHead(c.HiddenSize, 0.02, 2)
	cfg := DefaultConfig()
	cfg.RolloutBatch, cfg.MiniBatches, cfg.Epochs, cfg.MaxNewTokens = B, 1, 1, R
	r, err := newRunner(context.Background(), cfg, policy, rm, prompt+R)
	if err != nil {
		b.Fatal(err)
	}
	prompts := make([][]int, B)
	for i := range prompts {
		prompts[i] = make([]int, prompt)
		for j := range prompts[i] {
			prompts[i][j] = (i*7919 + j*104729 + 13) % 256
		}
	}
	policy.Params()
	return r, prompts
}

// BenchmarkPPORolloutStories15M times one rollout of 8 responses of up to
// 32 tokens: sampling with the KV-cache engine (the policy adapter live),
// the policy and reference forward passes, the reward model's pass, reward
// shaping and GAE. Reported: responses/s and generated tokens/s.
func BenchmarkPPORolloutStories15M(b *testing.B) {
	r, prompts := benchRunner(b)
	ctx := context.Background()
	var tokens int
	b.ResetTimer()
	for i := range b.N {
		if err := r.rollout(ctx, i, prompts); err != nil {
			b.Fatal(err)
		}
		for _, n := range r.roll.Lengths {
			tokens += n
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(len(prompts)*b.N)/s, "responses/s")
	b.ReportMetric(float64(tokens)/s, "gen-tok/s")
}

// BenchmarkPPOUpdateStories15M times one PPO update of 8 rows of 96 tokens
// (64 prompt + 32 response): forward and backward through the clipped
// policy and value losses. Reported: sequence tokens/s.
func BenchmarkPPOUpdateStories15M(b *testing.B) {
	r, prompts := benchRunner(b)
	if err := r.rollout(context.Background(), 0, prompts); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := range b.N {
		if _, err := r.update(0, 0, 0, i); err != nil {
			b.Fatal(err)
		}
		r.policy.ZeroGrad()
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(r.Bm*r.T*b.N)/s, "tok/s")
}
