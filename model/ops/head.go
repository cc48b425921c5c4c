package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TokenStats are per-token statistics of the output distribution, written
// by LogProbs and MeanNLL on every forward pass (not differentiated).
type TokenStats struct {
	MeanLogit []float32 // (N) mean of the V logits
	Entropy   []float32 // (N) −Σ p·log p of the softmax, in nats
}

// chunkElems bounds the logits held at once: rows per chunk × V (64 MiB of
// float32, a quarter of stories15M's full 8×256×32000 logits). Larger
// chunks mean fewer passes over the (V, C) weight gradient; a variable so
// tests can force several chunks on small shapes.
var chunkElems = 1 << 24

// LogProbs is the fused language-model head: for hidden states h (N, C)
// and the output embedding w (V, C), the log-probability of each row's
// target token,
//
//	logp[n] = z[n, y_n] − log Σ_v exp z[n, v],   z = h·Wᵀ,
//
// computed over chunks of rows so the (N, V) logits never exist at once.
// targets (N) is read on every run (the caller refills it in place). The
// backward pass recomputes each chunk's logits from the saved log-sum-exps.
func LogProbs(h, w *G.Node, targets []int32, stats *TokenStats) (*G.Node, error) {
	if len(targets) != h.Shape()[0] {
		return nil, fmt.Errorf("log-probs: %d targets for %d rows", len(targets), h.Shape()[0])
	}
	return apply(&logProbsOp{headState: headState{targets: targets, stats: stats}}, h, w)
}

// MeanNLL is the weighted mean negative log-likelihood of the targets,
//
//	L = −Σ_n weights[n]·logp[n] / Σ_n weights[n]   (0 when Σ weights = 0),
//
// fused with the head like LogProbs. Because ∂L/∂logp is known during the
// forward pass, it also computes ∂L/∂h and ∂L/∂W there (when the running
// program needs them), from the chunk of logits it already holds: the
// backward pass only rescales them. weights (N) must be ≥ 0.
func MeanNLL(h, w, weights *G.Node, targets []int32, stats *TokenStats) (*G.Node, error) {
	if len(targets) != h.Shape()[0] {
		return nil, fmt.Errorf("mean NLL: %d targets for %d rows", len(targets), h.Shape()[0])
	}
	return apply(&meanNLLOp{headState: headState{targets: targets, stats: stats}, wantH: true, wantW: true}, h, w, weights)
}

// headPass holds one pass of the chunked head over all rows.
type headPass[T Float] struct {
	h       []T       // (N, C)
	w       weight[T] // (V, C)
	N, C, V int
	targets []int32
	buf     []T       // (rows, V) scratch
	hs      []T       // (rows, C) scratch
	k       []T       // (N) per-row scale of exp(z − shift) in ∂L/∂z
	lse     []float64 // (N) log Σ exp z; written by the forward pass, read by the backward
	logp    []T       // (N) forward output
	stats   *TokenStats
	coef    []T // (N) ∂L/∂logp; nil in a pass without gradients
	dh, dw  []T // gradient outputs; nil skips one
	replay  bool
}

