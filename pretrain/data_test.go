package pretrain

import (
	"slices"
	"testing"
)

func TestSplitHeldOut(t *testing.T) {
	docs := syntheticCorpus(2000, 4)
	tr, held := SplitHeldOut(docs, 0.1)
	if len(tr)+len(held) != len(docs) || len(held) < 120 || len(held) > 280 {
		t.Fatalf("split %d / %d", len(tr), len(held))
	}
	// Stable under reordering, and a document's copies stay on one side.
	rev := slices.Clone(docs)
	slices.Reverse(rev)
	_, held2 := SplitHeldOut(rev, 0.1)
	slices.Sort(held)
	slices.Sort(held2)
	if !slices.Equal(held, held2) {
		t.Error("held-out set depends on document order")
	}
	for _, h := range held {
		if slices.Contains(tr, h) {
			t.Fatalf("%q is on both sides", h)
		}
	}
}

func TestOrderResumes(t *testing.T) {
	a := &Order{Seed: 3, N: 7}
	var seq []int
	for range 20 {
		seq = append(seq, a.Next())
	}
	// Each epoch is a permutation, and the epochs differ.
	for e := range 2 {
		ep := slices.Clone(seq[7*e : 7*e+7])
		slices.Sort(ep)
		if !slices.Equal(ep, []int{0, 1, 2, 3, 4, 5, 6}) {
			t.Fatalf("epoch %d is not a permutation: %v", e, seq[7*e:7*e+7])
		}
	}
	if slices.Equal(seq[:7], seq[7:14]) {
		t.Error("two epochs in the same order")
	}
	b := &Order{Seed: 3, N: 7}
	for range 9 {
		b.Next()
	}
	raw, err := b.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	c := &Order{Seed: 3, N: 7}
	if err := c.RestoreState(raw); err != nil {
		t.Fatal(err)
	}
	for i := 9; i < 20; i++ {
		if k := c.Next(); k != seq[i] {
			t.Fatalf("restored order gives %d at %d, want %d", k, i, seq[i])
		}
	}
	if c.Progress() != 20.0/7 {
		t.Errorf("progress %g", c.Progress())
	}
	if err := (&Order{Seed: 3, N: 8}).RestoreState(raw); err == nil {
		t.Error("restored a position of other data")
	}
}
