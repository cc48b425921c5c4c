package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestRoPEPartGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 3))
	inv := []float64{1, 0.1}
	for _, l := range []RoPELayout{{Width: 7, Offset: 3, Interleaved: true}, {Width: 6, Offset: 1}, {Width: 4, Interleaved: true, Magnitude: 1.3}} {
		checkOp(t, opCase{fmt.Sprintf("rope %+v", l), []*tensor.Dense{randTensor(r, 1, 2*4, 3*l.Width)}, func(in []*G.Node) (*G.Node, error) {
			return RoPEPart(in[0], 4, 3, l, inv)
		}})
	}
}

// RoPEPart rotates the pairs (off+2i, off+2i+1) of each head by p·θ_i in
// the interleaved layout and leaves the other dimensions alone.
func TestRoPEPartValues(t *testing.T) {
	const T, heads, width, off = 3, 2, 7, 2
	inv := []float64{0.5, 0.05}
	r := rand.New(rand.NewPCG(4, 4))
	x := randTensor(r, 1, T, heads*width)
	g := G.NewGraph()
	xn := G.NewMatrix(g, tensor.Float64, G.WithShape(T, heads*width), G.WithValue(x))
	y, err := RoPEPart(xn, T, heads, RoPELayout{Width: width, Offset: off, Interleaved: true}, inv)
	if err != nil {
		t.Fatal(err)
	}
	if err := G.NewTapeMachine(g).RunAll(); err != nil {
		t.Fatal(err)
	}
	xd, yd := x.Data().([]float64), y.Value().Data().([]float64)
	for p := range T {
		for h := range heads {
			base := p*heads*width + h*width
			want := append([]float64(nil), xd[base:base+width]...)
			for i, f := range inv {
				s, c := math.Sincos(float64(p) * f)
				a, b := want[off+2*i], want[off+2*i+1]
				want[off+2*i], want[off+2*i+1] = a*c-b*s, b*c+a*s
			}
			for j, v := range want {
				if math.Abs(yd[base+j]-v) > 1e-12 {
					t.Fatalf("position %d head %d dim %d: %v, want %v", p, h, j, yd[base+j], v)
				}
			}
		}
	}
	if _, err := RoPEPart(xn, T, heads, RoPELayout{Width: width, Offset: 4, Interleaved: true}, inv); err == nil {
		t.Error("accepted a rotated part that overflows the head")
	}
}

func TestHeadSliceGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 5))
	checkOp(t, opCase{"head slice", []*tensor.Dense{randTensor(r, 1, 5, 3*7)}, func(in []*G.Node) (*G.Node, error) {
		return HeadSlice(in[0], 3, 7, 2, 6)
	}})
}

func TestMLAKeysGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 6))
	const heads, nope, vdim, rope = 3, 4, 5, 2
	checkOp(t, opCase{"mla keys", []*tensor.Dense{randTensor(r, 1, 6, heads*(nope+vdim)), randTensor(r, 1, 6, rope)}, func(in []*G.Node) (*G.Node, error) {
		return MLAKeys(in[0], in[1], heads, nope, vdim)
	}})
}

// Attention with a value width other than the key width and an explicit
// scale (multi-head latent attention).
func TestAttentionValueWidthGradient(t *testing.T) {
	s := AttentionShape{B: 2, T: 4, H: 3, KVH: 3, D: 5, DV: 2, Scale: 0.3}
	r := rand.New(rand.NewPCG(2, 7))
	N := s.B * s.T
	checkOp(t, opCase{"attention dv", []*tensor.Dense{
		randTensor(r, 1, N, s.H*s.D), randTensor(r, 1, N, s.KVH*s.D), randTensor(r, 1, N, s.KVH*s.DV),
	}, func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], s) }})
}

// moeCases are routers of each scoring function and top-k method.
var moeCases = []Router{
	{Experts: 4, TopK: 2, Scoring: "softmax", Method: "greedy", Scale: 1.5},
	{Experts: 6, TopK: 2, Scoring: "softmax", Method: "group_limited_greedy", Groups: 3, TopKGroups: 2, Normalize: true, Scale: 1},
	{Experts: 8, TopK: 3, Scoring: "sigmoid", Method: "noaux_tc", Groups: 4, TopKGroups: 2, Normalize: true, Scale: 2.5},
	{Experts: 4, TopK: 1, Scoring: "sigmoid", Method: "greedy", Normalize: true, Scale: 1},
}

func TestMoEGradient(t *testing.T) {
	const N, C, F = 7, 5, 3
	for ci, rt := range moeCases {
		r := rand.New(rand.NewPCG(3, uint64(ci)))
		inputs := []*tensor.Dense{randTensor(r, 1, N, C), randTensor(r, 1, rt.Experts, C)}
		for range rt.Experts {
			inputs = append(inputs, randTensor(r, 1, F, C), randTensor(r, 1, F, C), randTensor(r, 1, C, F))
		}
		bias := make([]float64, rt.Experts)
		for i := range bias {
			bias[i] = 0.2 * r.NormFloat64()
		}
		load := &ExpertLoad{}
		checkOp(t, opCase{fmt.Sprintf("moe %+v", rt), inputs, func(in []*G.Node) (*G.Node, error) {
			var b *G.Node
			if rt.Method == "noaux_tc" {
				dt := in[0].Dtype()
				var v *tensor.Dense
				if dt == tensor.Float32 {
					d := make([]float32, len(bias))
					for i, x := range bias {
						d[i] = float32(x)
					}
					v = tensor.New(tensor.WithShape(len(d)), tensor.WithBacking(d))
				} else {
					v = tensor.New(tensor.WithShape(len(bias)), tensor.WithBacking(bias))
				}
				b = G.NewVector(in[0].Graph(), dt, G.WithShape(len(bias)), G.WithName("bias"), G.WithValue(v))
			}
			var ex []ExpertWeights
			for e := range rt.Experts {
				ex = append(ex, ExpertWeights{Gate: in[2+3*e], Up: in[3+3*e], Down: in[4+3*e]})
			}
			return MoE(in[0], in[1], b, ex, rt, load)
		}})
		total := 0
		for _, c := range load.Counts {
			total += c
		}
		if load.Tokens != N || total != N*rt.TopK {
			t.Errorf("%+v: load %+v", rt, load)
		}
	}
}

