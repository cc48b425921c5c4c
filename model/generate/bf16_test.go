package generate

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/model"
	"gorgonia.org/tensor"
)

// halfAndRounded turns w into its bfloat16 form (model.Weights.StoreBF16)
// and rounds the same matrices of twin, an identical copy, to bfloat16
// values kept in float32: two models with equal values, whose engines it
// returns, one reading through the widening kernels and one through the
// float32 ones.
func halfAndRounded(t *testing.T, w, twin *model.Weights) (half, full *Engine) {
	t.Helper()
	if w.StoreBF16(nil) == 0 {
		t.Fatal("StoreBF16 converted nothing")
	}
	named, twins := w.Named(), twin.Named()
	for i, n := range named {
		if _, half := n.Tensor.Data().([]uint16); !half {
			continue
		}
		d := model.F32(twins[i].Tensor)
		for j, v := range d {
			d[j] = bf16.ToFloat32(bf16.FromFloat32(v))
		}
	}
	return enginePair(t, w, twin)
}

// enginePair builds the engines of a model held in another form and of
// its float32 twin.
func enginePair(t *testing.T, w, twin *model.Weights) (held, full *Engine) {
	t.Helper()
	var err error
	if held, err = New(w, nil); err != nil {
		t.Fatal(err)
	}
	if full, err = New(twin, nil); err != nil {
		t.Fatal(err)
	}
	return held, full
}

// sameLogits runs a prompt (prefill) and then single tokens (decoding) on
// both engines and fails when their logits differ by more than 1e-5 of the
// largest.
func sameLogits(t *testing.T, half, full *Engine, toks []int, prefill int) {
	t.Helper()
	sh, sf := half.NewState(), full.NewState()
	for p := 0; p < len(toks); {
		n := 1
		if p == 0 {
			n = prefill
		}
		got, err := half.ForwardAll([]*State{sh}, [][]int{toks[p : p+n]})
		if err != nil {
			t.Fatal(err)
		}
		want, err := full.ForwardAll([]*State{sf}, [][]int{toks[p : p+n]})
		if err != nil {
			t.Fatal(err)
		}
		var scale, worst float64
		for i := range want[0] {
			scale = math.Max(scale, math.Abs(float64(want[0][i])))
			worst = math.Max(worst, math.Abs(float64(got[0][i]-want[0][i])))
		}
		if worst > 1e-5*(1+scale) {
			t.Fatalf("positions %d..%d: max |Δlogit| = %g (largest logit %g)", p, p+n-1, worst, scale)
		}
		p += n
	}
}

// heldForms are the forms the engine reads weights in besides float32,
// each with the helper that builds an engine on weights held so and one on
// the same values in float32.
var heldForms = []struct {
	name string
	hold func(t *testing.T, w, twin *model.Weights) (held, full *Engine)
}{{"bfloat16", halfAndRounded}, {"q8_0", quantizedAndDequantized}}

// TestHeldWeightsMatchFloat32 decodes every reference architecture
// (Llama, Qwen3, DeepSeek's latent attention and experts, linear attention,
// GAU) from weights held in bfloat16 or Q8_0 and from the same values in
// float32: the logits agree, so the engine reads each form exactly and only
// the order of the sums differs.
func TestHeldWeightsMatchFloat32(t *testing.T) {
	dirs, err := filepath.Glob("../testdata/reference/*")
	if err != nil || len(dirs) < 4 {
		t.Fatalf("reference fixtures missing (%v)", err)
	}
	for _, form := range heldForms {
		for _, dir := range dirs {
			t.Run(form.name+"/"+filepath.Base(dir), func(t *testing.T) {
				_, w := loadRefFixture(t, dir)
				_, twin := loadRefFixture(t, dir)
				held, full := form.hold(t, w, twin)
				toks := randTokens(rand.New(rand.NewPCG(4, 5)), 16, w.Config.VocabSize)
				sameLogits(t, held, full, toks, 11)
			})
		}
	}
}

// TestHeldLongPrompt covers the prompt path: packedMinRows tokens and
// more, the weights widened or dequantized a few rows at a time into
// several blocks.
func TestHeldLongPrompt(t *testing.T) {
	defer func(n int) { widenRows = n }(widenRows)
	widenRows = 100 // a few rows of each matrix a block
	for _, form := range heldForms {
		for name, c := range configVariants(t) {
			t.Run(form.name+"/"+name, func(t *testing.T) {
				c.MaxPositionEmbeddings = packedMinRows + 40
				c.IntermediateSize = 64 // rows of whole Q8_0 blocks
				w, twin := randomWeights(t, c, 3), randomWeights(t, c, 3)
				held, full := form.hold(t, w, twin)
				toks := randTokens(rand.New(rand.NewPCG(6, 7)), packedMinRows+8, c.VocabSize)
				sameLogits(t, held, full, toks, packedMinRows+5)
			})
		}
	}
}

// TestNewRefusesBFloat16Norm: only embeddings and linear weights may be
// held in bfloat16; a norm so held is refused by name.
func TestNewRefusesBFloat16Norm(t *testing.T) {
	w := randomWeights(t, testConfig(t), 1)
	w.Layers[1].MLPNorm = tensor.New(tensor.WithShape(w.Config.HiddenSize), tensor.WithBacking(make([]uint16, w.Config.HiddenSize)))
	_, err := New(w, nil)
	if err == nil || !strings.Contains(err.Error(), "layer 1 post_attention_layernorm") || !strings.Contains(err.Error(), "bfloat16") {
		t.Fatalf("New with a bfloat16 norm: %v", err)
	}
}
