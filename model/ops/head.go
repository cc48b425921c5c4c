package ops

import (
	"fmt"
	"hash"
	"math"
	"runtime"
	"sync"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/blas"
)

// TokenStats are per-token statistics of the output distribution, written
// by LogProbs and MeanNLL on every forward pass (not differentiated).
type TokenStats struct {
	MeanLogit []float32 // (N) mean of the V logits
	Entropy   []float32 // (N) −Σ p·log p of the softmax, in nats
}

// chunkElems bounds the logits held at once (64 MiB of float32, a
// quarter of stories15M's full 8×256×32000 logits): rows × V in a pass that
// computes the output embedding's gradient during the forward pass
// (runRows), rows × vocabulary block otherwise (runBlocks). A variable so
// tests can force several chunks on small shapes.
var chunkElems = 1 << 24

// blockElems bounds a vocabulary block of the output embedding (rows × C
// values, 4 MiB of float32), the part of W both products of runBlocks read
// while it is in cache. BenchmarkHeadFrozen (∂L/∂h in the forward pass),
// whole rows in 64 MiB chunks against these blocks: stories15M's head
// 277–291 → 300–316 GFLOP/s and qwen05's 292–305 → 369–370 on OpenBLAS's
// AVX-512 kernels (two lanes), 334–344 → 377–383 and 273–285 → 375–384 on
// gotune's (one lane). On the AVX-512 kernels, blocks of 1 MiB ran
// qwen05's head at 317–331 GFLOP/s, of 16 MiB at 386–404 but stories15M's
// at 337–338 against 340–346 with these. A variable so tests can force
// several blocks.
var blockElems = 1 << 20

// wholeRows makes every forward pass hold whole rows of logits (runRows),
// for benchmarks that compare the two ways.
var wholeRows bool

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

// headPass holds one pass of the fused head over all rows.
type headPass[T Float] struct {
	h       []T       // (N, C)
	w       weight[T] // (V, C)
	N, C, V int
	targets []int32
	buf     []T       // (rows, V) runRows' logits scratch
	hs      []T       // (rows, C) scratch
	k       []T       // (N) per-row scale of exp(z − shift) in ∂L/∂z
	lse     []float64 // (N) log Σ exp z; written by the forward pass, read by the backward
	logp    []T       // (N) forward output
	stats   *TokenStats
	coef    []T // (N) ∂L/∂logp; nil in a pass without gradients
	dh, dw  []T // gradient outputs; nil skips one
	replay  bool
	lanes   []headLane[T] // runBlocks' lanes
}

// maxLanes bounds the lanes of runBlocks.
const maxLanes = 16

// run computes logits z = h·Wᵀ and, with coef, the gradients, from
//
//	∂L/∂z = c·(onehot(y) − softmax(z)) = k·E + c·onehot(y),
//
// c = coef[n], where E = exp(z − shift) is what a block of logits holds
// after its row pass and k the matching per-row factor (−c/Σ exp(z − max)
// in the forward pass, which shifts by the row maximum; −c in a replay,
// the backward pass of LogProbs, which shifts by the saved lse so E is
// softmax(z)). Row factors are applied to the small side of each product
// instead of to E:
//
//	dh = diag(k)·(E·W) + c ⊙ W[y]       dw += Eᵀ·(diag(k)·h) + scatter(c ⊙ h at rows y)
//
// A forward pass that also computes dw needs every row's k before its
// first product with h, so it holds whole rows of logits (runRows); every
// other pass walks the vocabulary in blocks (runBlocks), so W is read once
// per chunk of rows and each block is in cache for both of its products.
func (p *headPass[T]) run() {
	if (p.dw != nil || wholeRows) && !p.replay {
		p.runRows()
		return
	}
	p.runBlocks()
}

// runRows computes the logits of chunks of rows, whole rows at a time, in
// the forward pass.
func (p *headPass[T]) runRows() {
	rows := max(1, min(p.N, chunkElems/p.V))
	for r0 := 0; r0 < p.N; r0 += rows {
		nc := min(rows, p.N-r0)
		z := p.buf[:nc*p.V]
		hc := p.h[r0*p.C : (r0+nc)*p.C]
		// z = h·Wᵀ   (nc, V)
		p.w.mulT(nc, hc, p.C, z, p.V)
		parallelFor(nc, 8, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				// A whole row is one block of the online sums.
				st := resetOnline(p.lanes[0].online[4*i : 4*i+4])
				p.blockRow(r0+i, 0, z[i*p.V:(i+1)*p.V], st, nil)
				p.finish(r0+i, st)
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
			p.scaleRows(nc, k, hc)
			beta := T(1)
			if r0 == 0 {
				beta = 0
			}
			gemm(true, false, p.V, p.C, nc, 1, z, p.V, p.hs, p.C, beta, p.dw, p.C)
			p.scatter(r0, nc)
		}
	}
}