// run computes logits z = h·Wᵀ chunk by chunk. The forward pass
// (replay = false) fills lse, logp and stats. With coef it also
// accumulates the gradients, from
//
//	∂L/∂z = c·(onehot(y) − softmax(z)) = k·E + c·onehot(y),
//
// c = coef[n], where E = exp(z − shift) is what the chunk holds after its
// row pass and k the matching per-row factor (−c/Σ exp(z − max) in the
// forward pass, which shifts by the row maximum; −c in a replay, the
// backward pass of LogProbs, which shifts by the saved lse so E is
// softmax(z)). Row factors are applied to the small side of each product
// instead of to E:
//
//	dh = diag(k)·(E·W) + c ⊙ W[y]       dw += Eᵀ·(diag(k)·h) + scatter(c ⊙ h at rows y)
func (p *headPass[T]) run() {
	rows := max(1, min(p.N, chunkElems/p.V))
	for r0 := 0; r0 < p.N; r0 += rows {
		nc := min(rows, p.N-r0)
		z := p.buf[:nc*p.V]
		hc := p.h[r0*p.C : (r0+nc)*p.C]
		// z = h·Wᵀ   (nc, V)
		p.w.mulT(nc, hc, p.C, z, p.V)
		parallelFor(nc, 8, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				p.row(r0+i, z[i*p.V:(i+1)*p.V])
			}
		})
		if p.coef == nil {
			continue
		}
		k, c := p.k[r0:r0+nc], p.coef[r0:r0+nc]
		y := p.targets[r0 : r0+nc]
		if p.dh != nil {
			// dh = diag(k)·(E·W) + c ⊙ W[y]   (nc, C)
			dh := p.dh[r0*p.C : (r0+nc)*p.C]
			p.w.mul(nc, z, p.V, dh, p.C)
			parallelFor(nc, 64, func(lo, hi int) {
				for i := lo; i < hi; i++ {
					p.w.scaleAddRow(int(y[i]), k[i], c[i], dh[i*p.C:(i+1)*p.C])
				}
			})
		}
		if p.dw != nil {
			// dw += Eᵀ·(diag(k)·h) + scatter(c ⊙ h)   (V, C)
			hs := p.hs[:nc*p.C]
			for i := range nc {
				for j, v := range hc[i*p.C : (i+1)*p.C] {
					hs[i*p.C+j] = k[i] * v
				}
			}
			beta := T(1)
			if r0 == 0 {
				beta = 0
			}
			gemm(true, false, p.V, p.C, nc, 1, z, p.V, hs, p.C, beta, p.dw, p.C)
			for i := range nc {
				row := p.dw[int(y[i])*p.C : (int(y[i])+1)*p.C]
				for j, v := range hc[i*p.C : (i+1)*p.C] {
					row[j] += c[i] * v
				}
			}
		}
	}
}

// row turns the logits z of row n into E = exp(z − shift), recording the
// forward statistics (or, in a replay, reading the saved lse) and k[n].
func (p *headPass[T]) row(n int, z []T) {
	if p.replay {
		expShift(z, p.lse[n])
		p.k[n] = -p.coef[n]
		return
	}
	m, sum := maxSum(z)
	zy := z[p.targets[n]]
	se, sez := expShiftSums(z, m) // z ← exp(z − m)
	lse := float64(m) + math.Log(se)
	p.lse[n] = lse
	p.logp[n] = T(float64(zy) - lse)
	if p.stats != nil {
		p.stats.MeanLogit[n] = float32(sum / float64(p.V))
		p.stats.Entropy[n] = float32(lse - sez/se) // −Σ p log p = lse − Σ p·z
	}
	if p.coef != nil {
		p.k[n] = T(-float64(p.coef[n]) / se)
	}
}

// expShiftSums replaces z by exp(z − m) and returns Σ exp(z − m) and
// Σ exp(z − m)·z (the latter read before overwriting).
func expShiftSums[T Float](z []T, m T) (se, sez float64) {
	switch zs := any(z).(type) {
	case []float32:
		se, sez = expShiftSums32(zs, float32(m))
	case []float64:
		for j, v := range zs {
			e := math.Exp(v - float64(m))
			se += e
			sez += e * v
			zs[j] = e
		}
	}
	return se, sez
}

// expShift replaces z by exp(z − s).
func expShift[T Float](z []T, s float64) {
	switch zs := any(z).(type) {
	case []float32:
		expShiftSums32(zs, float32(s))
	case []float64:
		for j, v := range zs {
			zs[j] = math.Exp(v - s)
		}
	}
}

// headShapes checks (h (N, C), w (V, C)) and returns N, C, V.
func headShapes(h, w tensor.Shape) (N, C, V int, err error) {
	if h.Dims() != 2 || w.Dims() != 2 || h[1] != w[1] {
		return 0, 0, 0, fmt.Errorf("head: hidden %v and output embedding %v disagree", h, w)
	}
	return h[0], h[1], w[0], nil
}

// headState is what both head operations keep between passes.
type headState struct {
	targets []int32
	stats   *TokenStats
	lse     []float64
	buf32   []float32
	buf64   []float64
	dh, dw  buffer
	out     buffer
}

