package sft

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
)

// TestHeldOutLossIsScoringLoss checks that the held-out losses an SFT run
// reports, of the base model and of the trained adapter, are the
// completion-token losses that finetune's scoring computes for the same
// rows (what `gotune eval --data` prints), so the two never drift apart.
func TestHeldOutLossIsScoringLoss(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "base")
	writeBase(t, base)
	rows := world.New(5).Instructions(world.Valid, 12).Rows()
	evalPath := filepath.Join(root, "eval.arrow")
	if err := data.WriteInstructions(evalPath, rows); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(base, filepath.Join(root, "out"))
	cfg.EvalRows, cfg.EvalData, cfg.EvalMax = nil, evalPath, 0 // held out: the file alone
	cfg.Train.Steps, cfg.Train.EvalEvery = 10, 0
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.EvalLoss >= res.BaseEvalLoss {
		t.Errorf("training did not lower the held-out loss (%g → %g): the two cases test the same thing", res.BaseEvalLoss, res.EvalLoss)
	}
	for _, c := range []struct {
		name, adapter string
		runLoss       float64
	}{{"base", "", res.BaseEvalLoss}, {"adapter", res.AdapterDir, res.EvalLoss}} {
		m, err := finetune.Open(base)
		if err != nil {
			t.Fatal(err)
		}
		if c.adapter != "" {
			if err := m.LoadAdapter(c.adapter); err != nil {
				t.Fatal(err)
			}
		}
		enc, err := finetune.NewInstructionEncoder(m.Tokenizer, cfg.Template, false)
		if err != nil {
			t.Fatal(err)
		}
		ex, err := enc.EncodeAll(rows, evalPath)
		if err != nil {
			t.Fatal(err)
		}
		opts, err := finetune.ScoringBatchOptions(4, cfg.MaxLen, cfg.Truncation, m.Weights.Config, m.Tokenizer.PAD())
		if err != nil {
			t.Fatal(err)
		}
		b, _, err := data.NewBatcher(ex, opts)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.MeanLoss(context.Background(), "score", b.Epoch(0))
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-c.runLoss) > 1e-5*(1+c.runLoss) {
			t.Errorf("%s: loss %.6f, the SFT run reported %.6f", c.name, got, c.runLoss)
		}
	}
}
