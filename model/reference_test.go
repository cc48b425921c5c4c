package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"gorgonia.org/gorgonia"
)

// fixture is one case written by testdata/gen_reference.py.
type fixture struct {
	Batch, Seq  int
	Tokens      []int32
	Targets     []int32
	LossWeights []float64 `json:"loss_weights"`
	Tensors     []struct {
		Name   string
		Shape  []int
		Offset int
	}
	Logits, Logprobs struct {
		Shape  []int
		Offset int
	}
	Loss float64
	// MoEBalance is the sequence-level balance loss (alpha 1) summed over
	// the mixture-of-experts layers; absent without experts.
	MoEBalance *float64 `json:"moe_balance"`

	floats []float32 // fixture.bin
}

func (f *fixture) slice(offset int, shape []int) ([]float32, error) {
	n := 1
	for _, s := range shape {
		n *= s
	}
	if offset < 0 || offset+n > len(f.floats) {
		return nil, fmt.Errorf("array at %d of %d floats is outside fixture.bin (%d floats)", offset, n, len(f.floats))
	}
	return f.floats[offset : offset+n], nil
}

// loadFixture reads a reference case and its checkpoint.
func loadFixture(t *testing.T, dir string) (*fixture, *Weights) {
	t.Helper()
	cfg, err := LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "fixture.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f fixture
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	bin, err := os.ReadFile(filepath.Join(dir, "fixture.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.floats = make([]float32, len(bin)/4)
	for i := range f.floats {
		f.floats[i] = math.Float32frombits(binary.LittleEndian.Uint32(bin[4*i:]))
	}
	w, err := Allocate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string][]float32{}
	for _, tn := range f.Tensors {
		d, err := f.slice(tn.Offset, tn.Shape)
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, tn.Name, err)
		}
		byName[tn.Name] = d
	}
	for _, p := range w.Named() {
		d, ok := byName[p.Name]
		if !ok {
			t.Fatalf("%s: fixture lacks %s", dir, p.Name)
		}
		if len(d) != p.Tensor.Shape().TotalSize() {
			t.Fatalf("%s: %s has %d values, model wants %v", dir, p.Name, len(d), p.Tensor.Shape())
		}
		copy(F32(p.Tensor), d)
		delete(byName, p.Name)
	}
	for name := range byName {
		t.Fatalf("%s: the model has no parameter %s", dir, name)
	}
	return &f, w
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
			wantLogits, err := f.slice(f.Logits.Offset, f.Logits.Shape)
			if err != nil {
				t.Fatal(err)
			}
			wantLogp, err := f.slice(f.Logprobs.Offset, f.Logprobs.Shape)
			if err != nil {
				t.Fatal(err)
			}
			compareRel(t, "logits", Value32(logits), wantLogits, 1e-4)
			compareRel(t, "target log-probs", Value32(logp), wantLogp, 1e-4)
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