func (s *headState) check(V int) error {
	if err := checkIDs(s.targets, V, "target"); err != nil {
		return err
	}
	if s.stats != nil && (len(s.stats.MeanLogit) != len(s.targets) || len(s.stats.Entropy) != len(s.targets)) {
		return fmt.Errorf("token statistics hold %d/%d rows, want %d", len(s.stats.MeanLogit), len(s.stats.Entropy), len(s.targets))
	}
	return nil
}

// pass prepares a headPass over h and w for element type T.
func newPass[T Float](s *headState, h *tensor.Dense, wv G.Value, buf *[]T) (*headPass[T], error) {
	w, err := weightOf[T](wv, "head output embedding")
	if err != nil {
		return nil, err
	}
	N, C, V, _ := headShapes(h.Shape(), wv.Shape())
	if len(s.lse) != N {
		s.lse = make([]float64, N)
	}
	rows := max(1, min(N, chunkElems/V))
	*buf = grow(*buf, rows*V+rows*C+N)
	b := *buf
	return &headPass[T]{h: h.Data().([]T), w: w, N: N, C: C, V: V, targets: s.targets,
		buf: b[:rows*V], hs: b[rows*V : rows*V+rows*C], k: b[rows*V+rows*C:], lse: s.lse, stats: s.stats}, nil
}

type logProbsOp struct {
	pure
	headState
	grads headGrads
}

func (op *logProbsOp) Arity() int { return 2 }
func (op *logProbsOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(1))
}
func (op *logProbsOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2)
	if err != nil {
		return nil, err
	}
	N, _, _, err := headShapes(s[0], s[1])
	return tensor.Shape{N}, err
}
func (op *logProbsOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.LogProbs{%d,%p}", len(op.targets), &op.targets[0])
}
func (op *logProbsOp) Hashcode() uint32 { return hashOf(op) }
func (op *logProbsOp) String() string   { return "LogProbs" }

func (op *logProbsOp) Do(in ...G.Value) (G.Value, error) {
	h, err := dense(in[0], "log-probs hidden")
	if err != nil {
		return nil, err
	}
	w := in[1]
	if err := op.check(w.Shape()[0]); err != nil {
		return nil, fmt.Errorf("log-probs: %w", err)
	}
	out := op.out.get(h.Dtype(), h.Shape()[0])
	switch h.Dtype() {
	case tensor.Float32:
		p, err := newPass(&op.headState, h, w, &op.buf32)
		if err != nil {
			return nil, fmt.Errorf("log-probs: %w", err)
		}
		p.logp = out.Data().([]float32)
		p.run()
	default:
		p, err := newPass(&op.headState, h, w, &op.buf64)
		if err != nil {
			return nil, fmt.Errorf("log-probs: %w", err)
		}
		p.logp = out.Data().([]float64)
		p.run()
	}
	return out, nil
}

func (op *logProbsOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *logProbsOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	bwd, err := apply(&logProbsGradOp{fwd: op}, in[0], in[1], out, grad)
	if err != nil {
		return nil, err
	}
	dh, err := newPick(&op.grads, bwd, 0, "dh", in[0].Shape())
	if err != nil {
		return nil, err
	}
	dw, err := newPick(&op.grads, bwd, 1, "dw", in[1].Shape())
	op.grads.nodes = [2]*G.Node{dh, dw}
	return G.Nodes{dh, dw}, err
}

// headGrads hands out the head's two gradients and records their nodes,
// so a program that reads only one of them does not pay for the other.
type headGrads struct {
	dh, dw *tensor.Dense
	nodes  [2]*G.Node
}

func (g *headGrads) output(i int) *tensor.Dense {
	if i == 0 {
		return g.dh
	}
	return g.dw
}

// logProbsGradOp is the backward pass of LogProbs from (h, w, logp, g):
// per chunk, z is recomputed, ∂L/∂z = g·(onehot(y) − exp(z − lse)), and
// dh = ∂L/∂z·W, dw = (∂L/∂z)ᵀ·h.
type logProbsGradOp struct {
	pure
	terminal
	fwd          *logProbsOp
	planned      bool
	wantH, wantW bool
	placeholder  buffer
}

// Plan skips the gradient of whichever input the program does not read.
func (op *logProbsGradOp) Plan(has func(*G.Node) bool) {
	op.planned = true
	op.wantH, op.wantW = has(op.fwd.grads.nodes[0]), has(op.fwd.grads.nodes[1])
}

