package model

import (
	"github.com/gotune/gotune/internal/reference"
	"math"
	"path/filepath"
	"testing"

	"gorgonia.org/gorgonia"
)

// loadFixture reads a reference case and its checkpoint.
func loadFixture(t *testing.T, dir string) (*reference.Case, *Weights) {
	t.Helper()
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := reference.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := Allocate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string][]float32{}
	for _, p := range w.Named() {
		params[p.Name] = F32(p.Tensor)
	}
	if err := f.Fill(params); err != nil {
		t.Fatal(err)
	}
	return f, w
}

// TestReferenceLogits compares logits, target log-probs and the mean NLL
// of small random checkpoints with an independent float64 PyTorch forward
// pass (testdata/gen_reference.py): GQA untied, MQA tied with q/k/v bias,
// GQA with Llama-3 RoPE scaling, and Qwen3 (per-head q/k norms, head_dim ≠
// hidden/heads, GQA, untied); right padding included.
func TestReferenceLogits(t *testing.T) {
	dirs, err := filepath.Glob("testdata/reference/*")
	if err != nil || len(dirs) < 4 {
		t.Fatalf("reference fixtures missing (%v): run /usr/bin/python3 testdata/gen_reference.py", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f, w := loadFixture(t, dir)
			g, err := Build(w, GraphOptions{B: f.Batch, T: f.Seq})
			if err != nil {
				t.Fatal(err)
			}
			N := f.Batch * f.Seq
			if len(f.Tokens) != N || len(f.Targets) != N || len(f.LossWeights) != N {
				t.Fatalf("fixture holds %d/%d/%d tokens/targets/weights for %d rows", len(f.Tokens), len(f.Targets), len(f.LossWeights), N)
			}
			copy(g.In.Tokens, f.Tokens)
			copy(g.In.Targets, f.Targets)
			lw := g.InputVector("weights", N)
			for i, v := range f.LossWeights {
				g.Vector("weights")[i] = float32(v)
			}
			logits, logp, loss := g.Logits(), g.TargetLogProbs(), g.MeanNLL(lw)
			outs := []*gorgonia.Node{logits, logp, loss}
			balance := g.MoEBalanceLoss(1)
			if (balance != nil) != (f.MoEBalance != nil) {
				t.Fatalf("balance loss node %v, reference value %v", balance != nil, f.MoEBalance != nil)
			}
			if balance != nil {
				outs = append(outs, balance)
			}
			p, err := g.Compile(nil, nil, outs...)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(); err != nil {
				t.Fatal(err)
			}
			compareRel(t, "logits", Value32(logits), f.Logits, 1e-4)
			compareRel(t, "target log-probs", Value32(logp), f.Logprobs, 1e-4)
			got := float64(Value32(loss)[0])
			if math.Abs(got-f.Loss) > 1e-4*math.Abs(f.Loss) {
				t.Errorf("mean NLL %.7f, reference %.7f", got, f.Loss)
			}
			t.Logf("mean NLL %.6f (reference %.6f)", got, f.Loss)
			if balance != nil {
				got := float64(Value32(balance)[0])
				if math.Abs(got-*f.MoEBalance) > 1e-5*math.Abs(*f.MoEBalance) {
					t.Errorf("balance loss %.7f, reference %.7f", got, *f.MoEBalance)
				}
				t.Logf("balance loss %.6f (reference %.6f)", got, *f.MoEBalance)
			}
		})
	}
}

// compareRel checks |got − want| ≤ tol·max|want| element by element.
func compareRel(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var scale, worst float64
	for _, v := range want {
		scale = math.Max(scale, math.Abs(float64(v)))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		worst = math.Max(worst, d)
		if d > tol*scale {
			t.Errorf("%s[%d] = %.7g, reference %.7g", what, i, got[i], want[i])
			return
		}
	}
	t.Logf("%s: max relative deviation %.2g", what, worst/scale)
}
