package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// This file holds the reshaping operations of multi-head latent attention
// (DeepSeek-V2 §2.1): splitting the kv_a projection into the latent and
// the rope key, taking the values out of kv_b's per-head (key, value)
// rows, and assembling per-head keys from a per-head part and a part
// shared by all heads. They move numbers only; their backward passes put
// each gradient back where its value came from (and sum a shared part
// over the heads that read it).

// HeadSlice takes dimensions [lo, hi) of each of the heads of x
// (N, heads·width): the result is (N, heads·(hi−lo)), head by head.
func HeadSlice(x *G.Node, heads, width, lo, hi int) (*G.Node, error) {
	if heads <= 0 || lo < 0 || hi <= lo || hi > width {
		return nil, fmt.Errorf("head slice: [%d, %d) of %d heads of %d", lo, hi, heads, width)
	}
	return apply(&headSliceOp{heads: heads, width: width, lo: lo, hi: hi}, x)
}

type headSliceOp struct {
	pure
	heads, width, lo, hi int
	out                  buffer
}

func (op *headSliceOp) Arity() int    { return 1 }
func (op *headSliceOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(2)) }
func (op *headSliceOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2)
	if err != nil {
		return nil, err
	}
	if s[0][1] != op.heads*op.width {
		return nil, fmt.Errorf("head slice: input %v is not (N, %d heads × %d)", s[0], op.heads, op.width)
	}
	return tensor.Shape{s[0][0], op.heads * (op.hi - op.lo)}, nil
}
func (op *headSliceOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.HeadSlice{%d,%d,%d,%d}", op.heads, op.width, op.lo, op.hi)
}
func (op *headSliceOp) Hashcode() uint32 { return hashOf(op) }
func (op *headSliceOp) String() string {
	return fmt.Sprintf("HeadSlice{%d×%d[%d:%d]}", op.heads, op.width, op.lo, op.hi)
}

func (op *headSliceOp) Do(in ...G.Value) (G.Value, error) {
	x, err := dense(in[0], "head slice x")
	if err != nil {
		return nil, err
	}
	N, w := x.Shape()[0], op.hi-op.lo
	out := op.out.get(x.Dtype(), N, op.heads*w)
	switch x.Dtype() {
	case tensor.Float32:
		s := floats[float32](x, out)
		copyHeads(s[1], w, 0, s[0], op.width, op.lo, N*op.heads, w)
	default:
		s := floats[float64](x, out)
		copyHeads(s[1], w, 0, s[0], op.width, op.lo, N*op.heads, w)
	}
	return out, nil
}

// copyHeads copies n blocks of w values: block i from src[i·sw + so] to
// dst[i·dw + do].
func copyHeads[T Float](dst []T, dw, do int, src []T, sw, so, n, w int) {
	for i := range n {
		copy(dst[i*dw+do:i*dw+do+w], src[i*sw+so:i*sw+so+w])
	}
}

func (op *headSliceOp) DiffWRT(int) []bool { return []bool{true} }
func (op *headSliceOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	d, err := apply(&headUnsliceOp{fwd: op}, grad)
	return G.Nodes{d}, err
}

// headUnsliceOp is HeadSlice's backward: the gradient in place, zeros
// elsewhere.
type headUnsliceOp struct {
	pure
	terminal
	fwd *headSliceOp
	out buffer
}

func (op *headUnsliceOp) Arity() int    { return 1 }
func (op *headUnsliceOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(2)) }
func (op *headUnsliceOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{s[0][0], op.fwd.heads * op.fwd.width}, nil
}
func (op *headUnsliceOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.HeadUnslice{%d,%d,%d,%d}", op.fwd.heads, op.fwd.width, op.fwd.lo, op.fwd.hi)
}
func (op *headUnsliceOp) Hashcode() uint32 { return hashOf(op) }
func (op *headUnsliceOp) String() string   { return "HeadUnslice" }

func (op *headUnsliceOp) Do(in ...G.Value) (G.Value, error) {
	g, err := dense(in[0], "head unslice gradient")
	if err != nil {
		return nil, err
	}
	f := op.fwd
	N, w := g.Shape()[0], f.hi-f.lo
	out := op.out.get(g.Dtype(), N, f.heads*f.width)
	switch g.Dtype() {
	case tensor.Float32:
		s := floats[float32](g, out)
		clear(s[1])
		copyHeads(s[1], f.width, f.lo, s[0], w, 0, N*f.heads, w)
	default:
		s := floats[float64](g, out)
		clear(s[1])
		copyHeads(s[1], f.width, f.lo, s[0], w, 0, N*f.heads, w)
	}
	return out, nil
}

// MLAKeys assembles the keys of multi-head latent attention: kv is
// kv_b_proj's output (N, heads·(nope+vdim)), each head its nope key part
// then its value; shared is the rotated rope key (N, rope), one for all
// heads. Key head h is (kv_h[0:nope], shared): the result is
// (N, heads·(nope+rope)).
func MLAKeys(kv, shared *G.Node, heads, nope, vdim int) (*G.Node, error) {
	if heads <= 0 || nope <= 0 || vdim <= 0 {
		return nil, fmt.Errorf("mla keys: %d heads of %d + %d", heads, nope, vdim)
	}
	return apply(&mlaKeysOp{heads: heads, nope: nope, vdim: vdim}, kv, shared)
}

type mlaKeysOp struct {
	pure
	heads, nope, vdim int
	out               buffer
	grads             mlaKeysGrads
}