// runBlocks walks the vocabulary in blocks of W for each chunk of rows.
// The forward pass keeps each row's log-sum-exp online (Milakov and
// Gimelshein 2018, "Online normalizer calculation for softmax"): with the
// running maximum m and s = Σ exp(z − m) over the blocks so far, a block
// with maximum m′ > m rescales s, and the partial E·W, by exp(m − m′)
// before adding its own terms, as flash attention does with its output
// (Dao et al. 2022). Where each product runs on one thread (blas.Serial),
// the blocks are dealt to one lane per core, each with its own sums and
// partial E·W, merged per row at the end the same way; otherwise one lane
// runs products that split themselves across the cores.
func (p *headPass[T]) runBlocks() {
	vb := vocabBlock(p.V, p.C)
	rows := blockRows(p.N, vb, len(p.lanes))
	grads := p.coef != nil && p.dh != nil
	for r0 := 0; r0 < p.N; r0 += rows {
		nc := min(rows, p.N-r0)
		hc := p.h[r0*p.C : (r0+nc)*p.C]
		if p.replay && p.dw != nil {
			for i := range nc {
				p.k[r0+i] = -p.coef[r0+i]
			}
			p.scaleRows(nc, p.k[r0:r0+nc], hc)
		}
		var wg sync.WaitGroup
		for l := range p.lanes {
			ln := &p.lanes[l]
			if grads {
				ln.acc = ln.accBuf[:nc*p.C]
				if l == 0 {
					ln.acc = p.dh[r0*p.C : (r0+nc)*p.C]
				}
				clear(ln.acc)
			}
			if !p.replay {
				resetOnline(ln.online[:4*nc])
			}
			work := func() {
				for v0 := l * vb; v0 < p.V; v0 += len(p.lanes) * vb {
					p.block(ln, r0, nc, v0, min(vb, p.V-v0))
				}
			}
			if len(p.lanes) == 1 {
				work()
				continue
			}
			wg.Add(1)
			go func() { defer wg.Done(); work() }()
		}
		wg.Wait()
		parallelFor(nc, 8, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				p.mergeRow(r0+i, i)
			}
		})
		if p.replay && p.dw != nil {
			p.scatter(r0, nc)
		}
	}
}

// headLane is one lane's share of runBlocks: a scratch for its block of
// logits (and of widened bfloat16 rows), its rows' online sums and their
// partial E·W (lane 0's is the gradient's memory itself).
type headLane[T Float] struct {
	z, wb       []T
	acc, accBuf []T       // (rows, C)
	online      []float64 // (4·rows) max, Σ exp(z − max), Σ exp(z − max)·z, Σ z
}

// block runs the vocabulary block [v0, v0+nv) for rows [r0, r0+nc) in
// lane ln: its logits, their row pass and the products that read them.
func (p *headPass[T]) block(ln *headLane[T], r0, nc, v0, nv int) {
	serial := len(p.lanes) > 1
	mm := gemm[T]
	if serial {
		mm = gemmCall[T]
	}
	hc := p.h[r0*p.C : (r0+nc)*p.C]
	wb := p.w.floatRows(v0, v0+nv, ln.wb, !serial)
	z := ln.z[:nc*nv]
	// z = h·W[v0:v0+nv]ᵀ   (nc, nv)
	mm(false, true, nc, nv, p.C, 1, hc, p.C, wb, p.C, 0, z, nv)
	rowPass := func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var acc []T
			if ln.acc != nil {
				acc = ln.acc[i*p.C : (i+1)*p.C]
			}
			p.blockRow(r0+i, v0, z[i*nv:(i+1)*nv], ln.online[4*i:4*i+4], acc)
		}
	}
	if serial {
		rowPass(0, nc)
	} else {
		parallelFor(nc, 8, rowPass)
	}
	if ln.acc != nil {
		// acc += E·W[v0:v0+nv]   (nc, C)
		mm(false, false, nc, p.C, nv, 1, z, nv, wb, p.C, 1, ln.acc, p.C)
	}
	if p.replay && p.dw != nil {
		// dw[v0:v0+nv] += Eᵀ·(diag(k)·h)   (nv, C)
		beta := T(1)
		if r0 == 0 {
			beta = 0
		}
		mm(true, false, nv, p.C, nc, 1, z, nv, p.hs, p.C, beta, p.dw[v0*p.C:(v0+nv)*p.C], p.C)
	}
}

