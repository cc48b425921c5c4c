package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// ExpertWeights are one routed expert's SwiGLU weights: gate and up
// (Fe, C), down (C, Fe), and optional low-rank updates of each.
type ExpertWeights struct {
	Gate, Up, Down *G.Node
	// Adapters[i] updates Gate, Up or Down (i = 0, 1, 2); nil for none.
	Adapters [3]*LowRank
}

// LowRank is a low-rank update of a projection that runs inside a fused
// operation (LoRA, Hu et al. 2021, eq. 3): y += s·(x·Aᵀ)·Bᵀ with A (r, in)
// and B (out, r) graph nodes and s read from *Scale on every run (so that
// an adapter can be switched off without rebuilding the graph).
type LowRank struct {
	A, B  *G.Node
	Scale *float64
}

// ExpertLoad receives, on every forward pass of a MoE operation, how many
// of its tokens each expert received (Counts, E) out of Tokens (each token
// counted once per chosen expert, so Σ Counts = TopK·Tokens).
type ExpertLoad struct {
	Counts []int
	Tokens int
}

// MoE is the routed part of a DeepSeekMoE feed-forward (DeepSeek-V2
// §2.2.1, eq. 20-23) on x (N, C):
//
//	y_n = Σ_{e ∈ chosen(n)} w_{n,e} · down_e(silu(gate_e·x_n) ⊙ up_e·x_n)
//
// with the router r choosing experts and weights from the logits
// x·routerᵀ (router (E, C); bias (E) is the noaux_tc correction bias, nil
// otherwise). Each expert runs on the tokens routed to it only (gathered,
// three GEMMs, scattered back), never on all tokens. Gradients flow to x,
// the router (through the chosen experts' weights; the choice itself is
// not differentiable) and every expert's weights; bias gets none (DeepSeek-
// V3 adjusts it outside gradient descent). load, when not nil, receives
// each pass's expert counts.
func MoE(x, router, bias *G.Node, experts []ExpertWeights, r Router, load *ExpertLoad) (*G.Node, error) {
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("moe: %w", err)
	}
	if len(experts) != r.Experts {
		return nil, fmt.Errorf("moe: %d expert weights for %d experts", len(experts), r.Experts)
	}
	if (bias != nil) != (r.Method == "noaux_tc") {
		return nil, fmt.Errorf("moe: a correction bias is needed by noaux_tc and only there (method %s, bias given %v)", r.Method, bias != nil)
	}
	in := G.Nodes{x, router}
	if bias != nil {
		in = append(in, bias)
	}
	for _, e := range experts {
		in = append(in, e.Gate, e.Up, e.Down)
	}
	op := &moeOp{r: r, bias: bias != nil, load: load, adapters: make([][3]adapterAt, len(experts))}
	for e, ex := range experts {
		for i, ad := range ex.Adapters {
			op.adapters[e][i].a = -1
			if ad == nil {
				continue
			}
			if ad.A == nil || ad.B == nil || ad.Scale == nil {
				return nil, fmt.Errorf("moe: expert %d projection %d: incomplete low-rank update", e, i)
			}
			op.adapters[e][i] = adapterAt{a: len(in), scale: ad.Scale}
			in = append(in, ad.A, ad.B)
		}
	}
	return apply(op, in...)
}

// adapterAt locates a low-rank update among the MoE inputs: A at input a,
// B at a+1 (a < 0: none).
type adapterAt struct {
	a     int
	scale *float64
}

type moeOp struct {
	pure
	r        Router
	bias     bool
	adapters [][3]adapterAt // per expert: gate, up, down
	load     *ExpertLoad
	out      buffer
	st32     *moeState[float32]
	st64     *moeState[float64]
	grads    moeGrads
}

// moeState is what a forward pass keeps for its backward pass.
type moeState[T Float] struct {
	logits  []T       // (N, E)
	z       []float64 // one token's logits
	scores  []float64 // (N, E)
	idx     []int     // (N, k)
	w       []float64 // (N, k)
	denom   []float64 // (N)
	bias    []float64
	sc      RouteScratch
	experts []expertState[T]
}