func (op *mlaKeysOp) Arity() int { return 2 }
func (op *mlaKeysOp) Type() hm.Type {
	return hm.NewFnType(tensorType(2), tensorType(2), tensorType(2))
}
func (op *mlaKeysOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2, 2)
	if err != nil {
		return nil, err
	}
	if s[0][1] != op.heads*(op.nope+op.vdim) || s[1][0] != s[0][0] {
		return nil, fmt.Errorf("mla keys: kv %v is not (N, %d heads × (%d + %d)) or rope key %v has other rows", s[0], op.heads, op.nope, op.vdim, s[1])
	}
	return tensor.Shape{s[0][0], op.heads * (op.nope + s[1][1])}, nil
}
func (op *mlaKeysOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.MLAKeys{%d,%d,%d}", op.heads, op.nope, op.vdim)
}
func (op *mlaKeysOp) Hashcode() uint32 { return hashOf(op) }
func (op *mlaKeysOp) String() string   { return "MLAKeys" }

func (op *mlaKeysOp) Do(in ...G.Value) (G.Value, error) {
	kv, err := dense(in[0], "mla keys kv")
	if err != nil {
		return nil, err
	}
	r, err := dense(in[1], "mla keys rope key")
	if err != nil {
		return nil, err
	}
	N, R := kv.Shape()[0], r.Shape()[1]
	out := op.out.get(kv.Dtype(), N, op.heads*(op.nope+R))
	switch kv.Dtype() {
	case tensor.Float32:
		mlaKeys(floats[float32](kv, r, out), N, op.heads, op.nope, op.vdim, R)
	default:
		mlaKeys(floats[float64](kv, r, out), N, op.heads, op.nope, op.vdim, R)
	}
	return out, nil
}

// mlaKeys fills k; s = {kv, rope key, k}.
func mlaKeys[T Float](s [][]T, N, heads, nope, vdim, R int) {
	kv, r, k := s[0], s[1], s[2]
	dk := nope + R
	for n := range N {
		for h := range heads {
			at := (n*heads + h) * dk
			copy(k[at:at+nope], kv[(n*heads+h)*(nope+vdim):])
			copy(k[at+nope:at+dk], r[n*R:(n+1)*R])
		}
	}
}

func (op *mlaKeysOp) DiffWRT(int) []bool { return []bool{true, true} }
func (op *mlaKeysOp) SymDiff(in G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	bwd, err := apply(&mlaKeysGradOp{fwd: op}, grad)
	if err != nil {
		return nil, err
	}
	dkv, err := newPick(&op.grads, bwd, 0, "dkv", in[0].Shape())
	if err != nil {
		return nil, err
	}
	dr, err := newPick(&op.grads, bwd, 1, "drope", in[1].Shape())
	return G.Nodes{dkv, dr}, err
}

// mlaKeysGrads are MLAKeys' two gradients.
type mlaKeysGrads struct{ dkv, dr buffer }

func (g *mlaKeysGrads) output(i int) *tensor.Dense {
	if i == 0 {
		return g.dkv.t
	}
	return g.dr.t
}

// mlaKeysGradOp is MLAKeys' backward from dk: the nope parts go back to
// kv (zero on the values), the rope parts are summed over the heads.
type mlaKeysGradOp struct {
	pure
	terminal
	fwd         *mlaKeysOp
	placeholder buffer
}

func (op *mlaKeysGradOp) Arity() int    { return 1 }
func (op *mlaKeysGradOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(1)) }
func (op *mlaKeysGradOp) InferShape(...G.DimSizer) (tensor.Shape, error) {
	return tensor.Shape{1}, nil
}
func (op *mlaKeysGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.MLAKeysGrad{%d,%d,%d}", op.fwd.heads, op.fwd.nope, op.fwd.vdim)
}
func (op *mlaKeysGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *mlaKeysGradOp) String() string   { return "MLAKeysGrad" }

func (op *mlaKeysGradOp) Do(in ...G.Value) (G.Value, error) {
	dk, err := dense(in[0], "mla keys gradient")
	if err != nil {
		return nil, err
	}
	f := op.fwd
	N := dk.Shape()[0]
	R := dk.Shape()[1]/f.heads - f.nope
	dt := dk.Dtype()
	dkv := f.grads.dkv.get(dt, N, f.heads*(f.nope+f.vdim))
	dr := f.grads.dr.get(dt, N, R)
	switch dt {
	case tensor.Float32:
		mlaKeysBackward(floats[float32](dk, dkv, dr), N, f.heads, f.nope, f.vdim, R)
	default:
		mlaKeysBackward(floats[float64](dk, dkv, dr), N, f.heads, f.nope, f.vdim, R)
	}
	return placeholder(&op.placeholder, dt), nil
}

// mlaKeysBackward fills dkv and drope; s = {dk, dkv, drope}.
func mlaKeysBackward[T Float](s [][]T, N, heads, nope, vdim, R int) {
	dk, dkv, dr := s[0], s[1], s[2]
	clear(dkv)
	clear(dr)
	dkw := nope + R
	for n := range N {
		drow := dr[n*R : (n+1)*R]
		for h := range heads {
			at := (n*heads + h) * dkw
			copy(dkv[(n*heads+h)*(nope+vdim):], dk[at:at+nope])
			for i, v := range dk[at+nope : at+dkw] {
				drow[i] += v
			}
		}
	}
}
