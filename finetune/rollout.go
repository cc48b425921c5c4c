package finetune

import (
	"fmt"
	"math/rand/v2"

	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/train"
)

// PromptOrder deals prompts to the rollouts of an RL stage (PPO, GRPO):
// the prompts in a fresh seeded permutation every epoch, one after another,
// so rollout i takes positions [i·B, (i+1)·B) of that endless sequence. It
// is a function of the rollout's number, so it needs no saved state to
// resume.
type PromptOrder struct {
	N     int
	Seed  uint64
	perm  []int
	epoch int
}

// Batch returns the prompt indices of rollout iter.
func (o *PromptOrder) Batch(iter, B int) []int {
	out := make([]int, B)
	for i := range out {
		p := iter*B + i
		if e := p / o.N; o.perm == nil || e != o.epoch {
			o.perm, o.epoch = rand.New(rand.NewPCG(o.Seed, 0x9e3779b9+uint64(e))).Perm(o.N), e
		}
		out[i] = o.perm[p%o.N]
	}
	return out
}

// SampleSeed gives response i of rollout iter its own sampling seed
// (SplitMix64 finalizer over the run's seed and the pair), so that a
// resumed run samples exactly what an uninterrupted one would.
func SampleSeed(seed uint64, iter, i int) uint64 {
	z := seed + 0x9e3779b97f4a7c15*uint64(iter+1) + 0xbf58476d1ce4e5b9*uint64(i+1)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// CheckSequences validates the sequences of a rollout read back from a
// checkpoint (a file, so untrusted): each is a prompt of promptLen[i] ≥ 1
// tokens followed by a response of lengths[i] tokens, 1…R, at most T in
// all, with every id inside a vocabulary of vocab tokens.
func CheckSequences(seqs [][]int, promptLen, lengths []int, R, T, vocab int) error {
	if len(promptLen) != len(seqs) || len(lengths) != len(seqs) {
		return fmt.Errorf("%d sequences with %d prompt and %d response lengths", len(seqs), len(promptLen), len(lengths))
	}
	for i, seq := range seqs {
		p, n := promptLen[i], lengths[i]
		if p < 1 || n < 1 || n > R || p+n != len(seq) || len(seq) > T {
			return fmt.Errorf("sequence %d: prompt %d + response %d tokens vs %d (T %d)", i, p, n, len(seq), T)
		}
		for _, id := range seq {
			if id < 0 || id >= vocab {
				return fmt.Errorf("sequence %d: token id %d outside the vocabulary", i, id)
			}
		}
	}
	return nil
}

// OnPolicyDefaults are the optimizer and adapter defaults of the RL stages
// (PPO, GRPO): a learning rate of 2·10⁻³ decaying linearly without warmup,
// logging once per rollout (LogEvery 0), evaluation and checkpoints every
// 40 updates, and a rank-8 LoRA policy adapter on every linear module
// without dropout (dropout would make the ratio of new to old
// probabilities noisy).
func OnPolicyDefaults() (train.Config, lora.Config) {
	tc := train.DefaultConfig()
	tc.LR, tc.Schedule, tc.WarmupSteps, tc.LogEvery = 2e-3, "linear", 0, 0
	tc.EvalEvery, tc.CheckpointEvery = 40, 40
	lc := lora.DefaultConfig()
	lc.Targets, lc.Dropout = []string{lora.AllLinear}, 0
	return tc, lc
}
