package generate

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gotune/gotune/model"
)

func maxAbsDiff(t *testing.T, got []float32, want []float64) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d logits, want %d", len(got), len(want))
	}
	var d float64
	for i := range got {
		d = math.Max(d, math.Abs(float64(got[i])-want[i]))
	}
	return d
}

func randTokens(r *rand.Rand, n, V int) []int {
	ids := make([]int, n)
	for i := range ids {
		ids[i] = r.IntN(V)
	}
	return ids
}

// Every configuration the engine branches on: GQA, MHA, attention bias,
// tied embeddings, Llama-3 RoPE scaling, head_dim override, Qwen3's
// per-head q/k norms (with head_dim ≠ hidden/heads and an untied head).
func configVariants(t *testing.T) map[string]model.Config {
	base := testConfig(t)
	mha := base
	mha.NumKeyValueHeads = 4
	bias := base
	bias.AttentionBias = true
	untied := base
	untied.TieWordEmbeddings = false
	scaled := base
	scaled.RopeTheta = 500000
	scaled.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 16}
	hd := base
	hd.HeadDimOverride = 12
	qwen3 := base
	qwen3.ModelType, qwen3.Architectures = "qwen3", []string{"Qwen3ForCausalLM"}
	qwen3.HeadDimOverride, qwen3.TieWordEmbeddings, qwen3.RopeTheta = 12, false, 1e6
	return map[string]model.Config{"gqa": base, "mha": mha, "bias": bias, "untied": untied, "llama3-rope": scaled, "head-dim": hd, "qwen3": qwen3}
}

func TestForwardMatchesReference(t *testing.T) {
	for name, c := range configVariants(t) {
		t.Run(name, func(t *testing.T) {
			w := randomWeights(t, c, 1)
			if c.AttentionBias {
				for _, l := range w.Layers {
					for i, b := range [][]float32{model.F32(l.Bq), model.F32(l.Bk), model.F32(l.Bv)} {
						for j := range b {
							b[j] = 0.3 * float32(math.Cos(float64(7*i+j)))
						}
					}
				}
			}
			e, err := New(w, nil)
			if err != nil {
				t.Fatal(err)
			}
			toks := randTokens(rand.New(rand.NewPCG(2, 3)), 40, c.VocabSize)
			want := refLogits(w, toks, nil)

			// Prefill the first 25 tokens, then feed the rest one at a time
			// and three at a time: every position must match the reference.
			st := e.NewState()
			out, err := e.ForwardAll([]*State{st}, [][]int{toks[:25]})
			if err != nil {
				t.Fatal(err)
			}
			V := c.VocabSize
			for p := range 25 {
				if d := maxAbsDiff(t, out[0][p*V:(p+1)*V], want[p]); d > 2e-4 {
					t.Fatalf("prefill position %d: max |Δlogit| = %g", p, d)
				}
			}
			for p := 25; p < 31; p++ {
				out, err := e.Forward([]*State{st}, [][]int{toks[p : p+1]})
				if err != nil {
					t.Fatal(err)
				}
				if d := maxAbsDiff(t, out[0], want[p]); d > 2e-4 {
					t.Fatalf("decode position %d: max |Δlogit| = %g", p, d)
				}
			}
			for p := 31; p < 40; p += 3 {
				out, err := e.ForwardAll([]*State{st}, [][]int{toks[p : p+3]})
				if err != nil {
					t.Fatal(err)
				}
				for j := range 3 {
					if d := maxAbsDiff(t, out[0][j*V:(j+1)*V], want[p+j]); d > 2e-4 {
						t.Fatalf("chunk position %d: max |Δlogit| = %g", p+j, d)
					}
				}
			}
			if st.Len() != 40 {
				t.Fatalf("state holds %d positions, want 40", st.Len())
			}
		})
	}
}

