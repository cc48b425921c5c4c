package ops

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/model/ops/internal/vec"
)

// randTensor is a float64 tensor of normal values times scale.
func randTensor(r *rand.Rand, scale float64, shape ...int) *tensor.Dense {
	n := tensor.Shape(shape).TotalSize()
	d := make([]float64, n)
	for i := range d {
		d[i] = r.NormFloat64() * scale
	}
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(d))
}

// opCase is one operation under test: inputs (float64) and how to build
// its output from input nodes.
type opCase struct {
	name   string
	inputs []*tensor.Dense
	build  func(in []*G.Node) (*G.Node, error)
}

// program compiles loss and its gradients with respect to every input.
type program struct {
	m     G.VM
	loss  *G.Node
	grads G.Nodes
	in    G.Nodes
}

// compile builds the case in dtype dt. Non-scalar outputs are reduced to
// a scalar by a fixed random projection so every output element matters.
func (c opCase) compile(t *testing.T, dt tensor.Dtype) *program {
	t.Helper()
	g := G.NewGraph()
	var in G.Nodes
	for i, x := range c.inputs {
		v := x
		if dt == tensor.Float32 {
			d := make([]float32, x.Shape().TotalSize())
			for j, f := range x.Data().([]float64) {
				d[j] = float32(f)
			}
			v = tensor.New(tensor.WithShape(x.Shape()...), tensor.WithBacking(d))
		}
		in = append(in, G.NewTensor(g, dt, x.Dims(), G.WithShape(x.Shape()...), G.WithName(fmt.Sprintf("in%d", i)), G.WithValue(v)))
	}
	out, err := c.build(in)
	if err != nil {
		t.Fatalf("%s: build: %v", c.name, err)
	}
	loss := out
	if !out.IsScalar() {
		r := rand.New(rand.NewPCG(7, 7))
		proj := make([]float64, out.Shape().TotalSize())
		for i := range proj {
			proj[i] = r.NormFloat64()
		}
		loss, err = FuncLoss("projection", func(x [][]float64) (float64, [][]float64) {
			var s float64
			for i, v := range x[0] {
				s += proj[i] * v
			}
			return s, [][]float64{proj}
		}, out)
		if err != nil {
			t.Fatal(err)
		}
	}
	grads, err := G.Grad(loss, in...)
	if err != nil {
		t.Fatalf("%s: grad: %v", c.name, err)
	}
	outs := append(G.Nodes{loss}, grads...)
	prog, locMap, err := G.CompileFunction(g, in, outs)
	if err != nil {
		t.Fatalf("%s: compile: %v", c.name, err)
	}
	return &program{m: G.NewTapeMachine(g, G.WithPrecompiled(prog, locMap)), loss: loss, grads: grads, in: in}
}