func (op *logProbsGradOp) Arity() int { return 4 }
func (op *logProbsGradOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(1), tensorType(1), tensorType(1))
}
func (op *logProbsGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{1}, nil
}
func (op *logProbsGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.LogProbsGrad{%d,%p}", len(op.fwd.targets), &op.fwd.targets[0])
}
func (op *logProbsGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *logProbsGradOp) String() string   { return "LogProbsGrad" }

func (op *logProbsGradOp) Do(in ...G.Value) (G.Value, error) {
	h, err := dense(in[0], "log-probs gradient hidden")
	if err != nil {
		return nil, err
	}
	w := in[1]
	g, err := dense(in[3], "log-probs upstream gradient")
	if err != nil {
		return nil, err
	}
	f := op.fwd
	if len(f.lse) != h.Shape()[0] {
		return nil, fmt.Errorf("log-probs gradient: forward pass has not run")
	}
	wantH, wantW := !op.planned || op.wantH, !op.planned || op.wantW
	if isBF16(w) {
		if op.planned && op.wantW {
			return nil, fmt.Errorf("log-probs gradient: the output embedding is frozen in bfloat16 and has no gradient")
		}
		wantW = false
	}
	dt := h.Dtype()
	f.grads.dh, f.grads.dw = nil, nil
	if wantH {
		f.grads.dh = f.dh.get(dt, h.Shape()...)
	}
	if wantW {
		f.grads.dw = f.dw.get(dt, w.Shape()...)
	}
	switch dt {
	case tensor.Float32:
		p, err := newPass(&f.headState, h, w, &f.buf32)
		if err != nil {
			return nil, fmt.Errorf("log-probs gradient: %w", err)
		}
		p.replay, p.coef = true, g.Data().([]float32)
		p.dh, p.dw = optData[float32](f.grads.dh), optData[float32](f.grads.dw)
		p.run()
	default:
		p, err := newPass(&f.headState, h, w, &f.buf64)
		if err != nil {
			return nil, fmt.Errorf("log-probs gradient: %w", err)
		}
		p.replay, p.coef = true, g.Data().([]float64)
		p.dh, p.dw = optData[float64](f.grads.dh), optData[float64](f.grads.dw)
		p.run()
	}
	return placeholder(&op.placeholder, dt), nil
}

// optData is t's backing slice, or nil for a nil tensor.
func optData[T Float](t *tensor.Dense) []T {
	if t == nil {
		return nil
	}
	return t.Data().([]T)
}

type meanNLLOp struct {
	pure
	headState
	wantH, wantW bool       // set by Plan: gradients the running program reads
	haveH, haveW bool       // what the last forward pass computed
	gradNodes    [2]*G.Node // ∂L/∂h and ∂L/∂W
	logp32       []float32
	coef32       []float32
	logp64       []float64
	coef64       []float64
}

// Plan decides which gradients the forward pass computes.
func (op *meanNLLOp) Plan(has func(*G.Node) bool) {
	op.wantH, op.wantW = has(op.gradNodes[0]), has(op.gradNodes[1])
}

func (op *meanNLLOp) Arity() int { return 3 }
func (op *meanNLLOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(1), a)
}
func (op *meanNLLOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2, 1)
	if err != nil {
		return nil, err
	}
	N, _, _, err := headShapes(s[0], s[1])
	if err == nil && s[2][0] != N {
		err = fmt.Errorf("mean NLL: %d weights for %d rows", s[2][0], N)
	}
	return tensor.ScalarShape(), err
}
func (op *meanNLLOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.MeanNLL{%d,%p}", len(op.targets), &op.targets[0])
}
func (op *meanNLLOp) Hashcode() uint32 { return hashOf(op) }
func (op *meanNLLOp) String() string   { return "MeanNLL" }

