package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

func TestLinearAttentionGradient(t *testing.T) {
	// The last case spans two blocks of the chunked kernels (linChunk).
	for _, s := range []AttentionShape{{B: 2, T: 5, H: 2, KVH: 2, D: 3}, {B: 1, T: 6, H: 4, KVH: 2, D: 2}, {B: 1, T: linChunk + 7, H: 2, KVH: 1, D: 2}} {
		r := rand.New(rand.NewPCG(5, uint64(s.H)))
		N := s.B * s.T
		checkOp(t, opCase{fmt.Sprintf("linear attention %+v", s), []*tensor.Dense{
			randTensor(r, 1, N, s.H*s.D), randTensor(r, 1, N, s.KVH*s.D), randTensor(r, 1, N, s.KVH*s.D),
		}, func(in []*G.Node) (*G.Node, error) { return LinearAttention(in[0], in[1], in[2], s) }})
	}
}

// runForward evaluates build on float64 inputs and returns its output.
func runForward(t *testing.T, inputs []*tensor.Dense, build func(in []*G.Node) (*G.Node, error)) []float64 {
	t.Helper()
	g := G.NewGraph()
	var in G.Nodes
	for i, x := range inputs {
		in = append(in, G.NewTensor(g, tensor.Float64, x.Dims(), G.WithShape(x.Shape()...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(x)))
	}
	out, err := build(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := G.NewTapeMachine(g).RunAll(); err != nil {
		t.Fatal(err)
	}
	return out.Value().Data().([]float64)
}

// The causal cumulative-sum form equals the explicit masked quadratic form
// of Katharopoulos et al. eq. 4: V'_i = Σ_{j≤i} φ(q_i)·φ(k_j) v_j / Σ_{j≤i} φ(q_i)·φ(k_j).
func TestLinearAttentionMatchesQuadraticForm(t *testing.T) {
	s := AttentionShape{B: 2, T: 2*linChunk + 9, H: 4, KVH: 2, D: 5} // three blocks
	r := rand.New(rand.NewPCG(6, 6))
	N := s.B * s.T
	q, k, v := randTensor(r, 1, N, s.H*s.D), randTensor(r, 1, N, s.KVH*s.D), randTensor(r, 1, N, s.KVH*s.D)
	got := runForward(t, []*tensor.Dense{q, k, v}, func(in []*G.Node) (*G.Node, error) {
		return LinearAttention(in[0], in[1], in[2], s)
	})
	qd, kd, vd := q.Data().([]float64), k.Data().([]float64), v.Data().([]float64)
	phi := func(x float64) float64 {
		if x > 0 {
			return x + 1
		}
		return math.Exp(x)
	}
	D, ldq, ldk := s.D, s.H*s.D, s.KVH*s.D
	for b := range s.B {
		for h := range s.H {
			kvh := h / (s.H / s.KVH)
			for i := range s.T {
				// The full (T×T) similarity matrix, masked to j ≤ i.
				num := make([]float64, D)
				var den float64
				for j := range s.T {
					if j > i {
						continue
					}
					var sim float64
					for d := range D {
						sim += phi(qd[(b*s.T+i)*ldq+h*D+d]) * phi(kd[(b*s.T+j)*ldk+kvh*D+d])
					}
					den += sim
					for e := range D {
						num[e] += sim * vd[(b*s.T+j)*ldk+kvh*D+e]
					}
				}
				for e := range D {
					want, g := num[e]/den, got[(b*s.T+i)*ldq+h*D+e]
					if math.Abs(want-g) > 1e-12*math.Max(1, math.Abs(want)) {
						t.Fatalf("b %d head %d position %d dim %d: cumulative %v, quadratic %v", b, h, i, e, g, want)
					}
				}
			}
		}
	}
	if _, err := LinearAttention(nil, nil, nil, AttentionShape{B: 1, T: 2, H: 2, KVH: 2, D: 2, DV: 3}); err == nil {
		t.Error("accepted a value width other than the key width")
	}
}

// gauInvFreq is a RoPE frequency table for the tests.
func gauInvFreq(S int) []float64 {
	inv := make([]float64, S/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(10000, float64(2*i)/float64(S))
	}
	return inv
}

func gauInputs(r *rand.Rand, s GAUShape) []*tensor.Dense {
	N := s.B * s.T
	gamma := randTensor(r, 0.5, 4*s.S)
	for i, x := range gamma.Data().([]float64) {
		gamma.Data().([]float64)[i] = 1 + x
	}
	return []*tensor.Dense{randTensor(r, 1, N, s.E), randTensor(r, 1, N, s.E), randTensor(r, 1.5, N, s.S), gamma, randTensor(r, 0.3, 4*s.S)}
}

func TestGAUGradient(t *testing.T) {
	for _, s := range []GAUShape{{B: 2, T: 5, E: 3, S: 4, Chunk: 2}, {B: 1, T: 4, E: 2, S: 2, Chunk: 8}} {
		r := rand.New(rand.NewPCG(8, uint64(s.Chunk)))
		checkOp(t, opCase{fmt.Sprintf("gau %+v", s), gauInputs(r, s), func(in []*G.Node) (*G.Node, error) {
			return GAU(in[0], in[1], in[2], in[3], in[4], s, gauInvFreq(s.S))
		}})
	}
}

// gauExplicit is the Gated Attention Unit written as the full (T×T)
// masked form of its definition: ReLU² inside a chunk, the linear kernel
// q'·k' across chunks; with chunk ≥ T it is the quadratic GAU.
func gauExplicit(in []*tensor.Dense, s GAUShape, invFreq []float64) []float64 {
	u, v, z := in[0].Data().([]float64), in[1].Data().([]float64), in[2].Data().([]float64)
	gamma, beta := in[3].Data().([]float64), in[4].Data().([]float64)
	silu := func(x float64) float64 { return x / (1 + math.Exp(-x)) }
	E, S := s.E, s.S
	proj := func(n, j int) []float64 {
		out := make([]float64, S)
		for d := range S {
			out[d] = silu(z[n*S+d])*gamma[j*S+d] + beta[j*S+d]
		}
		if j < 2 {
			p := float64(n % s.T)
			for i, f := range invFreq {
				sn, c := math.Sincos(p * f)
				a, b := out[i], out[i+S/2]
				out[i], out[i+S/2] = a*c-b*sn, b*c+a*sn
			}
		}
		return out
	}
	dot := func(a, b []float64) float64 {
		var x float64
		for i := range a {
			x += a[i] * b[i]
		}
		return x
	}
	out := make([]float64, s.B*s.T*E)
	C := float64(s.Chunk)
	for b := range s.B {
		for i := range s.T {
			n := b*s.T + i
			for j := 0; j <= i; j++ {
				m := b*s.T + j
				var w float64
				if i/s.Chunk == j/s.Chunk {
					w = math.Pow(math.Max(dot(proj(n, 0), proj(m, 1))/C, 0), 2)
				} else {
					w = dot(proj(n, 2), proj(m, 3)) / C
				}
				for e := range E {
					out[n*E+e] += w * silu(v[m*E+e])
				}
			}
			for e := range E {
				out[n*E+e] *= silu(u[n*E+e])
			}
		}
	}
	return out
}

// The chunked form (running sums across chunks) equals the explicit T×T
// form, for several chunk lengths; with one chunk (C ≥ T) that form is the
// quadratic GAU, where the paper's FLASH and FLASH-Quad agree.
func TestGAUChunkedMatchesExplicit(t *testing.T) {
	for _, chunk := range []int{1, 3, 4, 11, 16} {
		s := GAUShape{B: 2, T: 11, E: 5, S: 6, Chunk: chunk}
		r := rand.New(rand.NewPCG(9, uint64(chunk)))
		in := gauInputs(r, s)
		inv := gauInvFreq(s.S)
		got := runForward(t, in, func(n []*G.Node) (*G.Node, error) { return GAU(n[0], n[1], n[2], n[3], n[4], s, inv) })
		want := gauExplicit(in, s, inv)
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12*math.Max(1, math.Abs(want[i])) {
				t.Fatalf("chunk %d: output %d = %v, explicit %v", chunk, i, got[i], want[i])
			}
		}
	}
	if _, err := GAU(nil, nil, nil, nil, nil, GAUShape{B: 1, T: 2, E: 2, S: 3, Chunk: 2}, gauInvFreq(3)); err == nil {
		t.Error("accepted an odd shared width (RoPE needs pairs)")
	}
}
