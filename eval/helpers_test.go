package eval

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/tokenizer"
)

// modelDir writes a small random model with a byte-level tokenizer and
// returns its directory and weights.
func modelDir(t *testing.T) (string, *model.Weights, *tokenizer.Tokenizer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	w, tok := tinymodel.Weights(t, 5, 512, "<s>", "</s>")
	tinymodel.Save(t, dir, w, tok)
	return dir, w, tok
}

// adapterDir writes an adapter over every linear module of w whose B
// matrices are random (a fresh adapter's are zero, and change nothing).
func adapterDir(t *testing.T, base string, w *model.Weights, seed uint64) string {
	t.Helper()
	cfg := lora.DefaultConfig()
	cfg.Targets, cfg.Seed = []string{"all-linear"}, seed
	a, err := lora.New(w, cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 3))
	for _, m := range a.Modules {
		b := model.F32(m.B)
		for i := range b {
			b[i] = float32(0.05 * r.NormFloat64())
		}
	}
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := a.Save(dir, base, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// engineNLL feeds ids to the generation engine (its own kernels, not the
// training graph) and returns the summed negative log-likelihood, in
// float64, of every token i ≥ 1 for which scored(i) holds, and their
// number.
func engineNLL(t *testing.T, e *generate.Engine, ids []int, scored func(i int) bool) (float64, int) {
	t.Helper()
	if len(ids) < 2 {
		return 0, 0
	}
	out, err := e.ForwardAll([]*generate.State{e.NewState()}, [][]int{ids[:len(ids)-1]})
	if err != nil {
		t.Fatal(err)
	}
	V := len(out[0]) / (len(ids) - 1)
	var sum float64
	var n int
	for i := 1; i < len(ids); i++ {
		if !scored(i) {
			continue
		}
		sum += tinymodel.NLL(out[0][(i-1)*V:i*V], ids[i])
		n++
	}
	return sum, n
}
