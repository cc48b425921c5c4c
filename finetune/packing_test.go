package finetune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
)

// logProbs is a program whose output is every token's target log-prob.
func logProbs(g *model.Graph, _ map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
	return nil, []*gorgonia.Node{g.TargetLogProbs()}, nil
}

// TestPackedMatchesUnpacked checks padding-free packing: every token of a
// packed batch has, to 1e-5, the log-probability (the negative per-token
// loss) it has when its document runs alone, unpacked, in a dense Llama
// model and in a DeepSeek-V3 model (latent attention, experts).
func TestPackedMatchesUnpacked(t *testing.T) {
	dense, tok := tinymodel.Weights(t, 3, 64)
	mla, _ := tinymodel.DeepSeek(t, true, 4, 64)
	for _, tc := range []struct {
		name string
		w    *model.Weights
	}{{"llama", dense}, {"deepseek_v3", mla}} {
		t.Run(tc.name, func(t *testing.T) {
			m := New("", tc.w, tok)
			r := rand.New(rand.NewPCG(1, 2))
			var examples []data.Example
			for i := range 12 {
				n := 3 + r.IntN(20)
				ex := data.Example{IDs: make([]int, n), Mask: make([]bool, n), Row: i}
				for j := range n {
					ex.IDs[j], ex.Mask[j] = 1+r.IntN(200), j >= n/2
				}
				examples = append(examples, ex)
			}
			const B, T = 2, 48
			b, _, err := data.NewBatcher(examples, data.BatchOptions{BatchSize: B, MaxLen: T, Pack: true})
			if err != nil {
				t.Fatal(err)
			}
			packed, err := m.PackedProgram("lp", B, T, false, logProbs)
			if err != nil {
				t.Fatal(err)
			}
			alone := func(ex data.Example) []float32 {
				p, err := m.Program("lp", 1, len(ex.IDs), false, logProbs)
				if err != nil {
					t.Fatal(err)
				}
				LoadBatch(p, data.Collate([]data.Example{ex}, len(ex.IDs), 0))
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), model.Value32(p.Out[0])...)
			}
			compared, docs := 0, 0
			for _, batch := range b.Epoch(0) {
				LoadBatch(packed, batch)
				if err := packed.Run(); err != nil {
					t.Fatal(err)
				}
				got := model.Value32(packed.Out[0])
				for row := range B {
					for s, exRow := range batch.PackedRows[row] {
						want := alone(examples[exRow])
						docs++
						for i := row * T; i < (row+1)*T; i++ {
							if int(batch.Segments[i]) != s+1 {
								continue
							}
							j := int(batch.Positions[i])
							if j == len(want)-1 {
								continue // the next token is another document's: no target
							}
							if d := math.Abs(float64(got[i] - want[j])); d > 1e-5 || math.IsNaN(d) {
								t.Fatalf("row %d, document %d, token %d: packed log-prob %g, alone %g", row, exRow, j, got[i], want[j])
							}
							compared++
						}
					}
				}
			}
			if docs != len(examples) || compared == 0 {
				t.Fatalf("compared %d tokens of %d documents, want all %d", compared, docs, len(examples))
			}
			// Without the positions and segments, packing changes the
			// results: the test can tell.
			plain, err := m.Program("lp", B, T, false, logProbs)
			if err != nil {
				t.Fatal(err)
			}
			batch := b.Epoch(0)[0]
			unpacked := batch
			unpacked.Positions, unpacked.Segments = nil, nil
			LoadBatch(plain, unpacked)
			if err := plain.Run(); err != nil {
				t.Fatal(err)
			}
			LoadBatch(packed, batch)
			if err := packed.Run(); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(model.Value32(plain.Out[0])) == fmt.Sprint(model.Value32(packed.Out[0])) {
				t.Fatal("a packed batch computed as one sequence per row gives the same log-probs")
			}
		})
	}
}
