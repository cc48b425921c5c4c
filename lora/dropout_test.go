package lora

import (
	"slices"
	"testing"

	"github.com/gotune/gotune/model"
)

// TestSeedDropoutRepeatsMasks checks that reseeding the dropout stream
// draws the same masks again (how a resumed run repeats a step's dropout),
// that another stream draws different ones, and that the masks are
// inverted dropout: 0 or 1/(1−p).
func TestSeedDropoutRepeatsMasks(t *testing.T) {
	w := microWeights(t)
	a, err := New(w, Config{R: 2, Alpha: 4, Dropout: 0.25, Targets: []string{"q_proj", "up_proj"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.Build(w, model.GraphOptions{B: 2, T: 4, Hook: a.Hook()}); err != nil {
		t.Fatal(err)
	}
	if len(a.masks) != 4 {
		t.Fatalf("%d masks, want one per adapted module (4)", len(a.masks))
	}
	draw := func(stream uint64) []float32 {
		a.SeedDropout(7, stream)
		a.ResampleDropout()
		var all []float32
		for _, m := range a.masks {
			all = append(all, *m...)
		}
		return all
	}
	first, again, other := draw(3), draw(3), draw(4)
	if !slices.Equal(first, again) {
		t.Error("the same seed and stream drew different masks")
	}
	if slices.Equal(first, other) {
		t.Error("another stream drew the same masks")
	}
	zeros := 0
	for _, v := range first {
		switch v {
		case 0:
			zeros++
		case 1 / 0.75:
		default:
			t.Fatalf("mask value %g is neither 0 nor 1/(1−p)", v)
		}
	}
	if zeros == 0 || zeros == len(first) {
		t.Errorf("%d of %d mask entries dropped", zeros, len(first))
	}
}