func (p *program) run(t *testing.T) float64 {
	t.Helper()
	p.m.Reset()
	if err := p.m.RunAll(); err != nil {
		t.Fatal(err)
	}
	v, err := scalar(p.loss.Value())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// grad copies the gradient of input i as float64.
func (p *program) grad(i int) []float64 {
	switch d := p.grads[i].Value().Data().(type) {
	case []float32:
		out := make([]float64, len(d))
		for j, v := range d {
			out[j] = float64(v)
		}
		return out
	case []float64:
		return append([]float64(nil), d...)
	}
	panic("unexpected gradient type")
}

// checkOp compares every analytic gradient of the float64 program with
// central finite differences, and the float32 program's loss and
// gradients with the float64 ones.
func checkOp(t *testing.T, c opCase) {
	t.Helper()
	p := c.compile(t, tensor.Float64)
	// Run twice: the buffers an operation reuses across runs must be
	// overwritten, not accumulated into, by the second.
	p.run(t)
	loss := p.run(t)
	var analytic [][]float64
	for i := range c.inputs {
		analytic = append(analytic, p.grad(i))
	}
	const eps = 1e-5
	for i, x := range c.inputs {
		data := p.in[i].Value().Data().([]float64)
		_ = x
		for j := range data {
			orig := data[j]
			data[j] = orig + eps
			lp := p.run(t)
			data[j] = orig - eps
			lm := p.run(t)
			data[j] = orig
			num := (lp - lm) / (2 * eps)
			if d := math.Abs(num - analytic[i][j]); d > 1e-6*math.Max(1, math.Abs(num)) {
				t.Errorf("%s: d/d input %d [%d]: analytic %.9g, finite difference %.9g", c.name, i, j, analytic[i][j], num)
			}
		}
	}

	p32 := c.compile(t, tensor.Float32)
	p32.run(t)
	loss32 := p32.run(t)
	if d := math.Abs(loss32 - loss); d > 1e-4*math.Max(1, math.Abs(loss)) {
		t.Errorf("%s: float32 loss %.7g, float64 %.7g", c.name, loss32, loss)
	}
	for i := range c.inputs {
		g32 := p32.grad(i)
		scale := 1e-3
		for _, v := range analytic[i] {
			scale = math.Max(scale, math.Abs(v))
		}
		for j, v := range g32 {
			if math.Abs(v-analytic[i][j]) > 2e-4*scale {
				t.Errorf("%s: float32 gradient of input %d [%d] = %.7g, float64 %.7g", c.name, i, j, v, analytic[i][j])
				break
			}
		}
	}
}

func TestEmbeddingGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	tokens := []int32{3, 0, 3, 5, 1, 5, 5}
	checkOp(t, opCase{"embedding", []*tensor.Dense{randTensor(r, 1, 6, 4)}, func(in []*G.Node) (*G.Node, error) {
		return Embedding(in[0], tokens)
	}})
}

func TestRMSNormGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	w := randTensor(r, 0.3, 7)
	for i, v := range w.Data().([]float64) {
		w.Data().([]float64)[i] = 1 + v
	}
	checkOp(t, opCase{"rmsnorm", []*tensor.Dense{randTensor(r, 1, 5, 7), w}, func(in []*G.Node) (*G.Node, error) {
		return RMSNorm(in[0], in[1], 1e-5)
	}})
}

// HeadRMSNorm normalises every head of a row on its own with one shared
// weight: its gradients (x and the weight summed over heads) against
// finite differences, and its output against RMSNorm of each head alone.
func TestHeadRMSNormGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 8))
	const N, heads, D = 5, 3, 4
	w := randTensor(r, 0.3, D)
	for i, v := range w.Data().([]float64) {
		w.Data().([]float64)[i] = 1 + v
	}
	x := randTensor(r, 1, N, heads*D)
	checkOp(t, opCase{"head rmsnorm", []*tensor.Dense{x, w}, func(in []*G.Node) (*G.Node, error) {
		return HeadRMSNorm(in[0], in[1], 1e-5, heads)
	}})

	// Forward: each (row, head) block equals x̂·w of that block alone.
	xd, wd := x.Data().([]float64), w.Data().([]float64)
	g := G.NewGraph()
	xn := G.NewTensor(g, tensor.Float64, 2, G.WithShape(N, heads*D), G.WithName("x"), G.WithValue(x))
	wn := G.NewTensor(g, tensor.Float64, 1, G.WithShape(D), G.WithName("w"), G.WithValue(w))
	y, err := HeadRMSNorm(xn, wn, 1e-5, heads)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	got := y.Value().Data().([]float64)
	for n := range N * heads {
		blk := xd[n*D : (n+1)*D]
		var ss float64
		for _, v := range blk {
			ss += v * v
		}
		rs := 1 / math.Sqrt(ss/D+1e-5)
		for i, v := range blk {
			if want := v * rs * wd[i]; math.Abs(got[n*D+i]-want) > 1e-12 {
				t.Fatalf("block %d [%d] = %g, want %g", n, i, got[n*D+i], want)
			}
		}
	}
	if _, err := HeadRMSNorm(xn, wn, 1e-5, 2); err == nil {
		t.Error("accepted x of 3 heads as 2 heads of the weight")
	}
}

func TestRoPEGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 3))
	inv := []float64{1, 0.1, 0.01}
	checkOp(t, opCase{"rope", []*tensor.Dense{randTensor(r, 1, 2*4, 2*6)}, func(in []*G.Node) (*G.Node, error) {
		return RoPE(in[0], 4, 2, inv)
	}})
}

func TestAttentionGradient(t *testing.T) {
	for _, s := range []AttentionShape{
		{B: 2, T: 4, H: 2, KVH: 2, D: 3}, // MHA
		{B: 2, T: 5, H: 4, KVH: 2, D: 2}, // GQA
		{B: 1, T: 4, H: 3, KVH: 1, D: 4}, // MQA
	} {
		r := rand.New(rand.NewPCG(1, uint64(s.H*10+s.KVH)))
		N := s.B * s.T
		checkOp(t, opCase{fmt.Sprintf("attention %+v", s), []*tensor.Dense{
			randTensor(r, 1, N, s.H*s.D), randTensor(r, 1, N, s.KVH*s.D), randTensor(r, 1, N, s.KVH*s.D),
		}, func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], s) }})
	}
}

// TestAttentionIsCausal checks that changing a later token's key and
// value leaves earlier outputs untouched.
func TestAttentionIsCausal(t *testing.T) {
	s := AttentionShape{B: 1, T: 6, H: 2, KVH: 1, D: 4}
	r := rand.New(rand.NewPCG(3, 3))
	q, k, v := randTensor(r, 1, 6, 8), randTensor(r, 1, 6, 4), randTensor(r, 1, 6, 4)
	run := func() []float64 {
		g := G.NewGraph()
		qn := G.NewMatrix(g, tensor.Float64, G.WithShape(6, 8), G.WithName("q"), G.WithValue(q))
		kn := G.NewMatrix(g, tensor.Float64, G.WithShape(6, 4), G.WithName("k"), G.WithValue(k))
		vn := G.NewMatrix(g, tensor.Float64, G.WithShape(6, 4), G.WithName("v"), G.WithValue(v))
		o, err := Attention(qn, kn, vn, s)
		if err != nil {
			t.Fatal(err)
		}
		m := G.NewTapeMachine(g)
		if err := m.RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float64(nil), o.Value().Data().([]float64)...)
	}
	before := run()
	k.Data().([]float64)[5*4] += 3
	v.Data().([]float64)[5*4+1] -= 2
	after := run()
	for i := range 5 * 8 {
		if before[i] != after[i] {
			t.Fatalf("output %d of an earlier position changed: %v → %v", i, before[i], after[i])
		}
	}
	if before[5*8] == after[5*8] && before[5*8+1] == after[5*8+1] {
		t.Fatal("last position did not see its own key/value change")
	}
}

func TestSwiGLUGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 4))
	checkOp(t, opCase{"swiglu", []*tensor.Dense{randTensor(r, 2, 3, 5), randTensor(r, 1, 3, 5)}, func(in []*G.Node) (*G.Node, error) {
		return SwiGLU(in[0], in[1])
	}})
}

func TestLinearGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 5))
	checkOp(t, opCase{"linear", []*tensor.Dense{randTensor(r, 1, 4, 3), randTensor(r, 1, 5, 3)}, func(in []*G.Node) (*G.Node, error) {
		return Linear(in[0], in[1], nil)
	}})
	checkOp(t, opCase{"linear+bias", []*tensor.Dense{randTensor(r, 1, 4, 3), randTensor(r, 1, 5, 3), randTensor(r, 1, 5)}, func(in []*G.Node) (*G.Node, error) {
		return Linear(in[0], in[1], in[2])
	}})
}

func TestMatMulGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 6))
	for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		as, bs := []int{3, 4}, []int{4, 2}
		if tr[0] {
			as = []int{4, 3}
		}
		if tr[1] {
			bs = []int{2, 4}
		}
		checkOp(t, opCase{fmt.Sprintf("matmul %v", tr), []*tensor.Dense{randTensor(r, 1, as...), randTensor(r, 1, bs...)}, func(in []*G.Node) (*G.Node, error) {
			return MatMul(in[0], in[1], tr[0], tr[1])
		}})
	}
}

func TestAddGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 7))
	checkOp(t, opCase{"add", []*tensor.Dense{randTensor(r, 1, 3, 4), randTensor(r, 1, 3, 4)}, func(in []*G.Node) (*G.Node, error) {
		return Add(in[0], in[1])
	}})
}

// headLayouts runs f under each way the fused head cuts its work: its
// defaults on these small shapes (whole rows, one vocabulary block),
// vocabulary blocks of five rows in chunks of two rows on one lane, and
// the same dealt to three lanes (runBlocks' per-core lanes, whose online
// sums and partial products are merged).
func headLayouts(t *testing.T, C int, f func(t *testing.T)) {
	for _, l := range []struct {
		name         string
		block, lanes int
	}{{"defaults", 0, 0}, {"blocks, 1 lane", 5, 1}, {"blocks, 3 lanes", 5, 3}} {
		t.Run(l.name, func(t *testing.T) {
			defer func(c, b, n int) { chunkElems, blockElems, laneOverride = c, b, n }(chunkElems, blockElems, laneOverride)
			if l.block > 0 {
				blockElems, laneOverride, chunkElems = l.block*C, l.lanes, 2*l.block*l.lanes
			}
			f(t)
		})
	}
}

func TestLogProbsGradient(t *testing.T) {
	defer func(old int) { chunkElems = old }(chunkElems)
	chunkElems = 38 // two rows per chunk
	headLayouts(t, 4, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 8))
		targets := []int32{2, 0, 16, 16, 1}
		stats := &TokenStats{MeanLogit: make([]float32, 5), Entropy: make([]float32, 5)}
		checkOp(t, opCase{"logprobs", []*tensor.Dense{randTensor(r, 1, 5, 4), randTensor(r, 1, 19, 4)}, func(in []*G.Node) (*G.Node, error) {
			return LogProbs(in[0], in[1], targets, stats)
		}})
	})
}

func TestMeanNLLGradient(t *testing.T) {
	defer func(old int) { chunkElems = old }(chunkElems)
	chunkElems = 38 // two rows per chunk
	headLayouts(t, 4, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 9))
		targets := []int32{2, 0, 16, 16, 1}
		weights := tensor.New(tensor.WithShape(5), tensor.WithBacking([]float64{1, 0, 2, 0.5, 1}))
		checkOp(t, opCase{"meannll", []*tensor.Dense{randTensor(r, 1, 5, 4), randTensor(r, 1, 19, 4)}, func(in []*G.Node) (*G.Node, error) {
			wn := G.NewVector(in[0].Graph(), in[0].Dtype(), G.WithShape(5), G.WithName("weights"), G.WithValue(convert(weights, in[0].Dtype())))
			return MeanNLL(in[0], in[1], wn, targets, nil)
		}})
		// Scaled by an upstream gradient ≠ 1 (the loss inside a larger one).
		checkOp(t, opCase{"meannll scaled", []*tensor.Dense{randTensor(r, 1, 5, 4), randTensor(r, 1, 19, 4)}, func(in []*G.Node) (*G.Node, error) {
			wn := G.NewVector(in[0].Graph(), in[0].Dtype(), G.WithShape(5), G.WithName("weights"), G.WithValue(convert(weights, in[0].Dtype())))
			l, err := MeanNLL(in[0], in[1], wn, targets, nil)
			if err != nil {
				return nil, err
			}
			return FuncLoss("cube", func(x [][]float64) (float64, [][]float64) {
				return x[0][0] * x[0][0] * x[0][0], [][]float64{{3 * x[0][0] * x[0][0]}}
			}, l)
		}})
		// A frozen output embedding (LoRA): only ∂L/∂h, computed in the
		// forward pass over vocabulary blocks with the online log-sum-exp.
		frozen := randTensor(r, 1, 19, 4)
		checkOp(t, opCase{"meannll frozen head", []*tensor.Dense{randTensor(r, 1, 5, 4)}, func(in []*G.Node) (*G.Node, error) {
			g, dt := in[0].Graph(), in[0].Dtype()
			wn := G.NewVector(g, dt, G.WithShape(5), G.WithName("weights"), G.WithValue(convert(weights, dt)))
			head := G.NewMatrix(g, dt, G.WithShape(19, 4), G.WithName("head"), G.WithValue(convert(frozen, dt)))
			l, err := MeanNLL(in[0], head, wn, targets, nil)
			if err == nil {
				l.Op().(*meanNLLOp).wantW = false // as Plan sets it for a program without ∂L/∂W
			}
			return l, err
		}})
	})
}

