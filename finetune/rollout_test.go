package finetune

import (
	"slices"
	"strings"
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

// CheckSequences accepts well-formed rollout sequences and names what is
// wrong in each malformed one.
func TestCheckSequences(t *testing.T) {
	seqs := [][]int{{1, 2, 3}, {4, 5}}
	if err := CheckSequences(seqs, []int{2, 1}, []int{1, 1}, 2, 4, 6); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		seqs         [][]int
		prompt, resp []int
		R, T, vocab  int
		want         string
	}{
		"lengths":     {seqs, []int{2}, []int{1, 1}, 2, 4, 6, "2 sequences with 1 prompt"},
		"no prompt":   {seqs, []int{0, 1}, []int{3, 1}, 3, 4, 6, "sequence 0"},
		"long reply":  {seqs, []int{1, 1}, []int{2, 1}, 1, 4, 6, "sequence 0"},
		"sum":         {seqs, []int{1, 1}, []int{1, 1}, 2, 4, 6, "sequence 0: prompt 1 + response 1 tokens vs 3"},
		"beyond T":    {seqs, []int{2, 1}, []int{1, 1}, 2, 2, 6, "(T 2)"},
		"vocabulary":  {seqs, []int{2, 1}, []int{1, 1}, 2, 4, 5, "sequence 1: token id 5 outside"},
		"negative id": {[][]int{{1, -1}}, []int{1}, []int{1}, 2, 4, 6, "token id -1"},
	} {
		if err := CheckSequences(c.seqs, c.prompt, c.resp, c.R, c.T, c.vocab); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}