// blockRow turns row n's logits z over the vocabulary block starting at
// v0 into E = exp(z − shift): in a replay shifted by the saved lse, in the
// forward pass by the running maximum, updating the row's online sums st
// and rescaling its partial E·W, acc (nil for none), when the maximum
// grows.
func (p *headPass[T]) blockRow(n, v0 int, z []T, st []float64, acc []T) {
	if p.replay {
		expShift(z, p.lse[n])
		return
	}
	if y := int(p.targets[n]) - v0; y >= 0 && y < len(z) {
		p.logp[n] = z[y] // the target's logit, until mergeRow
	}
	bm, sum := maxSum(z)
	m := max(st[0], float64(bm))
	scale := math.Exp(st[0] - m) // 0 for the first block
	se, sez := expShiftSums(z, T(m))
	st[0], st[1], st[2], st[3] = m, st[1]*scale+se, st[2]*scale+sez, st[3]+sum
	if acc != nil && scale != 1 {
		s := T(scale)
		for j := range acc {
			acc[j] *= s
		}
	}
}

// mergeRow combines the lanes' results for row n (row i of the chunk):
// the online sums into the forward results (finish), the partial E·W into
// lane 0's, rescaled to the common maximum, and then dh = diag(k)·E·W +
// c ⊙ W[y].
func (p *headPass[T]) mergeRow(n, i int) {
	st := p.lanes[0].online[4*i : 4*i+4]
	var scales [maxLanes]float64
	if !p.replay {
		m := st[0]
		for _, ln := range p.lanes[1:] {
			m = max(m, ln.online[4*i])
		}
		var total [4]float64
		total[0] = m
		for l, ln := range p.lanes {
			o := ln.online[4*i : 4*i+4]
			scales[l] = math.Exp(o[0] - m)
			total[1] += o[1] * scales[l]
			total[2] += o[2] * scales[l]
			total[3] += o[3]
		}
		p.finish(n, total[:])
	} else {
		for l := range p.lanes {
			scales[l] = 1
		}
	}
	acc := p.lanes[0].acc
	if acc == nil {
		return
	}
	row := acc[i*p.C : (i+1)*p.C]
	if s := T(scales[0]); s != 1 {
		for j := range row {
			row[j] *= s
		}
	}
	for l, ln := range p.lanes[1:] {
		s := T(scales[l+1])
		for j, v := range ln.acc[i*p.C : (i+1)*p.C] {
			row[j] += s * v
		}
	}
	k, c := p.k[n], p.coef[n]
	if p.replay {
		k = -c
	}
	p.w.scaleAddRow(int(p.targets[n]), k, c, row)
}

// finish records row n's forward results from its online sums st (max,
// Σ exp(z − max), Σ exp(z − max)·z, Σ z); logp[n] holds the target's logit.
func (p *headPass[T]) finish(n int, st []float64) {
	lse := st[0] + math.Log(st[1])
	p.lse[n] = lse
	p.logp[n] = T(float64(p.logp[n]) - lse)
	if p.stats != nil {
		p.stats.MeanLogit[n] = float32(st[3] / float64(p.V))
		p.stats.Entropy[n] = float32(lse - st[2]/st[1]) // −Σ p log p = lse − Σ p·z
	}
	if p.coef != nil {
		p.k[n] = T(-float64(p.coef[n]) / st[1])
	}
}

// scaleRows sets hs = diag(k)·h for the nc rows of hc.
func (p *headPass[T]) scaleRows(nc int, k, hc []T) {
	for i := range nc {
		for j, v := range hc[i*p.C : (i+1)*p.C] {
			p.hs[i*p.C+j] = k[i] * v
		}
	}
}

// scatter adds c ⊙ h of rows [r0, r0+nc) to dw's rows of their targets.
func (p *headPass[T]) scatter(r0, nc int) {
	for i := range nc {
		n := r0 + i
		row := p.dw[int(p.targets[n])*p.C : (int(p.targets[n])+1)*p.C]
		for j, v := range p.h[n*p.C : (n+1)*p.C] {
			row[j] += p.coef[n] * v
		}
	}
}