func convert(t *tensor.Dense, dt tensor.Dtype) *tensor.Dense {
	if dt == tensor.Float64 {
		return t.Clone().(*tensor.Dense)
	}
	src := t.Data().([]float64)
	d := make([]float32, len(src))
	for i, v := range src {
		d[i] = float32(v)
	}
	return tensor.New(tensor.WithShape(t.Shape()...), tensor.WithBacking(d))
}

// TestHeadMatchesDirect compares LogProbs, MeanNLL and the token
// statistics with a direct computation from full logits, over several
// chunks of rows.
func TestHeadMatchesDirect(t *testing.T) {
	defer func(old int) { chunkElems = old }(chunkElems)
	chunkElems = 200
	headLayouts(t, 3, headMatchesDirect)
}

func headMatchesDirect(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	N, C, V := 9, 3, 41 // by default 4 rows per chunk → chunks of 4, 4, 1
	h, w := randTensor(r, 1, N, C), randTensor(r, 1, V, C)
	targets := make([]int32, N)
	weights := make([]float64, N)
	for i := range targets {
		targets[i] = int32(r.IntN(V))
		weights[i] = float64(i % 3)
	}
	g := G.NewGraph()
	hn := G.NewMatrix(g, tensor.Float64, G.WithShape(N, C), G.WithName("h"), G.WithValue(h))
	wn := G.NewMatrix(g, tensor.Float64, G.WithShape(V, C), G.WithName("w"), G.WithValue(w))
	wt := G.NewVector(g, tensor.Float64, G.WithShape(N), G.WithName("weights"), G.WithValue(tensor.New(tensor.WithBacking(weights))))
	stats := &TokenStats{MeanLogit: make([]float32, N), Entropy: make([]float32, N)}
	lp, err := LogProbs(hn, wn, targets, stats)
	if err != nil {
		t.Fatal(err)
	}
	nll, err := MeanNLL(hn, wn, wt, targets, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	if err := m.RunAll(); err != nil {
		t.Fatal(err)
	}
	hd, wd := h.Data().([]float64), w.Data().([]float64)
	var wantNLL, wsum float64
	for n := range N {
		z := make([]float64, V)
		mx := math.Inf(-1)
		var mean float64
		for v := range V {
			for c := range C {
				z[v] += hd[n*C+c] * wd[v*C+c]
			}
			mx = math.Max(mx, z[v])
			mean += z[v] / float64(V)
		}
		var se float64
		for _, x := range z {
			se += math.Exp(x - mx)
		}
		lse := mx + math.Log(se)
		var ent float64
		for _, x := range z {
			p := math.Exp(x - lse)
			ent -= p * (x - lse)
		}
		want := z[targets[n]] - lse
		if got := lp.Value().Data().([]float64)[n]; math.Abs(got-want) > 1e-9 {
			t.Errorf("row %d: logp %v, want %v", n, got, want)
		}
		if math.Abs(float64(stats.MeanLogit[n])-mean) > 1e-5 || math.Abs(float64(stats.Entropy[n])-ent) > 1e-4 {
			t.Errorf("row %d: stats %v %v, want %v %v", n, stats.MeanLogit[n], stats.Entropy[n], mean, ent)
		}
		wantNLL -= weights[n] * want
		wsum += weights[n]
	}
	wantNLL /= wsum
	if got, _ := scalar(nll.Value()); math.Abs(got-wantNLL) > 1e-9 {
		t.Errorf("mean NLL %v, want %v", got, wantNLL)
	}
}

func TestFuncLossGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 10))
	// A DPO-like loss of two vectors: −log σ(β·Σ(a − b)).
	fn := func(x [][]float64) (float64, [][]float64) {
		var d float64
		for i := range x[0] {
			d += x[0][i] - x[1][i]
		}
		const beta = 0.7
		s := 1 / (1 + math.Exp(-beta*d))
		ga, gb := make([]float64, len(x[0])), make([]float64, len(x[1]))
		for i := range ga {
			ga[i] = -beta * (1 - s)
			gb[i] = beta * (1 - s)
		}
		return -math.Log(s), [][]float64{ga, gb}
	}
	checkOp(t, opCase{"funcloss", []*tensor.Dense{randTensor(r, 1, 4), randTensor(r, 1, 4)}, func(in []*G.Node) (*G.Node, error) {
		return FuncLoss("dpo", fn, in[0], in[1])
	}})
}