// expertState holds one expert's routed rows and activations.
type expertState[T Float] struct {
	slots      []int  // n·k + j of each row (token n, choice j)
	x, g, u, m []T    // (rows, C), (rows, Fe) ×3
	o          []T    // (rows, C): the expert's output before weighting
	t          [3][]T // (rows, r): input·Aᵀ of each adapted projection
}

// offset is where the expert weights start among the inputs.
func (op *moeOp) offset() int {
	if op.bias {
		return 3
	}
	return 2
}

func (op *moeOp) Arity() int {
	n := op.offset() + 3*op.r.Experts
	for _, ads := range op.adapters {
		for _, ad := range ads {
			if ad.a >= 0 {
				n += 2
			}
		}
	}
	return n
}
func (op *moeOp) Type() hm.Type { return hm.NewFnType(append(op.inputTypes(), tensorType(2))...) }

// inputTypes are the types of the operation's inputs.
func (op *moeOp) inputTypes() []hm.Type {
	ts := []hm.Type{tensorType(2), tensorType(2)}
	if op.bias {
		ts = append(ts, tensorType(1))
	}
	for range op.Arity() - len(ts) {
		ts = append(ts, tensorType(2))
	}
	return ts
}
func (op *moeOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	ranks := []int{2, 2}
	if op.bias {
		ranks = append(ranks, 1)
	}
	for range op.Arity() - len(ranks) {
		ranks = append(ranks, 2)
	}
	s, err := shapes(ds, ranks...)
	if err != nil {
		return nil, err
	}
	C, E := s[0][1], op.r.Experts
	if !s[1].Eq(tensor.Shape{E, C}) || (op.bias && s[2][0] != E) {
		return nil, fmt.Errorf("moe: x %v, router %v: want router (%d, %d) and bias (%d)", s[0], s[1], E, C, E)
	}
	for e := range E {
		g, u, d := s[op.offset()+3*e], s[op.offset()+3*e+1], s[op.offset()+3*e+2]
		if g[1] != C || !u.Eq(g) || !d.Eq(tensor.Shape{C, g[0]}) {
			return nil, fmt.Errorf("moe: expert %d has gate %v, up %v, down %v for width %d", e, g, u, d, C)
		}
		for i, ad := range op.adapters[e] {
			if ad.a < 0 {
				continue
			}
			w, a, b := s[op.offset()+3*e+i], s[ad.a], s[ad.a+1]
			if a[1] != w[1] || b[0] != w[0] || b[1] != a[0] {
				return nil, fmt.Errorf("moe: expert %d projection %d: low-rank A %v, B %v do not fit %v", e, i, a, b, w)
			}
		}
	}
	return s[0].Clone(), nil
}
func (op *moeOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.MoE{%+v,%v", op.r, op.bias)
	for _, ads := range op.adapters {
		for _, ad := range ads {
			fmt.Fprintf(h, ",%d:%p", ad.a, ad.scale)
		}
	}
	fmt.Fprint(h, "}")
}
func (op *moeOp) Hashcode() uint32 { return hashOf(op) }
func (op *moeOp) String() string   { return fmt.Sprintf("MoE{%d of %d}", op.r.TopK, op.r.Experts) }

// inputs checks and unwraps the operation's input values.
func (op *moeOp) inputs(in []G.Value) ([]*tensor.Dense, error) {
	ts := make([]*tensor.Dense, op.Arity())
	for i := range ts {
		t, err := dense(in[i], fmt.Sprintf("moe input %d", i))
		if err != nil {
			return nil, err
		}
		ts[i] = t
	}
	return ts, nil
}

func (op *moeOp) Do(in ...G.Value) (G.Value, error) {
	ts, err := op.inputs(in)
	if err != nil {
		return nil, err
	}
	x := ts[0]
	out := op.out.get(x.Dtype(), x.Shape()...)
	switch x.Dtype() {
	case tensor.Float32:
		if op.st32 == nil {
			op.st32 = &moeState[float32]{}
		}
		moeForward(op, op.st32, ts, out)
	default:
		if op.st64 == nil {
			op.st64 = &moeState[float64]{}
		}
		moeForward(op, op.st64, ts, out)
	}
	return out, nil
}

// moeForward routes every token, runs each expert on its rows and sums the
// weighted outputs into out.
func moeForward[T Float](op *moeOp, st *moeState[T], ts []*tensor.Dense, out *tensor.Dense) {
	r := op.r
	x, router := ts[0].Data().([]T), ts[1].Data().([]T)
	y := out.Data().([]T)
	N, C, E, K := ts[0].Shape()[0], ts[0].Shape()[1], r.Experts, r.TopK

	// Routing, in float64 as DeepSeek's gate computes in float32 over
	// bfloat16 activations: the logits x·routerᵀ (N, E), then per token.
	st.logits = grow(st.logits, N*E)
	gemm(false, true, N, E, C, 1, x, C, router, C, 0, st.logits, E)
	st.scores = grow(st.scores, N*E)
	st.z = grow(st.z, E)
	st.idx = growInts(st.idx, N*K)
	st.w = grow(st.w, N*K)
	st.denom = grow(st.denom, N)
	st.bias = nil
	if op.bias {
		st.bias = make([]float64, E)
		for i, v := range ts[2].Data().([]T) {
			st.bias[i] = float64(v)
		}
	}
	if len(st.experts) != E {
		st.experts = make([]expertState[T], E)
	}
	for e := range st.experts {
		st.experts[e].slots = st.experts[e].slots[:0]
	}
	for n := range N {
		for i, v := range st.logits[n*E : (n+1)*E] {
			st.z[i] = float64(v)
		}
		st.denom[n] = r.Route(st.z, st.bias, st.scores[n*E:(n+1)*E], st.idx[n*K:(n+1)*K], st.w[n*K:(n+1)*K], &st.sc)
		for j, e := range st.idx[n*K : (n+1)*K] {
			st.experts[e].slots = append(st.experts[e].slots, n*K+j)
		}
	}
	if op.load != nil {
		op.load.Counts = growInts(op.load.Counts, E)
		for e := range st.experts {
			op.load.Counts[e] = len(st.experts[e].slots)
		}
		op.load.Tokens = N
	}

	clear(y)
	for e := range st.experts {
		ex := &st.experts[e]
		m := len(ex.slots)
		if m == 0 {
			continue
		}
		wg, wu, wd := ts[op.offset()+3*e], ts[op.offset()+3*e+1], ts[op.offset()+3*e+2]
		F := wg.Shape()[0]
		ex.x, ex.g, ex.u = grow(ex.x, m*C), grow(ex.g, m*F), grow(ex.u, m*F)
		ex.m, ex.o = grow(ex.m, m*F), grow(ex.o, m*C)
		for i, s := range ex.slots {
			n := s / K
			copy(ex.x[i*C:(i+1)*C], x[n*C:(n+1)*C])
		}
		gemm(false, true, m, F, C, 1, ex.x, C, wg.Data().([]T), C, 0, ex.g, F)
		gemm(false, true, m, F, C, 1, ex.x, C, wu.Data().([]T), C, 0, ex.u, F)
		ex.lowRank(op, ts, e, 0, ex.x, ex.g, m, C, F)
		ex.lowRank(op, ts, e, 1, ex.x, ex.u, m, C, F)
		swigluForward([][]T{ex.g, ex.u, ex.m})
		gemm(false, true, m, C, F, 1, ex.m, F, wd.Data().([]T), F, 0, ex.o, C)
		ex.lowRank(op, ts, e, 2, ex.m, ex.o, m, F, C)
		for i, s := range ex.slots {
			n, w := s/K, T(st.w[s])
			row, o := y[n*C:(n+1)*C], ex.o[i*C:(i+1)*C]
			for c, v := range o {
				row[c] += w * v
			}
		}
	}
}

// lowRank adds projection i's low-rank update to y (rows, out) from its
// input x (rows, in), keeping t = x·Aᵀ for the backward pass.
func (ex *expertState[T]) lowRank(op *moeOp, ts []*tensor.Dense, e, i int, x, y []T, rows, in, out int) {
	ad := op.adapters[e][i]
	if ad.a < 0 {
		return
	}
	a, b := ts[ad.a].Data().([]T), ts[ad.a+1].Data().([]T)
	r := ts[ad.a].Shape()[0]
	ex.t[i] = grow(ex.t[i], rows*r)
	gemm(false, true, rows, r, in, 1, x, in, a, in, 0, ex.t[i], r)
	gemm(false, true, rows, out, r, T(*ad.scale), ex.t[i], r, b, r, 1, y, out)
}

// lowRankBackward handles projection i's low-rank update in the backward
// pass from dy (rows, out) and its input x (rows, in): dB = s·dyᵀ·t,
// dA = s·(dy·B)ᵀ·x and dx += s·(dy·B)·A.
func (ex *expertState[T]) lowRankBackward(op *moeOp, ts, ds []*tensor.Dense, e, i int, x, dy, dx []T, rows, in, out int) {
	ad := op.adapters[e][i]
	if ad.a < 0 {
		return
	}
	a, b := ts[ad.a].Data().([]T), ts[ad.a+1].Data().([]T)
	da, db := ds[ad.a].Data().([]T), ds[ad.a+1].Data().([]T)
	r, s := ts[ad.a].Shape()[0], T(*ad.scale)
	clear(da)
	clear(db)
	if rows == 0 {
		return
	}
	gemm(true, false, out, r, rows, s, dy, out, ex.t[i], r, 0, db, r)
	u := make([]T, rows*r)
	gemm(false, false, rows, r, out, 1, dy, out, b, r, 0, u, r)
	gemm(true, false, r, in, rows, s, u, r, x, in, 0, da, in)
	gemm(false, false, rows, in, r, s, u, r, a, in, 1, dx, in)
}

func growInts(s []int, n int) []int {
	if cap(s) < n {
		return make([]int, n)
	}
	return s[:n]
}

func (op *moeOp) DiffWRT(n int) []bool {
	d := make([]bool, n)
	for i := range d {
		d[i] = !(op.bias && i == 2)
	}
	return d
}

func (op *moeOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	bwd, err := apply(&moeGradOp{fwd: op}, append(append(G.Nodes{}, in...), out, grad)...)
	if err != nil {
		return nil, err
	}
	grads := make(G.Nodes, len(in))
	for i, n := range in {
		if op.bias && i == 2 {
			continue
		}
		if grads[i], err = newPick(&op.grads, bwd, i, fmt.Sprintf("dmoe%d", i), n.Shape()); err != nil {
			return nil, err
		}
	}
	return grads, nil
}

// moeGrads holds one gradient per input of the MoE operation (none for
// the bias).
type moeGrads struct{ d []buffer }

func (g *moeGrads) output(i int) *tensor.Dense { return g.d[i].t }

// moeGradOp is MoE's backward pass from (inputs…, y, dy), reusing the
// forward pass's routing and activations. Per expert e with gathered rows
// X_e, activations G, U, M = silu(G) ⊙ U and outputs O:
//
//	dw_{n,j} = dy_n · O_row                (the weights' gradient)
//	dO = w ⊙ dy_rows,  dDown_e = dOᵀ·M,  dM = dO·Down_e
//	dG, dU from SwiGLU's backward,  dGate_e = dGᵀ·X_e,  dUp_e = dUᵀ·X_e
//	dx_rows += dG·Gate_e + dU·Up_e
//
// then dw goes through the router (Router.RouteGrad) to the logits dZ
// (N, E): dRouter = dZᵀ·x, dx += dZ·router.
type moeGradOp struct {
	pure
	terminal
	fwd         *moeOp
	placeholder buffer
}

func (op *moeGradOp) Arity() int { return op.fwd.Arity() + 2 }
func (op *moeGradOp) Type() hm.Type {
	return hm.NewFnType(append(op.fwd.inputTypes(), tensorType(2), tensorType(2), tensorType(1))...)
}
func (op *moeGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{1}, nil
}
func (op *moeGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.MoEGrad{%+v,%v}", op.fwd.r, op.fwd.bias)
}
func (op *moeGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *moeGradOp) String() string   { return "MoEGrad" }

func (op *moeGradOp) Do(in ...G.Value) (G.Value, error) {
	f := op.fwd
	ts, err := f.inputs(in)
	if err != nil {
		return nil, err
	}
	dy, err := dense(in[len(in)-1], "moe gradient dy")
	if err != nil {
		return nil, err
	}
	dt := ts[0].Dtype()
	if len(f.grads.d) != len(ts) {
		f.grads.d = make([]buffer, len(ts))
	}
	ds := make([]*tensor.Dense, len(ts))
	for i, t := range ts {
		if f.bias && i == 2 {
			continue
		}
		ds[i] = f.grads.d[i].get(dt, t.Shape()...)
	}
	switch dt {
	case tensor.Float32:
		if f.st32 == nil {
			return nil, fmt.Errorf("moe gradient: forward pass has not run")
		}
		moeBackward(f, f.st32, ts, dy, ds)
	default:
		if f.st64 == nil {
			return nil, fmt.Errorf("moe gradient: forward pass has not run")
		}
		moeBackward(f, f.st64, ts, dy, ds)
	}
	return placeholder(&op.placeholder, dt), nil
}

// moeBackward fills ds (one gradient per input, nil for the bias).
func moeBackward[T Float](op *moeOp, st *moeState[T], ts []*tensor.Dense, dyT *tensor.Dense, ds []*tensor.Dense) {
	r := op.r
	x, router, dy := ts[0].Data().([]T), ts[1].Data().([]T), dyT.Data().([]T)
	dx, drouter := ds[0].Data().([]T), ds[1].Data().([]T)
	N, C, E, K := ts[0].Shape()[0], ts[0].Shape()[1], r.Experts, r.TopK
	clear(dx)
	dw := make([]float64, N*K)
	for e := range st.experts {
		ex := &st.experts[e]
		o := op.offset() + 3*e
		wg, wu, wd := ts[o].Data().([]T), ts[o+1].Data().([]T), ts[o+2].Data().([]T)
		dwg, dwu, dwd := ds[o].Data().([]T), ds[o+1].Data().([]T), ds[o+2].Data().([]T)
		clear(dwg)
		clear(dwu)
		clear(dwd)
		m := len(ex.slots)
		if m == 0 {
			for i := range 3 {
				ex.lowRankBackward(op, ts, ds, e, i, nil, nil, nil, 0, 0, 0)
			}
			continue
		}
		F := ts[o].Shape()[0]
		dO := make([]T, m*C)
		for i, s := range ex.slots {
			n := s / K
			dyr, orow := dy[n*C:(n+1)*C], ex.o[i*C:(i+1)*C]
			var dot float64
			w := T(st.w[s])
			for c, v := range dyr {
				dot += float64(v) * float64(orow[c])
				dO[i*C+c] = w * v
			}
			dw[s] = dot
		}
		// dDown = dOᵀ·M (C, F); dM = dO·Down (m, F)
		gemm(true, false, C, F, m, 1, dO, C, ex.m, F, 0, dwd, F)
		dM := make([]T, m*F)
		gemm(false, false, m, F, C, 1, dO, C, wd, F, 0, dM, F)
		ex.lowRankBackward(op, ts, ds, e, 2, ex.m, dO, dM, m, F, C)
		dG, dU := make([]T, m*F), make([]T, m*F)
		swigluBackward([][]T{ex.g, ex.u, dM, dG, dU})
		gemm(true, false, F, C, m, 1, dG, F, ex.x, C, 0, dwg, C)
		gemm(true, false, F, C, m, 1, dU, F, ex.x, C, 0, dwu, C)
		dX := make([]T, m*C)
		gemm(false, false, m, C, F, 1, dG, F, wg, C, 0, dX, C)
		gemm(false, false, m, C, F, 1, dU, F, wu, C, 1, dX, C)
		ex.lowRankBackward(op, ts, ds, e, 0, ex.x, dG, dX, m, C, F)
		ex.lowRankBackward(op, ts, ds, e, 1, ex.x, dU, dX, m, C, F)
		for i, s := range ex.slots {
			n := s / K
			row := dx[n*C : (n+1)*C]
			for c, v := range dX[i*C : (i+1)*C] {
				row[c] += v
			}
		}
	}
	// Through the router: dZ (N, E), then dRouter = dZᵀ·x, dx += dZ·router.
	dZ := make([]T, N*E)
	dz := make([]float64, E)
	for n := range N {
		r.RouteGrad(st.scores[n*E:(n+1)*E], st.idx[n*K:(n+1)*K], st.w[n*K:(n+1)*K], dw[n*K:(n+1)*K], st.denom[n], dz)
		for i, v := range dz {
			dZ[n*E+i] = T(v)
		}
	}
	gemm(true, false, E, C, N, 1, dZ, E, x, C, 0, drouter, C)
	gemm(false, false, N, C, E, 1, dZ, E, router, C, 1, dx, C)
}
