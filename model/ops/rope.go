package ops

import (
	"fmt"
	"hash"
	"math"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// RoPE rotates each head of x (N, heads·D) by its token's position (rotary
// position embedding, Su et al. 2021, eq. 34), in the Hugging Face
// half-split convention (`rotate_half`): dimension i is paired with
// i + D/2, and with angle θ = p·invFreq[i] at position p = n mod T,
//
//	y[i]       = x[i]·cos θ − x[i+D/2]·sin θ
//	y[i+D/2]   = x[i+D/2]·cos θ + x[i]·sin θ      (i < D/2)
//
// invFreq holds the D/2 inverse frequencies (already rescaled, e.g. by the
// Llama-3 rule). The backward pass is the inverse rotation.
func RoPE(x *G.Node, seqLen, heads int, invFreq []float64) (*G.Node, error) {
	return apply(newRoPE(RoPELayout{Width: 2 * len(invFreq)}, seqLen, heads, invFreq, false), x)
}

// RoPELayout places the rotated dimensions inside each head.
type RoPELayout struct {
	// Width is the head's width in x; the rotated part is the 2·len(invFreq)
	// dimensions from Offset on, the rest passes through unchanged.
	Width, Offset int
	// Interleaved pairs dimension 2i with 2i+1 (DeepSeek's rotary key and
	// query parts) instead of i with i + D/2.
	Interleaved bool
	// Magnitude multiplies the rotated part (YaRN's cos/sin factor); 0
	// means 1.
	Magnitude float64
	// Positions, when set, is an (N) host buffer read at every run that
	// gives each row's position (each in [0, seqLen)) instead of n mod
	// seqLen: packed documents restart at 0.
	Positions []int32
}

// hashKey is the layout without the positions buffer.
func (l RoPELayout) hashKey() string {
	return fmt.Sprintf("{%d,%d,%v,%v,%v}", l.Width, l.Offset, l.Interleaved, l.Magnitude, l.Positions != nil)
}

// RoPEPart is RoPE on part of each head of x (N, heads·Width) in the given
// layout, times Magnitude: multi-head latent attention rotates only the qk_rope_head_dim
// tail of each query head (DeepSeek-V2 §2.1.3, decoupled RoPE), with the
// pairs interleaved (DeepSeek's apply_rotary_pos_emb de-interleaves, then
// rotates halves: the same rotation of pairs (2i, 2i+1), whose layout
// attention does not see since queries and keys share it).
func RoPEPart(x *G.Node, seqLen, heads int, layout RoPELayout, invFreq []float64) (*G.Node, error) {
	if layout.Offset < 0 || layout.Offset+2*len(invFreq) > layout.Width {
		return nil, fmt.Errorf("rope: %d rotated dimensions from %d do not fit a head of %d", 2*len(invFreq), layout.Offset, layout.Width)
	}
	return apply(newRoPE(layout, seqLen, heads, invFreq, false), x)
}

type ropeOp struct {
	pure
	seqLen, heads, half int
	layout              RoPELayout
	invFreq             []float64
	inverse             bool      // rotate by −θ (the backward pass)
	cos64, sin64        []float64 // (T, D/2)
	cos32, sin32        []float32
	out                 buffer
}

func newRoPE(layout RoPELayout, seqLen, heads int, invFreq []float64, inverse bool) *ropeOp {
	half := len(invFreq)
	op := &ropeOp{seqLen: seqLen, heads: heads, half: half, layout: layout, invFreq: invFreq, inverse: inverse,
		cos64: make([]float64, seqLen*half), sin64: make([]float64, seqLen*half),
		cos32: make([]float32, seqLen*half), sin32: make([]float32, seqLen*half)}
	m := layout.Magnitude
	if m == 0 {
		m = 1
	}
	for p := range seqLen {
		for i, f := range invFreq {
			s, c := math.Sincos(float64(p) * f)
			s, c = m*s, m*c // m·R(θ); its transpose is m·R(−θ)
			if inverse {
				s = -s
			}
			op.cos64[p*half+i], op.sin64[p*half+i] = c, s
			op.cos32[p*half+i], op.sin32[p*half+i] = float32(c), float32(s)
		}
	}
	return op
}

func (op *ropeOp) Arity() int    { return 1 }
func (op *ropeOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(2)) }
func (op *ropeOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2)
	if err != nil {
		return nil, err
	}
	if s[0][1] != op.heads*op.layout.Width || s[0][0]%op.seqLen != 0 {
		return nil, fmt.Errorf("rope: input %v is not (B·%d, %d heads × %d)", s[0], op.seqLen, op.heads, op.layout.Width)
	}
	return s[0].Clone(), nil
}
func (op *ropeOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.RoPE{%d,%d,%v,%s,%v}", op.seqLen, op.heads, op.inverse, op.layout.hashKey(), op.invFreq)
}
func (op *ropeOp) Hashcode() uint32 { return hashOf(op) }
func (op *ropeOp) String() string {
	if op.inverse {
		return "RoPEInverse"
	}
	return "RoPE"
}