func TestExp32(t *testing.T) {
	worst := 0.0
	for x := -87.0; x < 88.7; x += 0.0137 {
		got, want := float64(exp32(float32(x))), math.Exp(float64(float32(x)))
		worst = math.Max(worst, math.Abs(got-want)/want)
	}
	if worst > 3e-7 {
		t.Fatalf("exp32 relative error %g", worst)
	}
	if exp32(-100) != 0 || !math.IsInf(float64(exp32(100)), 1) || exp32(0) != 1 {
		t.Fatalf("exp32 edge cases: %v %v %v", exp32(-100), exp32(100), exp32(0))
	}
}

func TestBadTokenIsAnError(t *testing.T) {
	g := G.NewGraph()
	e := G.NewMatrix(g, tensor.Float32, G.WithShape(4, 2), G.WithName("e"), G.WithValue(tensor.New(tensor.WithShape(4, 2), tensor.WithBacking(make([]float32, 8)))))
	tokens := []int32{1, 4}
	if _, err := Embedding(e, tokens); err != nil {
		t.Fatal(err)
	}
	m := G.NewTapeMachine(g)
	err := m.RunAll()
	if err == nil {
		t.Fatal("token 4 with a vocabulary of 4 was accepted")
	}
	t.Log(err)
}

// TestExpShiftSums32 checks the (vector, where available) exp kernel
// against math.Exp at lengths around its block and lane sizes.
func TestExpShiftSums32(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, n := range []int{0, 1, 7, 8, 9, 255, 256, 257, 1000} {
		z := make([]float32, n)
		for i := range z {
			z[i] = float32(r.Float64()*110 - 100)
		}
		m := float32(3)
		orig := append([]float32(nil), z...)
		se, sez := expShiftSums32(z, m)
		var wse, wsez float64
		for i, v := range orig {
			want := math.Exp(float64(v - m)) // the argument is rounded to float32 first
			wse += want
			wsez += want * float64(v)
			if d := math.Abs(float64(z[i]) - want); d > 3e-7*want+2e-38 {
				t.Fatalf("n=%d: exp(%v − %v) = %v, want %v", n, v, m, z[i], want)
			}
		}
		if math.Abs(se-wse) > 1e-6*wse || math.Abs(sez-wsez) > 1e-6*math.Abs(wsez)+1e-30 {
			t.Fatalf("n=%d: sums %v %v, want %v %v", n, se, sez, wse, wsez)
		}
	}
	if !vec.Available {
		t.Log("no vector exp kernel in this build or on this processor")
	}
}

func TestMaxSum(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	for _, n := range []int{1, 7, 8, 9, 16, 255, 256, 257, 1000} {
		z := make([]float32, n)
		for i := range z {
			z[i] = float32(r.NormFloat64() * 10)
		}
		z[r.IntN(n)] = 40 // the maximum somewhere
		m, s := maxSum(z)
		var want float64
		for _, v := range z {
			want += float64(v)
		}
		if m != 40 || math.Abs(s-want) > 1e-5*float64(n)*10 {
			t.Fatalf("n=%d: max %v sum %v, want 40 %v", n, m, s, want)
		}
	}
}

