package ops

import (
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Per-operation benchmarks at the stories15M shape (N = 8·256 tokens,
// C = 288, F = 768, H = 6, V = 32000): forward and backward of one node,
// reported as GFLOP/s of its matrix products.

func rand32(r *rand.Rand, shape ...int) *tensor.Dense {
	d := make([]float32, tensor.Shape(shape).TotalSize())
	for i := range d {
		d[i] = float32(r.NormFloat64() * 0.1)
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}

// benchOp compiles build's output, its projection loss and all input
// gradients, and runs the program b.N times.
func benchOp(b *testing.B, flops float64, inputs []*tensor.Dense, build func(in []*G.Node) (*G.Node, error)) {
	g := G.NewGraph()
	var in G.Nodes
	for i, x := range inputs {
		in = append(in, G.NewTensor(g, tensor.Float32, x.Dims(), G.WithShape(x.Shape()...), G.WithName(string(rune('a'+i))), G.WithValue(x)))
	}
	out, err := build(in)
	if err != nil {
		b.Fatal(err)
	}
	loss := out
	if !out.IsScalar() {
		loss, err = FuncLoss("sum", func(x [][]float64) (float64, [][]float64) {
			g := make([]float64, len(x[0]))
			for i := range g {
				g[i] = 1e-3
			}
			return 0, [][]float64{g}
		}, out)
		if err != nil {
			b.Fatal(err)
		}
	}
	grads, err := G.Grad(loss, in...)
	if err != nil {
		b.Fatal(err)
	}
	prog, locMap, err := G.CompileFunction(g, in, append(G.Nodes{loss}, grads...))
	if err != nil {
		b.Fatal(err)
	}
	m := G.NewTapeMachine(g, G.WithPrecompiled(prog, locMap))
	run := func() {
		m.Reset()
		if err := m.RunAll(); err != nil {
			b.Fatal(err)
		}
	}
	run()
	for b.Loop() {
		run()
	}
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

const benchN, benchC, benchF, benchV = 8 * 256, 288, 768, 32000

func BenchmarkLinearUp(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	benchOp(b, 3*2*benchN*benchC*benchF, []*tensor.Dense{rand32(r, benchN, benchC), rand32(r, benchF, benchC)},
		func(in []*G.Node) (*G.Node, error) { return Linear(in[0], in[1], nil) })
}

func BenchmarkAttention(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	s := AttentionShape{B: 8, T: 256, H: 6, KVH: 6, D: 48}
	flops := float64(6 * 2 * s.B * s.H * s.T * s.T * s.D)
	benchOp(b, flops, []*tensor.Dense{rand32(r, benchN, benchC), rand32(r, benchN, benchC), rand32(r, benchN, benchC)},
		func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], s) })
}

func BenchmarkMeanNLL(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 3))
	targets := make([]int32, benchN)
	weights := make([]float32, benchN)
	for i := range targets {
		targets[i] = int32(r.IntN(benchV))
		weights[i] = 1
	}
	benchOp(b, 3*2*benchN*benchC*benchV, []*tensor.Dense{rand32(r, benchN, benchC), rand32(r, benchV, benchC)},
		func(in []*G.Node) (*G.Node, error) {
			wn := G.NewVector(in[0].Graph(), tensor.Float32, G.WithShape(benchN), G.WithName("weights"),
				G.WithValue(tensor.New(tensor.WithShape(benchN), tensor.WithBacking(weights))))
			return MeanNLL(in[0], in[1], wn, targets, nil)
		})
}

func BenchmarkSwiGLU(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 4))
	benchOp(b, 0, []*tensor.Dense{rand32(r, benchN, benchF), rand32(r, benchN, benchF)},
		func(in []*G.Node) (*G.Node, error) { return SwiGLU(in[0], in[1]) })
}

// BenchmarkHeadFrozen is the fused head's forward pass with ∂L/∂h and a
// frozen output embedding (LoRA's step) at the stories15M shape (2048 rows,
// C = 288, V = 32000) and the qwen05 shape (512 rows, C = 896,
// V = 151936), holding whole rows of logits in chunks of 64 MiB (rows) or
// walking the vocabulary in blocks (blocks, the default), GFLOP/s of its
// two products.
func BenchmarkHeadFrozen(b *testing.B) {
	for _, s := range []struct {
		name    string
		N, C, V int
	}{{"stories15M", benchN, benchC, benchV}, {"qwen05", 512, 896, 151936}} {
		r := rand.New(rand.NewPCG(1, 3))
		h, w := rand32(r, s.N, s.C), rand32(r, s.V, s.C)
		targets := make([]int32, s.N)
		weights := make([]float32, s.N)
		for i := range targets {
			targets[i] = int32(r.IntN(s.V))
			weights[i] = 1
		}
		wv := tensor.New(tensor.WithShape(s.N), tensor.WithBacking(weights))
		for _, rows := range []bool{true, false} {
			name := s.name + "/blocks"
			if rows {
				name = s.name + "/rows"
			}
			b.Run(name, func(b *testing.B) {
				defer func(old bool) { wholeRows = old }(wholeRows)
				wholeRows = rows
				op := &meanNLLOp{headState: headState{targets: targets}, wantH: true}
				for b.Loop() {
					if _, err := op.Do(h, w, wv); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(4*float64(s.N*s.C*s.V)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