// Low-rank updates inside the fused MoE: gradients of A and B of some
// experts' projections (and of everything else) against finite
// differences; the update changes the output, and a zero scale removes it.
func TestMoEAdapterGradient(t *testing.T) {
	const N, C, F, R = 6, 4, 3, 2
	rt := Router{Experts: 3, TopK: 2, Scoring: "softmax", Method: "greedy", Normalize: true, Scale: 1}
	r := rand.New(rand.NewPCG(5, 5))
	inputs := []*tensor.Dense{randTensor(r, 1, N, C), randTensor(r, 1, rt.Experts, C)}
	for range rt.Experts {
		inputs = append(inputs, randTensor(r, 1, F, C), randTensor(r, 1, F, C), randTensor(r, 1, C, F))
	}
	// Adapters on expert 0's gate and down, and expert 2's up.
	type at struct{ e, i, in, out int }
	ads := []at{{0, 0, C, F}, {0, 2, F, C}, {2, 1, C, F}}
	for _, a := range ads {
		inputs = append(inputs, randTensor(r, 0.5, R, a.in), randTensor(r, 0.5, a.out, R))
	}
	scale := 1.5
	build := func(in []*G.Node) (*G.Node, error) {
		var ex []ExpertWeights
		for e := range rt.Experts {
			ex = append(ex, ExpertWeights{Gate: in[2+3*e], Up: in[3+3*e], Down: in[4+3*e]})
		}
		for k, a := range ads {
			at := 2 + 3*rt.Experts + 2*k
			ex[a.e].Adapters[a.i] = &LowRank{A: in[at], B: in[at+1], Scale: &scale}
		}
		return MoE(in[0], in[1], nil, ex, rt, nil)
	}
	checkOp(t, opCase{"moe adapters", inputs, build})

	c := opCase{"moe adapters", inputs, build}
	p := c.compile(t, tensor.Float64)
	with := p.run(t)
	scale = 0
	without := p.run(t)
	plain := opCase{"moe", inputs[:2+3*rt.Experts], func(in []*G.Node) (*G.Node, error) {
		var ex []ExpertWeights
		for e := range rt.Experts {
			ex = append(ex, ExpertWeights{Gate: in[2+3*e], Up: in[3+3*e], Down: in[4+3*e]})
		}
		return MoE(in[0], in[1], nil, ex, rt, nil)
	}}.compile(t, tensor.Float64).run(t)
	if math.Abs(with-without) < 1e-3 || math.Abs(without-plain) > 1e-12 {
		t.Errorf("projection with the update %v, scale 0 %v, no update %v", with, without, plain)
	}
}

// Route follows its definition on hand-made logits: group masking,
// the correction bias steering the choice but not the weights, and
// normalisation with scaling.
func TestRoute(t *testing.T) {
	rt := Router{Experts: 6, TopK: 2, Scoring: "sigmoid", Method: "noaux_tc", Groups: 3, TopKGroups: 1, Normalize: true, Scale: 2}
	z := []float64{2, 1.9, 0.5, 0.4, -3, 0.3}
	bias := []float64{0, 0, 0.8, 0.8, 0, 0}
	s := make([]float64, 6)
	idx, w := make([]int, 2), make([]float64, 2)
	rt.Route(z, bias, s, idx, w, &RouteScratch{})
	// Group sums of the two choices: s0+s1 < s2+s3+1.6: group 1 wins,
	// though experts 0 and 1 have the largest scores.
	if idx[0] != 2 || idx[1] != 3 {
		t.Fatalf("chose %v", idx)
	}
	sig := func(v float64) float64 { return 1 / (1 + math.Exp(-v)) }
	sum := sig(0.5) + sig(0.4)
	if math.Abs(w[0]-2*sig(0.5)/sum) > 1e-12 || math.Abs(w[1]-2*sig(0.4)/sum) > 1e-12 {
		t.Fatalf("weights %v", w)
	}
	rt = Router{Experts: 4, TopK: 2, Scoring: "softmax", Method: "group_limited_greedy", Groups: 2, TopKGroups: 1, Scale: 3}
	rt.Route([]float64{1, 0, 3, -1}, nil, s[:4], idx, w, &RouteScratch{})
	if idx[0] != 2 || idx[1] != 3 {
		t.Fatalf("group-limited chose %v", idx)
	}
	e := []float64{math.E, 1, math.Pow(math.E, 3), 1 / math.E}
	tot := e[0] + e[1] + e[2] + e[3]
	if math.Abs(w[0]-3*e[2]/tot) > 1e-12 || math.Abs(w[1]-3*e[3]/tot) > 1e-12 {
		t.Fatalf("unnormalised weights %v", w)
	}
	if err := (Router{Experts: 4, TopK: 2, Scoring: "softmax", Method: "noaux_tc", Groups: 4, TopKGroups: 2, Scale: 1}).Validate(); err == nil {
		t.Error("accepted noaux_tc groups of one expert")
	}
}