// TestGemmSplit checks row- and column-split products (as run when
// OpenBLAS is single-threaded) against a direct float64 computation; the
// column split's parts are whole groups of 32 columns, so its shape has
// several.
func TestGemmSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, sc := range []struct {
		name    string
		split   func(parts int, tA, tB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
		m, n, k int
	}{
		{"rows", gemmSplit[float32], 37, 5, 9},
		{"columns", gemmSplitCols[float32], 5, 100, 9},
	} {
		m, n, k := sc.m, sc.n, sc.k
		for _, tr := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
			a, b := make([]float32, m*k), make([]float32, k*n)
			for i := range a {
				a[i] = float32(r.NormFloat64())
			}
			for i := range b {
				b[i] = float32(r.NormFloat64())
			}
			c0 := make([]float32, m*n)
			for i := range c0 {
				c0[i] = float32(r.NormFloat64())
			}
			lda, ldb := k, n
			if tr[0] {
				lda = m
			}
			if tr[1] {
				ldb = k
			}
			for parts := 1; parts <= 4; parts++ {
				c := append([]float32(nil), c0...)
				sc.split(parts, tr[0], tr[1], m, n, k, 0.5, a, lda, b, ldb, 2, c, n)
				for i := range m {
					for j := range n {
						var want float64
						for p := range k {
							av, bv := a[i*k+p], b[p*n+j]
							if tr[0] {
								av = a[p*m+i]
							}
							if tr[1] {
								bv = b[j*k+p]
							}
							want += float64(av) * float64(bv)
						}
						want = 0.5*want + 2*float64(c0[i*n+j])
						if math.Abs(float64(c[i*n+j])-want) > 1e-4*(1+math.Abs(want)) {
							t.Fatalf("%s, trans %v, %d parts: c[%d,%d] = %v, want %v", sc.name, tr, parts, i, j, c[i*n+j], want)
						}
					}
				}
			}
		}
	}
}

// packedSegments are the segment numbers of two rows of 8 positions:
// documents of 3, 4 and 1 tokens, and of 5 tokens followed by 3 of
// padding (segment 0).
var packedSegments = []int32{1, 1, 1, 2, 2, 2, 2, 3, 1, 1, 1, 1, 1, 0, 0, 0}

func TestSegmentedAttentionGradient(t *testing.T) {
	s := AttentionShape{B: 2, T: 8, H: 4, KVH: 2, D: 3, Segments: packedSegments}
	r := rand.New(rand.NewPCG(2, 9))
	N := s.B * s.T
	checkOp(t, opCase{"segmented attention", []*tensor.Dense{
		randTensor(r, 1, N, s.H*s.D), randTensor(r, 1, N, s.KVH*s.D), randTensor(r, 1, N, s.KVH*s.D),
	}, func(in []*G.Node) (*G.Node, error) { return Attention(in[0], in[1], in[2], s) }})
}

func TestRoPEPositionsGradient(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 13))
	inv := []float64{1, 0.1, 0.01}
	pos := []int32{0, 1, 2, 0, 1, 2, 3, 0, 0, 1, 2, 3, 4, 0, 0, 0}
	checkOp(t, opCase{"rope positions", []*tensor.Dense{randTensor(r, 1, 16, 2*6)}, func(in []*G.Node) (*G.Node, error) {
		return RoPEPart(in[0], 8, 2, RoPELayout{Width: 6, Positions: pos}, inv)
	}})
}

