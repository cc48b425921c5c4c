package sft

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// engineLoss is the mean completion-token loss computed independently of
// the training graph: the generation engine (its own kernels) feeds each
// encoded row one token at a time and the loss of every masked target is
// read off its logits.
func engineLoss(t *testing.T, base, adapter string, rows []data.Instruction) (float64, int) {
	t.Helper()
	w, err := hf.LoadModel(base)
	if err != nil {
		t.Fatal(err)
	}
	if adapter != "" {
		a, _, _, err := lora.Load(adapter, w)
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Merge(w); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := tokenizer.Load(base)
	if err != nil {
		t.Fatal(err)
	}
	e, err := generate.New(w, tok)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := newEncoder(tok, TemplateAlpaca, false)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var n int
	for _, r := range rows {
		ex, err := enc.encode(r)
		if err != nil {
			t.Fatal(err)
		}
		st := e.NewState()
		for i := 0; i+1 < len(ex.IDs); i++ {
			logits, err := e.Forward([]*generate.State{st}, [][]int{{ex.IDs[i]}})
			if err != nil {
				t.Fatal(err)
			}
			if !ex.Mask[i+1] {
				continue
			}
			l := logits[0]
			mx := math.Inf(-1)
			for _, v := range l {
				mx = math.Max(mx, float64(v))
			}
			var z float64
			for _, v := range l {
				z += math.Exp(float64(v) - mx)
			}
			sum += mx + math.Log(z) - float64(l[ex.IDs[i+1]])
			n++
		}
	}
	return sum / float64(n), n
}

// TestEvaluate scores the base model and a trained adapter on a dataset and
// checks both against the engine's token-by-token losses, and against the
// held-out losses the SFT run itself reported.
func TestEvaluate(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "base")
	writeBase(t, base)
	rows := fromWorld(world.New(5).Instructions(world.Valid, 12))
	evalPath := filepath.Join(root, "eval.arrow")
	if err := data.WriteInstructions(evalPath, rows); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(base, filepath.Join(root, "out"))
	cfg.EvalRows, cfg.EvalData, cfg.EvalMax = nil, evalPath, 0
	cfg.Train.Steps, cfg.Train.EvalEvery = 10, 0
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, adapter string
		runLoss       float64
	}{{"base", "", res.BaseEvalLoss}, {"adapter", res.AdapterDir, res.EvalLoss}} {
		got, err := Evaluate(context.Background(), EvalConfig{Base: base, Adapter: c.adapter, Data: evalPath, BatchSize: 4})
		if err != nil {
			t.Fatal(err)
		}
		want, n := engineLoss(t, base, c.adapter, rows)
		if got.Rows != len(rows) || got.Tokens != n || math.Abs(got.Loss-want) > 1e-4*(1+want) ||
			math.Abs(got.Perplexity-math.Exp(got.Loss)) > 1e-9*got.Perplexity {
			t.Errorf("%s: %+v; want %d rows, %d tokens, loss %.6f (engine)", c.name, got, len(rows), n, want)
		}
		if math.Abs(got.Loss-c.runLoss) > 1e-5*(1+c.runLoss) {
			t.Errorf("%s: loss %.6f, the SFT run reported %.6f", c.name, got.Loss, c.runLoss)
		}
	}
	if res.EvalLoss >= res.BaseEvalLoss {
		t.Errorf("training did not lower the held-out loss (%g → %g): the two cases test the same thing", res.BaseEvalLoss, res.EvalLoss)
	}
	if _, err := Evaluate(context.Background(), EvalConfig{Base: base, Data: filepath.Join(root, "missing.arrow")}); err == nil {
		t.Error("a missing dataset: no error")
	}
}
