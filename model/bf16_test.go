package model

import (
	"math"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/bf16"
)

// normsOnly trains the norm weights only: every frozen matrix stays in the
// gradient's path (the input gradients of the projections, of the head and
// of the embedding-fed first layer).
func normsOnly(name string) bool {
	return strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, "layernorm.weight")
}

// TestStoreBF16 checks a base held in bfloat16 (Weights.StoreBF16): the
// loss, the log-probabilities and the gradients of the trainable norms
// equal, to float32 rounding, those of the same model whose matrices were
// rounded to bfloat16 and kept in float32 — so the products widen the
// right values and run in float32 — for Llama (tied and untied), Qwen3,
// DeepSeek-V3 (latent attention, shared experts beside float32 routed
// experts) and GAU models; the matrices hold half the memory; float64
// graphs widen them; and a bfloat16 matrix selected for training is
// refused, naming it.
func TestStoreBF16(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"llama/tied", microConfig(true, true, nil)},
		{"llama/untied", microConfig(false, false, nil)},
		{"qwen3", qwen3Micro(false)},
		{"deepseek_v3", deepseekMicro(true, false)},
		{"gau", gauMicro()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			half := scrambled(t, tc.c, 3)
			rounded := scrambled(t, tc.c, 3)
			names, fields := rounded.frozenMatrices()
			for _, f := range fields {
				d := F32(*f)
				for i, v := range d {
					d[i] = bf16.ToFloat32(bf16.FromFloat32(v))
				}
			}
			before := half.Bytes()
			n := half.StoreBF16(nil)
			if n == 0 || half.Bytes() != before-2*int64(n) {
				t.Fatalf("StoreBF16 converted %d values: %d → %d bytes", n, before, half.Bytes())
			}
			for i, name := range names {
				if BF16(half.param(name)) == nil {
					t.Fatalf("%s (matrix %d) not converted", name, i)
				}
			}
			if tc.c.TieWordEmbeddings && half.LMHead != half.Embed {
				t.Fatal("tied embeddings were split")
			}
			run := func(w *Weights) (loss float32, logp []float32, grads [][]float32) {
				g, err := Build(w, GraphOptions{B: 2, T: 6, Trainable: normsOnly})
				if err != nil {
					t.Fatal(err)
				}
				l := g.MeanNLL(g.InputVector("weights", g.B*g.T))
				p, err := g.Compile(l, g.Trainable, g.TargetLogProbs())
				if err != nil {
					t.Fatal(err)
				}
				fillInputs(g, 4)
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
				for _, n := range g.Trainable {
					grads = append(grads, slices.Clone(p.Grad(n)))
				}
				return Value32(l)[0], slices.Clone(Value32(g.TargetLogProbs())), grads
			}
			wantLoss, wantLogp, wantGrads := run(rounded)
			gotLoss, gotLogp, gotGrads := run(half)
			if len(wantGrads) == 0 {
				t.Fatal("no trainable norms")
			}
			if d := relDiff([]float32{gotLoss}, []float32{wantLoss}); d > 1e-5 {
				t.Errorf("loss %v in bfloat16, %v rounded in float32 (%.2g)", gotLoss, wantLoss, d)
			}
			if d := relDiff(gotLogp, wantLogp); d > 1e-5 {
				t.Errorf("log-probs differ by %.2g", d)
			}
			for i := range wantGrads {
				if d := relDiff(gotGrads[i], wantGrads[i]); d > 1e-4 {
					t.Errorf("gradient %d differs by %.2g", i, d)
				}
			}

			// float64 graphs widen the bits.
			g, err := Build(half, GraphOptions{B: 1, T: 3, Dtype: tensor.Float64})
			if err != nil {
				t.Fatal(err)
			}
			if g.Params[names[0]].Value().Dtype() != tensor.Float64 {
				t.Errorf("float64 graph holds %v", g.Params[names[0]].Value().Dtype())
			}
			// Training a bfloat16 matrix is refused by name.
			_, err = Build(half, GraphOptions{B: 1, T: 3, Trainable: allTrainable})
			if err == nil || !strings.Contains(err.Error(), names[0]) || !strings.Contains(err.Error(), "bfloat16") {
				t.Errorf("training a bfloat16 base: %v", err)
			}
		})
	}
}

// param is the tensor of a named parameter.
func (w *Weights) param(name string) *tensor.Dense {
	for _, p := range w.Named() {
		if p.Name == name {
			return p.Tensor
		}
	}
	return nil
}

// Bytes is the memory of all tensors' values.
func (w *Weights) Bytes() int64 {
	var n int64
	seen := map[*tensor.Dense]bool{}
	for _, p := range w.Named() {
		if !seen[p.Tensor] {
			seen[p.Tensor] = true
			n += int64(p.Tensor.MemSize())
		}
	}
	return n
}

// relDiff is max |a − b| / max |b|.
func relDiff(a, b []float32) float64 {
	var d, m float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		m = math.Max(m, math.Abs(float64(b[i])))
	}
	return d / m
}