// Sequences of different lengths in one batch, mixing prefill and decode
// rows, get the logits each would get alone.
func TestBatchedRowsAreIndependent(t *testing.T) {
	c := testConfig(t)
	w := randomWeights(t, c, 4)
	e, err := New(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	seqs := [][]int{randTokens(r, 7, c.VocabSize), randTokens(r, 19, c.VocabSize), randTokens(r, 1, c.VocabSize)}
	states := []*State{e.NewState(), e.NewState(), e.NewState()}
	// Step 1: prefill seq 0 and seq 1 partially; seq 2 idle.
	if _, err := e.Forward(states, [][]int{seqs[0][:6], seqs[1][:10], nil}); err != nil {
		t.Fatal(err)
	}
	// Step 2: decode seq 0, prefill more of seq 1, prefill all of seq 2.
	out, err := e.Forward(states, [][]int{seqs[0][6:], seqs[1][10:], seqs[2]})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range seqs {
		want := refLogits(w, s, nil)
		if d := maxAbsDiff(t, out[i], want[len(s)-1]); d > 2e-4 {
			t.Errorf("sequence %d: max |Δlogit| = %g", i, d)
		}
	}
}

// handLowRank is a hand-made adapter on some modules of some layers.
type handLowRank struct {
	r     int
	scale float32
	a, b  map[[2]any][]float32
}

func newHandLowRank(w *model.Weights, r int, scale float32, seed uint64) *handLowRank {
	h := &handLowRank{r: r, scale: scale, a: map[[2]any][]float32{}, b: map[[2]any][]float32{}}
	rng := rand.New(rand.NewPCG(seed, 1))
	for l := range w.Layers {
		for i, m := range model.LinearModules {
			if (l+i)%2 == 1 { // every other module stays plain
				continue
			}
			t, err := w.Layers[l].Linear(m)
			if err != nil || t == nil {
				continue // a module this architecture does not have
			}
			out, in := t.Shape()[0], t.Shape()[1]
			a, b := make([]float32, r*in), make([]float32, out*r)
			for j := range a {
				a[j] = float32(rng.NormFloat64() * 0.3)
			}
			for j := range b {
				b[j] = float32(rng.NormFloat64() * 0.3)
			}
			h.a[[2]any{l, m}], h.b[[2]any{l, m}] = a, b
		}
	}
	return h
}

// mergedCopy is the test's own reference for a merged adapter: a copy of
// w with W ← W + scale·b·a for every module lr adapts, in plain loops (the
// library's one merge is lora.Adapter.Merge, a layer above this package).
func mergedCopy(t *testing.T, w *model.Weights, lr LowRank) *model.Weights {
	t.Helper()
	out, err := model.Allocate(w.Config)
	if err != nil {
		t.Fatal(err)
	}
	src, dst := w.Named(), out.Named()
	for i := range src {
		copy(model.F32(dst[i].Tensor), model.F32(src[i].Tensor))
	}
	for l := range out.Layers {
		for _, m := range model.LinearModules {
			a, b, r, scale, ok := lr.LowRank(l, m)
			if !ok {
				continue
			}
			wt, err := out.Layers[l].Linear(m)
			if err != nil {
				t.Fatal(err)
			}
			o, in := wt.Shape()[0], wt.Shape()[1]
			W := model.F32(wt)
			for i := range o {
				for j := range in {
					var s float32
					for k := range r {
						s += b[i*r+k] * a[k*in+j]
					}
					W[i*in+j] += scale * s
				}
			}
		}
	}
	return out
}

func (h *handLowRank) LowRank(layer int, module string) ([]float32, []float32, int, float32, bool) {
	a, ok := h.a[[2]any{layer, module}]
	if !ok {
		return nil, nil, 0, 0, false
	}
	return a, h.b[[2]any{layer, module}], h.r, h.scale, true
}

// A live adapter gives the logits of the weights with the update merged in.
func TestLiveAdapterEqualsMerged(t *testing.T) {
	c := testConfig(t)
	w := randomWeights(t, c, 7)
	lr := newHandLowRank(w, 3, 0.5, 8)
	merged := mergedCopy(t, w, lr)
	live, err := New(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	live.SetAdapter(lr)
	plain, err := New(merged, nil)
	if err != nil {
		t.Fatal(err)
	}
	toks := randTokens(rand.New(rand.NewPCG(9, 9)), 12, c.VocabSize)
	a, err := live.ForwardAll([]*State{live.NewState()}, [][]int{toks})
	if err != nil {
		t.Fatal(err)
	}
	la := append([]float32(nil), a[0]...)
	b, err := plain.ForwardAll([]*State{plain.NewState()}, [][]int{toks})
	if err != nil {
		t.Fatal(err)
	}
	var d, moved float64
	ref := refLogits(w, toks, nil)
	refLR := refLogits(w, toks, lr)
	for i := range la {
		d = math.Max(d, math.Abs(float64(la[i]-b[0][i])))
		moved = math.Max(moved, math.Abs(ref[i/c.VocabSize][i%c.VocabSize]-refLR[i/c.VocabSize][i%c.VocabSize]))
	}
	if d > 2e-4 {
		t.Fatalf("live adapter vs merged weights: max |Δlogit| = %g", d)
	}
	if moved < 0.1 {
		t.Fatalf("the adapter moved logits by only %g: the test would not see it missing", moved)
	}
	for p := range toks {
		if d := maxAbsDiff(t, la[p*c.VocabSize:(p+1)*c.VocabSize], refLR[p]); d > 2e-4 {
			t.Fatalf("live adapter vs reference with adapter, position %d: %g", p, d)
		}
	}
	// The base weights are untouched by Merge.
	if d := maxAbsDiff(t, mustForward(t, w, toks), ref[len(toks)-1]); d > 2e-4 {
		t.Fatalf("base weights changed by Merge: %g", d)
	}
	// Removing the adapter restores the base model.
	live.SetAdapter(nil)
	if d := maxAbsDiff(t, mustForwardEngine(t, live, toks), ref[len(toks)-1]); d > 2e-4 {
		t.Fatalf("adapter removed: %g", d)
	}
}

func mustForward(t *testing.T, w *model.Weights, toks []int) []float32 {
	e, err := New(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	return mustForwardEngine(t, e, toks)
}

func mustForwardEngine(t *testing.T, e *Engine, toks []int) []float32 {
	t.Helper()
	out, err := e.Forward([]*State{e.NewState()}, [][]int{toks})
	if err != nil {
		t.Fatal(err)
	}
	return out[0]
}

type badLowRank struct{}

func (badLowRank) LowRank(int, string) ([]float32, []float32, int, float32, bool) {
	return make([]float32, 3), make([]float32, 3), 2, 1, true
}

func TestForwardErrors(t *testing.T) {
	c := testConfig(t)
	w := randomWeights(t, c, 1)
	e, err := New(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := e.NewState()
	if _, err := e.Forward([]*State{st}, [][]int{{1, c.VocabSize}}); err == nil {
		t.Error("token id outside the vocabulary accepted")
	}
	if _, err := e.Forward([]*State{st}, [][]int{make([]int, c.MaxPositionEmbeddings+1)}); err == nil {
		t.Error("sequence past max_position_embeddings accepted")
	}
	if _, err := e.Forward([]*State{st}, nil); err == nil {
		t.Error("mismatched states and feeds accepted")
	}
	if _, err := e.Forward([]*State{st, st}, [][]int{{1}, {2}}); err == nil {
		t.Error("one state fed twice in a call accepted")
	}
	if st.Len() != 0 {
		t.Fatalf("failed calls left %d positions in the state", st.Len())
	}
	e.SetAdapter(badLowRank{})
	if _, err := e.Forward([]*State{st}, [][]int{{1, 2}}); err == nil {
		t.Error("adapter factors of the wrong size accepted")
	}
	if st.Len() != 0 {
		t.Fatalf("failed call advanced the state to %d", st.Len())
	}
	// A broken weight shape is refused up front.
	w.Layers[1].Up = model.NewTensor(3, 3)
	if _, err := New(w, nil); err == nil {
		t.Error("weights of the wrong shape accepted")
	}
	_, err = (&Engine{}).Generate(context.Background(), nil)
	if err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

func TestExpf(t *testing.T) {
	for x := float32(-87); x < 88; x += 0.0137 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		if math.Abs(got-want) > 3e-7*want {
			t.Fatalf("expf(%g) = %g, want %g", x, got, want)
		}
	}
	if expf(-100) != 0 || !math.IsInf(float64(expf(100)), 1) {
		t.Fatal("expf does not saturate")
	}
}