func (op *meanNLLOp) Do(in ...G.Value) (G.Value, error) {
	h, err := dense(in[0], "mean NLL hidden")
	if err != nil {
		return nil, err
	}
	w := in[1]
	wt, err := dense(in[2], "mean NLL weights")
	if err != nil {
		return nil, err
	}
	if err := op.check(w.Shape()[0]); err != nil {
		return nil, fmt.Errorf("mean NLL: %w", err)
	}
	dt := h.Dtype()
	// A bfloat16 output embedding is frozen: its gradient is never
	// computed (reading it is an error of scaledGradOp).
	op.haveH, op.haveW = op.wantH, op.wantW && !isBF16(w)
	var loss float64
	switch dt {
	case tensor.Float32:
		loss, err = meanNLL(op, h, w, wt.Data().([]float32), &op.buf32, &op.logp32, &op.coef32)
	default:
		loss, err = meanNLL(op, h, w, wt.Data().([]float64), &op.buf64, &op.logp64, &op.coef64)
	}
	if err != nil {
		return nil, err
	}
	return newScalar(dt, loss), nil
}

// meanNLL runs the forward pass, with gradients when planned.
func meanNLL[T Float](op *meanNLLOp, h *tensor.Dense, w G.Value, weights []T, buf, logp, coef *[]T) (float64, error) {
	var total float64
	for n, v := range weights {
		if v < 0 || math.IsNaN(float64(v)) {
			return 0, fmt.Errorf("mean NLL: weight %v at position %d (weights must be ≥ 0)", v, n)
		}
		total += float64(v)
	}
	p, err := newPass(&op.headState, h, w, buf)
	if err != nil {
		return 0, fmt.Errorf("mean NLL: %w", err)
	}
	*logp = grow(*logp, p.N)
	p.logp = *logp
	if op.haveH || op.haveW {
		*coef = grow(*coef, p.N)
		c := *coef
		for n, v := range weights {
			c[n] = 0
			if total > 0 {
				c[n] = T(-float64(v) / total) // ∂L/∂logp[n]
			}
		}
		p.coef = c
		dt := h.Dtype()
		if op.haveH {
			p.dh = op.dh.get(dt, h.Shape()...).Data().([]T)
		}
		if op.haveW {
			p.dw = op.dw.get(dt, w.Shape()...).Data().([]T)
		}
	}
	p.run()
	if total == 0 {
		return 0, nil
	}
	var loss float64
	for n, v := range weights {
		loss -= float64(v) * float64(p.logp[n])
	}
	return loss / total, nil
}

func (op *meanNLLOp) DiffWRT(int) []bool { return []bool{true, true, false} }
func (op *meanNLLOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	var err error
	for i, name := range []string{"dh", "dw"} {
		if op.gradNodes[i], err = apply(&scaledGradOp{fwd: op, i: i, name: name, shape: in[i].Shape().Clone()}, out, grad); err != nil {
			return nil, err
		}
	}
	return G.Nodes{op.gradNodes[0], op.gradNodes[1], nil}, nil
}

// scaledGradOp hands out a gradient MeanNLL computed in its forward pass,
// multiplied by the upstream gradient (1 when the loss is the objective).
// Its children are (loss, upstream gradient).
type scaledGradOp struct {
	pure
	terminal
	fwd   *meanNLLOp
	i     int
	name  string
	shape tensor.Shape
}

func (op *scaledGradOp) Arity() int { return 2 }
func (op *scaledGradOp) Type() hm.Type {
	return hm.NewFnType(a, a, tensorType(op.shape.Dims()))
}
func (op *scaledGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return op.shape.Clone(), nil
}
func (op *scaledGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.MeanNLLGrad{%s,%v}", op.name, op.shape)
}
func (op *scaledGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *scaledGradOp) String() string   { return "MeanNLLGrad(" + op.name + ")" }

func (op *scaledGradOp) Do(in ...G.Value) (G.Value, error) {
	s, err := scalar(in[1])
	if err != nil {
		return nil, fmt.Errorf("%v: %w", op, err)
	}
	have, b := op.fwd.haveH, &op.fwd.dh
	if op.i == 1 {
		have, b = op.fwd.haveW, &op.fwd.dw
	}
	if !have || b.t == nil {
		return nil, fmt.Errorf("%v: the forward pass did not compute this gradient", op)
	}
	if s != 1 {
		switch d := b.t.Data().(type) {
		case []float32:
			for j := range d {
				d[j] *= float32(s)
			}
		case []float64:
			for j := range d {
				d[j] *= s
			}
		}
	}
	return b.t, nil
}