func (op *ropeOp) Do(in ...G.Value) (G.Value, error) {
	x, err := dense(in[0], "rope x")
	if err != nil {
		return nil, err
	}
	if pos := op.layout.Positions; pos != nil {
		if len(pos) != x.Shape()[0] {
			return nil, fmt.Errorf("rope: %d positions for %d rows", len(pos), x.Shape()[0])
		}
		for n, p := range pos {
			if p < 0 || int(p) >= op.seqLen {
				return nil, fmt.Errorf("rope: row %d has position %d outside [0, %d)", n, p, op.seqLen)
			}
		}
	}
	out := op.out.get(x.Dtype(), x.Shape()...)
	switch x.Dtype() {
	case tensor.Float32:
		rope(floats[float32](x, out), op.cos32, op.sin32, op.seqLen, op.heads, op.half, op.layout)
	default:
		rope(floats[float64](x, out), op.cos64, op.sin64, op.seqLen, op.heads, op.half, op.layout)
	}
	return out, nil
}

// rope applies the rotation with tables cos, sin (T, D/2); s = {x, y}.
func rope[T Float](s [][]T, cos, sin []T, seqLen, heads, half int, layout RoPELayout) {
	x, y := s[0], s[1]
	width := heads * layout.Width
	N := len(x) / width
	if layout.Width != 2*half {
		copy(y, x) // the unrotated dimensions
	}
	// Pair i is (first + i·step, first + i·step + second).
	step, second := 1, half
	if layout.Interleaved {
		step, second = 2, 1
	}
	parallelFor(N, 64, func(lo, hi int) {
		for n := lo; n < hi; n++ {
			p := n % seqLen
			if layout.Positions != nil {
				p = int(layout.Positions[n])
			}
			c, sn := cos[p*half:(p+1)*half], sin[p*half:(p+1)*half]
			for h := range heads {
				at := n*width + h*layout.Width + layout.Offset
				xh, yh := x[at:at+2*half], y[at:at+2*half]
				for i := range half {
					i1, i2 := i*step, i*step+second
					x1, x2 := xh[i1], xh[i2]
					yh[i1] = x1*c[i] - x2*sn[i]
					yh[i2] = x2*c[i] + x1*sn[i]
				}
			}
		}
	})
}

func (op *ropeOp) DiffWRT(int) []bool { return []bool{true} }
func (op *ropeOp) SymDiff(_ G.Nodes, _, grad *G.Node) (G.Nodes, error) {
	// The rotation is orthogonal: its transpose is the rotation by −θ.
	d, err := apply(newRoPE(op.layout, op.seqLen, op.heads, op.invFreq, !op.inverse), grad)
	return G.Nodes{d}, err
}
