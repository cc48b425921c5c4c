package generate

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/q8"
	"github.com/gotune/gotune/model"
	"gorgonia.org/tensor"
)

// quantizedAndDequantized turns w into its Q8_0 form (model.Weights.
// StoreQ8) and writes the values of the same blocks, dequantized, into
// the matrices of twin, an identical copy kept in float32: two models with
// equal values, whose engines it returns, one reading through the Q8_0
// kernels and one through the float32 ones.
func quantizedAndDequantized(t *testing.T, w, twin *model.Weights) (quant, full *Engine) {
	t.Helper()
	if w.StoreQ8() == 0 {
		t.Fatal("StoreQ8 quantized nothing")
	}
	// The fixtures' 48-wide rows stay float32; the embeddings and most
	// of the first layer's projections are quantized.
	l, quantized := w.Layers[0], 0
	for _, m := range []*tensor.Dense{l.Wq, l.Wk, l.Wv, l.Wu, l.Wz, l.QA, l.KVA, l.Gate, l.Up} {
		if model.Q8(m) != nil {
			quantized++
		}
	}
	if model.Q8(w.Embed) == nil || quantized < 2 {
		t.Fatalf("the embeddings or the first layer's projections were not quantized (%d of them)", quantized)
	}
	named, twins := w.Named(), twin.Named()
	for i, n := range named {
		if b := model.Q8(n.Tensor); b != nil {
			q8.Dequantize(model.F32(twins[i].Tensor), b)
		}
	}
	return enginePair(t, w, twin)
}

// TestHeldLatentAttention covers kv_b_proj held in bfloat16 and in Q8_0
// (the fixtures' latent rank, 16, is not a whole Q8_0 block): DeepSeek-V3's
// shape with a latent rank of 32, every linear weight held so. Attention
// widens kv_b_proj a head at a time; with a live adapter on it, whole into
// the merged scratch — both against the same values in float32.
func TestHeldLatentAttention(t *testing.T) {
	c, err := model.LoadConfig("../testdata/reference/deepseek_v3_mla_moe")
	if err != nil {
		t.Fatal(err)
	}
	ds := *c.DeepSeek
	q := 32
	ds.KVLoraRank, ds.QLoraRank, ds.MoeIntermediateSize = 32, &q, 32
	c.DeepSeek, c.IntermediateSize = &ds, 64
	for _, form := range heldForms {
		t.Run(form.name, func(t *testing.T) {
			w, twin := randomWeights(t, c, 8), randomWeights(t, c, 8)
			lr := newHandLowRank(twin, 2, 0.5, 9)
			rng := rand.New(rand.NewPCG(10, 11))
			for l, ly := range twin.Layers { // and kv_b_proj in every layer
				out, in := ly.KVB.Shape()[0], ly.KVB.Shape()[1]
				a, b := make([]float32, lr.r*in), make([]float32, out*lr.r)
				for _, v := range [][]float32{a, b} {
					for j := range v {
						v[j] = float32(rng.NormFloat64() * 0.3)
					}
				}
				lr.a[[2]any{l, "kv_b_proj"}], lr.b[[2]any{l, "kv_b_proj"}] = a, b
			}
			held, full := form.hold(t, w, twin)
			for l, ly := range w.Layers {
				if _, f32 := ly.KVB.Data().([]float32); f32 {
					t.Fatalf("layer %d: kv_b_proj held in float32", l)
				}
				if form.name == "q8_0" && model.Q8(ly.QB) == nil {
					t.Fatalf("layer %d: q_b_proj not quantized", l)
				}
			}
			toks := randTokens(rand.New(rand.NewPCG(5, 6)), 12, c.VocabSize)
			sameLogits(t, held, full, toks, 7)
			held.SetAdapter(lr)
			full.SetAdapter(lr)
			sameLogits(t, held, full, toks, 7)
		})
	}
}

// TestNewRefusesQ8Norm: only embeddings and linear weights may be held in
// Q8_0; a norm so held is refused by name.
func TestNewRefusesQ8Norm(t *testing.T) {
	w := randomWeights(t, testConfig(t), 1)
	w.Layers[1].MLPNorm = tensor.New(tensor.WithShape(1), tensor.WithBacking(make([]q8.Block, 1)))
	_, err := New(w, nil)
	if err == nil || !strings.Contains(err.Error(), "layer 1 post_attention_layernorm") || !strings.Contains(err.Error(), "Q8_0") {
		t.Fatalf("New with a Q8_0 norm: %v", err)
	}
}