// vocabBlock is the rows of W in a vocabulary block of runBlocks.
func vocabBlock(V, C int) int { return max(1, min(V, blockElems/C)) }

// blockRows is the rows of a chunk of runBlocks: its lanes hold at most
// chunkElems logits together.
func blockRows(N, vb, lanes int) int { return max(1, min(N, chunkElems/(vb*lanes))) }

// resetOnline starts the online sums st (four a row: max, Σ exp(z − max),
// Σ exp(z − max)·z, Σ z) of rows that have seen no logits, and returns st.
func resetOnline(st []float64) []float64 {
	for i := 0; i < len(st); i += 4 {
		st[i], st[i+1], st[i+2], st[i+3] = math.Inf(-1), 0, 0, 0
	}
	return st
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
	online  []float64 // runBlocks' running sums, 4 a row
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

// newPass prepares a headPass over h and w for element type T, with
// scratch for whole rows of logits (rowsOnly: a forward pass that computes
// the output embedding's gradient) or for runBlocks' lanes.
func newPass[T Float](s *headState, h *tensor.Dense, wv G.Value, buf *[]T, rowsOnly bool) (*headPass[T], error) {
	w, err := weightOf[T](wv, "head output embedding")
	if err != nil {
		return nil, err
	}
	N, C, V, _ := headShapes(h.Shape(), wv.Shape())
	if len(s.lse) != N {
		s.lse = make([]float64, N)
	}
	p := &headPass[T]{h: h.Data().([]T), w: w, N: N, C: C, V: V, targets: s.targets, lse: s.lse, stats: s.stats}
	if rowsOnly || wholeRows {
		rows := max(1, min(N, chunkElems/V))
		b := grow(*buf, rows*V+rows*C+N)
		*buf = b
		p.buf, p.hs, p.k = b[:rows*V], b[rows*V:rows*V+rows*C], b[rows*V+rows*C:]
		if len(s.online) < 4*rows {
			s.online = make([]float64, 4*rows)
		}
		p.lanes = []headLane[T]{{online: s.online[:4*rows]}} // runRows' rows' sums
		return p, nil
	}
	vb := vocabBlock(V, C)
	lanes := headLanes[T]((V + vb - 1) / vb)
	rows := blockRows(N, vb, lanes)
	widened := 0
	if w.bf != nil {
		widened = vb * C
	}
	per := rows*vb + widened + rows*C
	b := grow(*buf, rows*C+N+lanes*per)
	*buf = b
	p.hs, p.k, b = b[:rows*C], b[rows*C:rows*C+N], b[rows*C+N:]
	if len(s.online) < 4*rows*lanes {
		s.online = make([]float64, 4*rows*lanes)
	}
	p.lanes = make([]headLane[T], lanes)
	for l := range p.lanes {
		lb := b[l*per : (l+1)*per]
		p.lanes[l] = headLane[T]{z: lb[:rows*vb], wb: lb[rows*vb : rows*vb+widened], accBuf: lb[rows*vb+widened:],
			online: s.online[4*rows*l : 4*rows*(l+1)]}
	}
	return p, nil
}

// laneOverride, when > 0, sets runBlocks' lanes (tests).
var laneOverride int

// headLanes is the number of lanes runBlocks deals blocks vocabulary
// blocks to: one per core where float32 products run on one thread each,
// else one.
func headLanes[T Float](blocks int) int {
	if laneOverride > 0 {
		return min(laneOverride, maxLanes)
	}
	var zero T
	if _, f32 := any(zero).(float32); !f32 || !blas.Serial() {
		return 1
	}
	return max(1, min(runtime.GOMAXPROCS(0), blocks, maxLanes))
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
		p, err := newPass(&op.headState, h, w, &op.buf32, false)
		if err != nil {
			return nil, fmt.Errorf("log-probs: %w", err)
		}
		p.logp = out.Data().([]float32)
		p.run()
	default:
		p, err := newPass(&op.headState, h, w, &op.buf64, false)
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
		p, err := newPass(&f.headState, h, w, &f.buf32, false)
		if err != nil {
			return nil, fmt.Errorf("log-probs gradient: %w", err)
		}
		p.replay, p.coef = true, g.Data().([]float32)
		p.dh, p.dw = optData[float32](f.grads.dh), optData[float32](f.grads.dw)
		p.run()
	default:
		p, err := newPass(&f.headState, h, w, &f.buf64, false)
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
	p, err := newPass(&op.headState, h, w, buf, op.haveW)
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
