package lora

import (
	"fmt"
	"hash"
	"hash/fnv"
	"unsafe"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// hostScaleOp multiplies its input by a scalar that lives on the host and
// can change between runs without rebuilding the graph: this is how an
// adapter is switched off (scale 0) for the DPO and PPO reference pass.
// Its gradient is the same product with the incoming gradient. Each node
// writes into its own output tensor, reused across runs (no allocation
// per step).
type hostScaleOp struct {
	scale *float64
	out   *tensor.Dense
}

func (op *hostScaleOp) Arity() int { return 1 }
func (op *hostScaleOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op *hostScaleOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op *hostScaleOp) Do(in ...G.Value) (G.Value, error) {
	t, ok := in[0].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("lora scale: want a tensor, got %T", in[0])
	}
	op.out = reuse(op.out, t)
	return op.out, scaleInto(op.out, t, *op.scale)
}
func (op *hostScaleOp) ReturnsPtr() bool     { return false }
func (op *hostScaleOp) CallsExtern() bool    { return false }
func (op *hostScaleOp) OverwritesInput() int { return -1 }
func (op *hostScaleOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "lora.hostScale(%p)", op.scale)
}
func (op *hostScaleOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op *hostScaleOp) String() string       { return "loraScale" }
func (op *hostScaleOp) DiffWRT(n int) []bool { return []bool{true} }
func (op *hostScaleOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(&hostScaleOp{scale: op.scale}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}

// hostMaskOp multiplies its input elementwise by a mask held on the host
// (inverted dropout: entries 0 or 1/(1−p)), redrawn by the trainer before
// each step. gorgonia's own Dropout gives wrong results, hence this op.
type hostMaskOp struct {
	mask *[]float32
	out  *tensor.Dense
}

func (op *hostMaskOp) Arity() int { return 1 }
func (op *hostMaskOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op *hostMaskOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op *hostMaskOp) Do(in ...G.Value) (G.Value, error) {
	t, ok := in[0].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("lora dropout: want a tensor, got %T", in[0])
	}
	mask := *op.mask
	if len(mask) != t.Shape().TotalSize() {
		return nil, fmt.Errorf("lora dropout: mask has %d entries, input %v", len(mask), t.Shape())
	}
	op.out = reuse(op.out, t)
	switch d := op.out.Data().(type) {
	case []float32:
		for i, v := range t.Data().([]float32) {
			d[i] = v * mask[i]
		}
	case []float64:
		for i, v := range t.Data().([]float64) {
			d[i] = v * float64(mask[i])
		}
	default:
		return nil, fmt.Errorf("lora dropout: unsupported dtype %v", t.Dtype())
	}
	return op.out, nil
}
func (op *hostMaskOp) ReturnsPtr() bool     { return false }
func (op *hostMaskOp) CallsExtern() bool    { return false }
func (op *hostMaskOp) OverwritesInput() int { return -1 }
func (op *hostMaskOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "lora.hostMask(%p)", unsafe.Pointer(op.mask))
}
func (op *hostMaskOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op *hostMaskOp) String() string       { return "loraDropout" }
func (op *hostMaskOp) DiffWRT(n int) []bool { return []bool{true} }
func (op *hostMaskOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(&hostMaskOp{mask: op.mask}, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}

// reuse returns out when it already has t's dtype and shape, else a new
// tensor like t.
func reuse(out, t *tensor.Dense) *tensor.Dense {
	if out == nil || out.Dtype() != t.Dtype() || !out.Shape().Eq(t.Shape()) {
		return tensor.New(tensor.Of(t.Dtype()), tensor.WithShape(t.Shape().Clone()...))
	}
	return out
}

// scaleInto writes s·t into out (of t's dtype and shape).
func scaleInto(out, t *tensor.Dense, s float64) error {
	switch d := out.Data().(type) {
	case []float32:
		f := float32(s)
		for i, v := range t.Data().([]float32) {
			d[i] = f * v
		}
	case []float64:
		for i, v := range t.Data().([]float64) {
			d[i] = s * v
		}
	default:
		return fmt.Errorf("lora scale: unsupported dtype %v", t.Dtype())
	}
	return nil
}
