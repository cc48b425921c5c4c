package finetune

import (
	"slices"
	"testing"
)

// Every epoch of the order is a permutation of the prompts, a batch may
// straddle two epochs, and the order depends only on the rollout's number.
func TestPromptOrder(t *testing.T) {
	o := &PromptOrder{N: 5, Seed: 7}
	var seq []int
	for it := range 5 {
		seq = append(seq, o.Batch(it, 3)...) // 15 positions: 3 epochs
	}
	for e := range 3 {
		ep := slices.Sorted(slices.Values(seq[e*5 : (e+1)*5]))
		if !slices.Equal(ep, []int{0, 1, 2, 3, 4}) {
			t.Fatalf("epoch %d is %v, not a permutation", e, seq[e*5:(e+1)*5])
		}
	}
	fresh := &PromptOrder{N: 5, Seed: 7}
	if got := fresh.Batch(3, 3); !slices.Equal(got, seq[9:12]) {
		t.Fatalf("rollout 3 alone %v, in sequence %v", got, seq[9:12])
	}
}

func TestSampleSeedDistinct(t *testing.T) {
	seen := map[uint64]bool{}
	for it := -1; it < 20; it++ {
		for i := range 20 {
			s := SampleSeed(1, it, i)
			if seen[s] {
				t.Fatalf("seed of (%d, %d) repeats", it, i)
			}
			seen[s] = true
		}
	}
}
