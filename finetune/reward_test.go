package finetune

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
)

// randomHead is a (rows, C) head of random values.
func randomHead(rows, C int, seed uint64) *tensor.Dense {
	r := rand.New(rand.NewPCG(seed, seed))
	v := make([]float32, rows*C)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return tensor.New(tensor.WithShape(rows, C), tensor.WithBacking(v))
}

// A score is read at each sequence's own last token, whatever the batch
// shape, the padding after it and the other sequences of its batch.
func TestScorerReadsLastToken(t *testing.T) {
	w, tok := tinymodel.Weights(t, 3, 32)
	m := New("tiny", w, tok)
	m.Extra[ScoreHead] = randomHead(1, w.Config.HiddenSize, 4)
	seqs := [][]int{{1, 72, 105}, {1, 65, 66, 67, 68, 69, 70}, {1, 90}}

	batched, err := NewScorer(m, 2, 8) // two batches, the second partial
	if err != nil {
		t.Fatal(err)
	}
	got, err := batched.Score(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		one, err := NewScorer(m, 1, len(s)) // no padding at all
		if err != nil {
			t.Fatal(err)
		}
		want, err := one.Score(context.Background(), [][]int{s})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got[i]-want[0]) > 1e-4*(1+math.Abs(want[0])) {
			t.Errorf("sequence %d: batched score %g, alone %g", i, got[i], want[0])
		}
	}
	if got[0] == got[1] || got[1] == got[2] {
		t.Errorf("different sequences scored the same: %v", got)
	}
	for _, bad := range [][]int{{}, make([]int, 9)} {
		if _, err := batched.Score(context.Background(), [][]int{bad}); err == nil || !strings.Contains(err.Error(), "sequence 0") {
			t.Errorf("%d tokens: %v", len(bad), err)
		}
	}
}

// LoadRewardModel accepts an adapter with a (1, C) score head and refuses
// one without it or with a head of another shape, naming the directory.
func TestLoadRewardModel(t *testing.T) {
	w, tok := tinymodel.Weights(t, 5, 32)
	dir := t.TempDir()
	save := func(name string, extra lora.Extra) string {
		a, err := lora.New(w, lora.Config{R: 2, Alpha: 4, Targets: []string{"q_proj"}, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := a.Save(p, "tiny", RewardTaskType, extra); err != nil {
			t.Fatal(err)
		}
		return p
	}
	C := w.Config.HiddenSize
	good := save("good", lora.Extra{ScoreHead: randomHead(1, C, 1)})
	m := New("tiny", w, tok)
	if err := LoadRewardModel(m, good); err != nil {
		t.Fatal(err)
	}
	if h := m.Extra[ScoreHead]; h == nil || model.F32(h)[0] == 0 {
		t.Fatal("the score head was not loaded")
	}
	for name, extra := range map[string]lora.Extra{
		"nohead": nil,
		"wide":   {ScoreHead: randomHead(2, C, 2)},
	} {
		p := save(name, extra)
		if err := LoadRewardModel(New("tiny", w, tok), p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// A reward model shares the policy's weights exactly when it was trained
// on the same starting model: the same SFT adapter (paths compared
// cleaned), or both on the plain base.
func TestRewardSharesWeights(t *testing.T) {
	for _, c := range []struct {
		sft, rmSFT string
		share      bool
	}{
		{"", SameAsPolicy, true}, {"sft/adapter", SameAsPolicy, true}, {"", NoSFT, true},
		{"sft/adapter", NoSFT, false}, {"sft/adapter", "sft/adapter/", true}, {"sft/adapter", "other", false},
		{"", "other", false},
	} {
		if got := RewardSharesWeights(c.sft, c.rmSFT); got != c.share {
			t.Errorf("policy SFT %q, reward SFT %q: shares %v, want %v", c.sft, c.rmSFT, got, c.share)
		}
	}
}
