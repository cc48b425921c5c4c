package model

import (
	"slices"
	"testing"
)

// TestPlacementKeepsResults checks the shared memory of backward outputs
// (planPlacements): over two runs on different batches, the loss and every
// accumulated gradient are bit for bit those of the same program with
// each output in a buffer of its own, for dense (Llama, Qwen3) and
// DeepSeek-V3 models, with the whole model or the attention projections
// trainable; and the placed outputs do share memory.
func TestPlacementKeepsResults(t *testing.T) {
	deep := LoadConfigT(t, deepseekV3JSON)
	deeper := microConfig(false, true, nil)
	deeper.NumHiddenLayers = 4
	for _, tc := range []struct {
		name      string
		c         Config
		trainable func(string) bool
	}{
		{"llama/all", deeper, allTrainable},
		{"llama/attention", deeper, attentionOnly},
		{"qwen3/attention", qwen3Micro(true), attentionOnly},
		{"deepseek_v3/all", deep, allTrainable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(place bool) (losses []float32, grads [][]float32, placed, slots int) {
				defer func(old bool) { placeBackward = old }(placeBackward)
				placeBackward = place
				w := scrambled(t, tc.c, 4)
				g, err := Build(w, GraphOptions{B: 2, T: 7, Trainable: tc.trainable})
				if err != nil {
					t.Fatal(err)
				}
				loss := g.MeanNLL(g.InputVector("weights", g.B*g.T))
				p, err := g.Compile(loss, g.Trainable)
				if err != nil {
					t.Fatal(err)
				}
				for _, seed := range []uint64{8, 9} {
					fillInputs(g, seed)
					if err := p.Run(); err != nil {
						t.Fatal(err)
					}
					losses = append(losses, Value32(loss)[0])
				}
				for _, n := range g.Trainable {
					grads = append(grads, slices.Clone(p.Grad(n)))
				}
				mem := map[*float32]bool{}
				for _, pl := range p.placed {
					mem[&pl.t.Data().([]float32)[0]] = true
				}
				return losses, grads, len(p.placed), len(mem)
			}
			wantLoss, wantGrads, none, _ := run(false)
			gotLoss, gotGrads, placed, slots := run(true)
			if none != 0 || placed == 0 || slots >= placed {
				t.Fatalf("%d outputs placed in %d slots (%d with placement off): want some, sharing", placed, slots, none)
			}
			if !slices.Equal(gotLoss, wantLoss) {
				t.Errorf("losses %v with placement, %v without", gotLoss, wantLoss)
			}
			for i := range wantGrads {
				if !slices.Equal(gotGrads[i], wantGrads[i]) {
					t.Errorf("gradient %d differs with placement", i)
				}
			}
		})
	}
}

// LoadConfigT is LoadConfig of a config.json body, failing t on error.
func LoadConfigT(t *testing.T, body string) Config {
	t.Helper()
	c, err := LoadConfig(writeConfig(t, body))
	if err != nil {
		t.Fatal(err)
	}
	return c
}
