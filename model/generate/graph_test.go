package generate

import (
	"context"
	"math"
	"slices"
	"testing"

	"github.com/gotune/gotune/model"
)

// graphLogits runs the training graph forward over toks (B = 1) and returns
// its (T, V) logits.
func graphLogits(t *testing.T, w *model.Weights, toks []int) []float32 {
	t.Helper()
	g, err := model.Build(w, model.GraphOptions{B: 1, T: len(toks)})
	if err != nil {
		t.Fatal(err)
	}
	logits := g.Logits()
	prog, err := g.Compile(nil, nil, logits)
	if err != nil {
		t.Fatal(err)
	}
	for i, tok := range toks {
		g.In.Tokens[i] = int32(tok)
	}
	if err := prog.Run(); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(model.Value32(logits))
}

// Greedy decoding equals, step by step, the argmax of the logits that the
// model's gorgonia graph computes over the whole sequence so far; and the
// engine's logits are the graph's.
func TestGreedyEqualsGraphArgmax(t *testing.T) {
	for name, c := range configVariants(t) {
		t.Run(name, func(t *testing.T) {
			w := randomWeights(t, c, 21)
			e, err := New(w, newByteTok())
			if err != nil {
				t.Fatal(err)
			}
			prompt := e.tok.Encode("Greedy", true)
			const n = 24
			res, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: n, IgnoreEOS: true}}})
			if err != nil {
				t.Fatal(err)
			}
			gen := res[0].Tokens
			if len(gen) != n {
				t.Fatalf("%d tokens", len(gen))
			}
			seq := append(slices.Clone(prompt), gen...)
			logits := graphLogits(t, w, seq)
			V := c.VocabSize
			for i, tok := range gen {
				row := logits[(len(prompt)-1+i)*V : (len(prompt)+i)*V]
				if best := argmax(row); best != tok {
					t.Fatalf("step %d: greedy chose %d, the graph's argmax is %d", i, tok, best)
				}
			}
			mine, err := e.ForwardAll([]*State{e.NewState()}, [][]int{seq})
			if err != nil {
				t.Fatal(err)
			}
			var d float64
			for i := range logits {
				d = math.Max(d, math.Abs(float64(logits[i]-mine[0][i])))
			}
			if d > 2e-4 {
				t.Fatalf("engine vs graph logits: max |Δ| = %g", d)
			}
		})
	}
}

// A live adapter in the engine gives the graph's logits of the merged weights.
func TestLiveAdapterEqualsGraphOfMerged(t *testing.T) {
	c := testConfig(t)
	w := randomWeights(t, c, 22)
	lr := newHandLowRank(w, 2, 0.7, 23)
	merged := mergedCopy(t, w, lr)
	e, err := New(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.SetAdapter(lr)
	toks := []int{256, 72, 101, 108, 108, 111, 44, 32, 119, 111, 114, 108, 100}
	mine, err := e.ForwardAll([]*State{e.NewState()}, [][]int{toks})
	if err != nil {
		t.Fatal(err)
	}
	want := graphLogits(t, merged, toks)
	var d float64
	for i := range want {
		d = math.Max(d, math.Abs(float64(want[i]-mine[0][i])))
	}
	if d > 2e-4 {
		t.Fatalf("live adapter vs graph of merged weights: max |Δ| = %g", d)
	}
}