// TestPackedAttentionMatchesSeparate checks that RoPE at restarted
// positions followed by segmented attention gives every packed document
// exactly the outputs it has alone in a sequence of its own.
func TestPackedAttentionMatchesSeparate(t *testing.T) {
	const H, KVH, D, T = 2, 1, 4, 8
	inv := []float64{1, 0.05}
	r := rand.New(rand.NewPCG(5, 5))
	q, k, v := randTensor(r, 1, 2*T, H*D), randTensor(r, 1, 2*T, KVH*D), randTensor(r, 1, 2*T, KVH*D)
	pos := make([]int32, 2*T)
	for i := range pos {
		if i%T > 0 && packedSegments[i] == packedSegments[i-1] {
			pos[i] = pos[i-1] + 1
		}
	}
	// run is rope(q), rope(k) at positions (nil: n mod rows) and attention
	// of rows rows of x[from:from+n·rows].
	run := func(from, n, rows int, positions, segments []int32) []float64 {
		g := G.NewGraph()
		slice := func(x *tensor.Dense, w int, name string) *G.Node {
			d := x.Data().([]float64)[from*w : (from+n*rows)*w]
			val := tensor.New(tensor.WithShape(n*rows, w), tensor.WithBacking(append([]float64(nil), d...)))
			return G.NewMatrix(g, tensor.Float64, G.WithShape(n*rows, w), G.WithName(name), G.WithValue(val))
		}
		qn, kn, vn := slice(q, H*D, "q"), slice(k, KVH*D, "k"), slice(v, KVH*D, "v")
		qr, err := RoPEPart(qn, n, H, RoPELayout{Width: D, Positions: positions}, inv)
		if err != nil {
			t.Fatal(err)
		}
		kr, err := RoPEPart(kn, n, KVH, RoPELayout{Width: D, Positions: positions}, inv)
		if err != nil {
			t.Fatal(err)
		}
		o, err := Attention(qr, kr, vn, AttentionShape{B: rows, T: n, H: H, KVH: KVH, D: D, Segments: segments})
		if err != nil {
			t.Fatal(err)
		}
		if err := G.NewTapeMachine(g).RunAll(); err != nil {
			t.Fatal(err)
		}
		return append([]float64(nil), o.Value().Data().([]float64)...)
	}
	packed := run(0, T, 2, pos, packedSegments)
	for _, doc := range []struct{ from, n int }{{0, 3}, {3, 4}, {7, 1}, {8, 5}} {
		alone := run(doc.from, doc.n, 1, nil, nil)
		for i, want := range alone {
			if got := packed[doc.from*H*D+i]; math.Abs(got-want) > 1e-12 {
				t.Fatalf("document at %d, output %d: packed %g, alone %g", doc.from, i, got, want)
			}
		}
	}
	if _, err := Attention(nil, nil, nil, AttentionShape{B: 1, T: 4, H: 1, KVH: 1, D: 1, Segments: []int32{1}}); err == nil {
		t.Error("accepted 1 segment number for 4 positions")
	}
}

// TestSwiGLUVectorExact checks the vector SwiGLU kernels bit for bit
// against the scalar formulas on the vector exp (sigmoid), over lengths
// with and without a tail and values from 0 and −0 to beyond exp's clamp.
func TestSwiGLUVectorExact(t *testing.T) {
	if !vec.Available {
		t.Skip("no vector kernels on this CPU or build")
	}
	r := rand.New(rand.NewPCG(3, 3))
	for n := range 300 {
		g, u, dm := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range g {
			g[i] = float32(r.NormFloat64() * 4)
			switch i % 17 {
			case 3:
				g[i] = 0
			case 5:
				g[i] = float32(math.Copysign(0, -1))
			case 7:
				g[i] = float32(r.NormFloat64() * 200)
			}
			u[i], dm[i] = float32(r.NormFloat64()), float32(r.NormFloat64())
		}
		out, dg, du := make([]float32, n), make([]float32, n), make([]float32, n)
		swigluForward([][]float32{g, u, out})
		swigluBackward([][]float32{g, u, dm, dg, du})
		sig := make([]float32, n)
		for b := 0; b < n; b += 256 { // the blocks the scalar code used
			sigmoid(sig[b:min(n, b+256)], g[b:min(n, b+256)])
		}
		for i, s := range sig {
			want := [3]float32{g[i] * s * u[i], dm[i] * u[i] * s * (1 + g[i]*(1-s)), dm[i] * g[i] * s}
			got := [3]float32{out[i], dg[i], du[i]}
			for k := range want {
				if math.Float32bits(got[k]) != math.Float32bits(want[k]) {
					t.Fatalf("n=%d, i=%d (g=%v): output %d is %v, want %v", n, i, g[i], k, got[k], want[k])
				}
			}
		}
	}
}
