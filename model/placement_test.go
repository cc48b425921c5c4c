package model

import (
	"slices"
	"testing"

	"gorgonia.org/gorgonia"
)

// TestPlacementKeepsResults checks the shared memory of a program's values
// (planPlacements): over training runs on different batches, with a
// forward-only program compiled on the same graph run between them (it
// runs the same operations in another order), the losses and every
// accumulated gradient are bit for bit those of the same programs with
// each output in a buffer of its own, for dense (Llama, Qwen3) and
// DeepSeek-V3 models, with the whole model or the attention projections
// trainable; and the placed outputs, forward projections among them, do
// share memory.
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
			run := func(place bool) (losses []float32, grads [][]float32, placed, slots, linear int) {
				defer func(old bool) { placeValues = old }(placeValues)
				placeValues = place
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
				// The forward-only program also reads every projection:
				// values the training program placed in shared slots, which
				// it must give memory of their own.
				var projections []*gorgonia.Node
				for _, n := range g.G.AllNodes() {
					if n.Op() != nil && n.Op().String() == "Linear" {
						projections = append(projections, n)
					}
				}
				fwd, err := g.Compile(nil, nil, append([]*gorgonia.Node{loss}, projections...)...)
				if err != nil {
					t.Fatal(err)
				}
				for i, seed := range []uint64{8, 9, 10, 11} {
					fillInputs(g, seed)
					prog := p
					if i == 2 {
						prog = fwd
					}
					if err := prog.Run(); err != nil {
						t.Fatal(err)
					}
					losses = append(losses, Value32(loss)[0])
					if prog == fwd {
						for _, n := range projections {
							losses = append(losses, Value32(n)...)
						}
					}
				}
				for _, n := range g.Trainable {
					grads = append(grads, slices.Clone(p.Grad(n)))
				}
				mem := map[*float32]bool{}
				for _, pl := range p.placed {
					mem[&pl.t.Data().([]float32)[0]] = true
					if pl.op.String() == "Linear" {
						linear++
					}
				}
				return losses, grads, len(p.placed), len(mem), linear
			}
			wantLoss, wantGrads, none, _, _ := run(false)
			gotLoss, gotGrads, placed, slots, linear := run(true)
			if none != 0 || placed == 0 || slots >= placed || linear == 0 {
				t.Fatalf("%d outputs (%d projections) placed in %d slots (%d with placement off): want some, sharing", placed, linear, slots, none)
			}
			if !slices.Equal(gotLoss, wantLoss) {
				t.Errorf("losses and projections differ with placement")
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

// TestCheckpointKeepsResults checks gradient checkpointing
// (GraphOptions.Checkpoint): with each layer's values recomputed in the
// backward pass and the freed memory placed for other values, the losses
// and accumulated gradients of two training runs are bit for bit those of
// the graph without checkpoints and without placement, for Llama, Qwen3,
// linear attention, GAU and DeepSeek-V3 (whose mixture-of-experts layer
// keeps its values), packed rows included; and the program holds less
// memory in its shared slots than the same program without checkpoints.
func TestCheckpointKeepsResults(t *testing.T) {
	deeper := microConfig(false, true, nil)
	deeper.NumHiddenLayers = 4
	for _, tc := range []struct {
		name      string
		c         Config
		trainable func(string) bool
		packed    bool
	}{
		{"llama/all", deeper, allTrainable, false},
		{"llama/attention/packed", deeper, attentionOnly, true},
		{"qwen3/attention", qwen3Micro(true), attentionOnly, false},
		{"linear/all", linearMicro(), allTrainable, false},
		{"gau/all", gauMicro(), allTrainable, false},
		{"deepseek_v3/all", deepseekMicro(true, false), allTrainable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run := func(checkpoint, place bool) (losses []float32, grads [][]float32, slotBytes int) {
				defer func(old bool) { placeValues = old }(placeValues)
				placeValues = place
				w := scrambled(t, tc.c, 4)
				g, err := Build(w, GraphOptions{B: 2, T: 7, Trainable: tc.trainable, Checkpoint: checkpoint, Packed: tc.packed})
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
					if tc.packed {
						for i := range g.In.Positions {
							g.In.Positions[i], g.In.Segments[i] = int32(i%7%4), int32(1+i/4)
						}
					}
					if err := p.Run(); err != nil {
						t.Fatal(err)
					}
					losses = append(losses, Value32(loss)[0])
				}
				for _, n := range g.Trainable {
					grads = append(grads, slices.Clone(p.Grad(n)))
				}
				for _, rc := range p.recomputes {
					if checkpoint && place && !slices.Contains(rc.want, true) {
						t.Errorf("a checkpointed layer recomputes nothing")
					}
				}
				return losses, grads, slotMemory(p)
			}
			wantLoss, wantGrads, _ := run(false, false)
			gotLoss, gotGrads, withCkpt := run(true, true)
			_, _, without := run(false, true)
			if !slices.Equal(gotLoss, wantLoss) {
				t.Errorf("losses %v with checkpoints, %v without", gotLoss, wantLoss)
			}
			for i := range wantGrads {
				if !slices.Equal(gotGrads[i], wantGrads[i]) {
					t.Errorf("gradient %d differs with checkpoints", i)
				}
			}
			t.Logf("shared slots: %d values with checkpoints, %d without", withCkpt, without)
			if withCkpt >= without {
				t.Errorf("shared slots hold %d values with checkpoints, %d without: want fewer", withCkpt, without)
			}
		})
	}
}

// slotMemory is the number of values in a program's shared slots.
func slotMemory(p *Program) int {
	seen := map[*float32]int{}
	for _, pl := range p.placed {
		d := pl.t.Data().([]float32)
		base := &d[:1][0]
		seen[base] = max(seen[base], len(d))
	}
	n := 0
	for _, v := range seen {
		n += v
	}
	return n
}
