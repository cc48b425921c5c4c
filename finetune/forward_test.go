package finetune

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
)

// TestForwardOfMatchesOwnGraph checks ForwardOf: a forward-only program
// compiled on a training program's graph gives the loss, bit for bit, of a
// forward-only program with a graph of its own, with the adapter on and
// off, leaves the accumulated adapter gradients untouched, and the
// training program's next step is what it would have been.
func TestForwardOfMatchesOwnGraph(t *testing.T) {
	w, tok := tinymodel.Weights(t, 7, 64)
	m := New("", w, tok)
	if err := m.NewAdapter(lora.Config{R: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "o_proj"}, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	// B nonzero so that the adapter changes the output.
	for _, mod := range m.Adapter.Modules {
		for i := range mod.B.Data().([]float32) {
			mod.B.Data().([]float32)[i] = 0.05 * float32(i%7-3)
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	var examples []data.Example
	for i := range 4 {
		n := 10 + r.IntN(20)
		ex := data.Example{IDs: make([]int, n), Mask: make([]bool, n), Row: i}
		for j := range n {
			ex.IDs[j], ex.Mask[j] = 1+r.IntN(200), j >= n/3
		}
		examples = append(examples, ex)
	}
	const B, T = 2, 32
	batches := []data.Batch{data.Collate(examples[:2], T, 0), data.Collate(examples[2:], T, 0)}
	train, err := m.Program("train", B, T, true, TokenLoss)
	if err != nil {
		t.Fatal(err)
	}
	own, err := m.Program("own", B, T, false, TokenLoss)
	if err != nil {
		t.Fatal(err)
	}
	shared, err := m.ForwardOf("shared", train)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := m.Program("shared", B, T, false, TokenLoss); err != nil || p != shared {
		t.Fatalf("Program does not find the forward program ForwardOf registered (%v)", err)
	}
	if _, err := m.ForwardOf("shared", train); err == nil {
		t.Error("ForwardOf registered a second program under the same name and shape")
	}
	if _, err := m.ForwardOf("x", own); err == nil {
		t.Error("ForwardOf accepted a forward-only source")
	}
	params := m.Params()
	gradsOf := func() [][]float32 {
		var out [][]float32
		for _, p := range params {
			out = append(out, slices.Clone(p.Grad()))
		}
		return out
	}
	step := func() ([][]float32, float32) {
		m.ZeroGrad()
		LoadBatch(train, batches[0])
		if err := train.Run(); err != nil {
			t.Fatal(err)
		}
		return gradsOf(), model.Value32(train.Loss)[0]
	}
	wantGrads, wantLoss := step()
	for _, on := range []bool{true, false} {
		m.Adapter.SetEnabled(on)
		for i, b := range batches {
			loss := func(p *Program) float32 {
				LoadBatch(p, b)
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
				return model.Value32(p.Loss)[0]
			}
			if a, s := loss(own), loss(shared); a != s {
				t.Errorf("adapter %v, batch %d: loss %v through the training graph, %v through its own", on, i, s, a)
			}
		}
	}
	m.Adapter.SetEnabled(true)
	for i, g := range gradsOf() {
		if !slices.Equal(g, wantGrads[i]) {
			t.Fatalf("the forward program changed the accumulated gradient of %s", params[i].Name)
		}
	}
	gotGrads, gotLoss := step()
	if gotLoss != wantLoss {
		t.Errorf("training loss %v after the forward program ran, %v before", gotLoss, wantLoss)
	}
	for i, g := range gotGrads {
		if !slices.Equal(g, wantGrads[i]) {
			t.Errorf("gradient of %s differs after the forward program ran", params[i].Name)
		}
	}
}
