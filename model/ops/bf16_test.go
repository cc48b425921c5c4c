package ops

import (
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/bf16"
)

// TestBF16Products checks every product that reads a BF16Matrix —
// Embedding, Linear, Linear's input gradient (MatMul), MeanNLL and
// LogProbs with their gradients — widened two rows at a time (several
// blocks; the head also in vocabulary blocks on one lane and on three),
// against the same graph on float32 tensors holding the rounded
// values.
func TestBF16Products(t *testing.T) {
	defer func(old int) { widenElems = old }(widenElems)
	widenElems = 12 // two rows of six or seven columns per block
	defer func(old int) { chunkElems = old }(chunkElems)
	chunkElems = 20 // two rows of logits per chunk
	headLayouts(t, 7, bf16Products)
}

func bf16Products(t *testing.T) {
	const N, K, M, V = 5, 6, 7, 9
	r := rand.New(rand.NewPCG(4, 2))
	bits := func(n int) []uint16 {
		b := make([]uint16, n)
		for i := range b {
			b[i] = bf16.FromFloat32(float32(r.NormFloat64()))
		}
		return b
	}
	table, w, head := bits(V*K), bits(M*K), bits(V*M)
	x0 := make([]float32, N*K)
	for i := range x0 {
		x0[i] = float32(r.NormFloat64())
	}
	tokens, targets := []int32{3, 8, 0, 3, 5}, []int32{1, 1, 7, 0, 8}
	widened := func(b []uint16, rows, cols int) *tensor.Dense {
		d := make([]float32, len(b))
		for i, h := range b {
			d[i] = bf16.ToFloat32(h)
		}
		return tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(d))
	}
	run := func(half bool) (losses []float32, grad []float32) {
		g := G.NewGraph()
		matrix := func(name string, b []uint16, rows, cols int) *G.Node {
			var v G.Value = widened(b, rows, cols)
			if half {
				m, err := NewBF16Matrix(rows, cols, b)
				if err != nil {
					t.Fatal(err)
				}
				v = m
			}
			return G.NewMatrix(g, tensor.Float32, G.WithShape(rows, cols), G.WithName(name), G.WithValue(v))
		}
		x := G.NewMatrix(g, tensor.Float32, G.WithShape(N, K), G.WithName("x0"),
			G.WithValue(tensor.New(tensor.WithShape(N, K), tensor.WithBacking(append([]float32(nil), x0...)))))
		emb, err := Embedding(matrix("table", table, V, K), tokens)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := Add(x, emb)
		if err != nil {
			t.Fatal(err)
		}
		h, err := Linear(sum, matrix("w", w, M, K), nil)
		if err != nil {
			t.Fatal(err)
		}
		weights := G.NewVector(g, tensor.Float32, G.WithShape(N), G.WithName("weights"),
			G.WithValue(tensor.New(tensor.WithShape(N), tensor.WithBacking([]float32{1, 0.5, 2, 1, 0}))))
		hw := matrix("head", head, V, M)
		nll, err := MeanNLL(h, hw, weights, targets, nil)
		if err != nil {
			t.Fatal(err)
		}
		logp, err := LogProbs(h, hw, targets, nil)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := FuncLoss("sum", func(in [][]float64) (float64, [][]float64) {
			s := in[0][0]
			d := make([]float64, len(in[1]))
			for i, v := range in[1] {
				s += float64(i+1) * v
				d[i] = float64(i + 1)
			}
			return s, [][]float64{{1}, d}
		}, nll, logp)
		if err != nil {
			t.Fatal(err)
		}
		grads, err := G.Grad(loss, x)
		if err != nil {
			t.Fatal(err)
		}
		prog, locMap, err := G.CompileFunction(g, G.Nodes{x}, G.Nodes{loss, nll, grads[0]})
		if err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g, G.WithPrecompiled(prog, locMap))
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		l, _ := scalar(loss.Value())
		n, _ := scalar(nll.Value())
		return []float32{float32(l), float32(n)}, append([]float32(nil), grads[0].Value().Data().([]float32)...)
	}
	wantLoss, wantGrad := run(false)
	gotLoss, gotGrad := run(true)
	for i := range wantLoss {
		if math.Abs(float64(gotLoss[i]-wantLoss[i])) > 1e-5*math.Abs(float64(wantLoss[i])) {
			t.Errorf("loss %d: %v on bfloat16, %v on float32", i, gotLoss[i], wantLoss[i])
		}
	}
	for i := range wantGrad {
		if math.Abs(float64(gotGrad[i]-wantGrad[i])) > 1e-4 {
			t.Errorf("gradient %d: %v on bfloat16, %v on float32", i, gotGrad[i], wantGrad[i])
		}
	}
	// A bfloat16 weight in a float64 graph, or transposed, is an error.
	m, _ := NewBF16Matrix(M, K, w)
	if _, err := weightOf[float64](m, "w"); err == nil {
		t.Error("bfloat16 weights in a float64 graph were accepted")
	}
	if _, err := (&matmulOp{transB: true}).Do(widened(bits(N*K), N, K), m); err == nil {
		t.Error("a transposed bfloat16 operand was accepted")
	}
	if _, err := NewBF16Matrix(2, 3, make([]uint16, 5)); err == nil {
		t.Error("5 values were taken for a 2×3 matrix")
	}
}
