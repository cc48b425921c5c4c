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
// Its gradient is the same product with the incoming gradient.
type hostScaleOp struct {
	scale *float64
}

func (op hostScaleOp) Arity() int { return 1 }
func (op hostScaleOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op hostScaleOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op hostScaleOp) Do(in ...G.Value) (G.Value, error) {
	return scaled(in[0], *op.scale)
}
func (op hostScaleOp) ReturnsPtr() bool     { return false }
func (op hostScaleOp) CallsExtern() bool    { return false }
func (op hostScaleOp) OverwritesInput() int { return -1 }
func (op hostScaleOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "lora.hostScale(%p)", op.scale)
}
func (op hostScaleOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op hostScaleOp) String() string       { return "loraScale" }
func (op hostScaleOp) DiffWRT(n int) []bool { return []bool{true} }
func (op hostScaleOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(op, grad)
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
}

func (op hostMaskOp) Arity() int { return 1 }
func (op hostMaskOp) Type() hm.Type {
	a := hm.TypeVariable('a')
	return hm.NewFnType(a, a)
}
func (op hostMaskOp) InferShape(in ...G.DimSizer) (tensor.Shape, error) {
	return in[0].(tensor.Shape).Clone(), nil
}
func (op hostMaskOp) Do(in ...G.Value) (G.Value, error) {
	t, ok := in[0].(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("lora dropout: want a tensor, got %T", in[0])
	}
	mask := *op.mask
	if len(mask) != t.Shape().TotalSize() {
		return nil, fmt.Errorf("lora dropout: mask has %d entries, input %v", len(mask), t.Shape())
	}
	out := t.Clone().(*tensor.Dense)
	switch d := out.Data().(type) {
	case []float32:
		for i := range d {
			d[i] *= mask[i]
		}
	case []float64:
		for i := range d {
			d[i] *= float64(mask[i])
		}
	default:
		return nil, fmt.Errorf("lora dropout: unsupported dtype %v", t.Dtype())
	}
	return out, nil
}
func (op hostMaskOp) ReturnsPtr() bool     { return false }
func (op hostMaskOp) CallsExtern() bool    { return false }
func (op hostMaskOp) OverwritesInput() int { return -1 }
func (op hostMaskOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "lora.hostMask(%p)", unsafe.Pointer(op.mask))
}
func (op hostMaskOp) Hashcode() uint32 {
	h := fnv.New32a()
	op.WriteHash(h)
	return h.Sum32()
}
func (op hostMaskOp) String() string       { return "loraDropout" }
func (op hostMaskOp) DiffWRT(n int) []bool { return []bool{true} }
func (op hostMaskOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	g, err := G.ApplyOp(op, grad)
	if err != nil {
		return nil, err
	}
	return G.Nodes{g}, nil
}

// scaled returns s·v as a new value of v's dtype.
func scaled(v G.Value, s float64) (G.Value, error) {
	t, ok := v.(*tensor.Dense)
	if !ok {
		return nil, fmt.Errorf("lora scale: want a tensor, got %T", v)
	}
	out := t.Clone().(*tensor.Dense)
	switch d := out.Data().(type) {
	case []float32:
		f := float32(s)
		for i := range d {
			d[i] *= f
		}
	case []float64:
		for i := range d {
			d[i] *= s
		}
	default:
		return nil, fmt.Errorf("lora scale: unsupported dtype %v", t.Dtype())
	}
	return out, nil
}
