package ops

import (
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// PlaceOutput makes op write its output into t (which must have the
// output's dtype and shape, else the operation uses its own memory) from
// its next run on, nil meaning its own memory again, and reports whether
// op is one that can: the operations whose single output lives in a
// buffer of their own (Add, Linear, MatMul, RMSNorm and its gradients,
// RoPE, SwiGLU and Attention, which the projections, residual sums and the
// backward pass are mostly made of). A program places the outputs whose lifetimes do not overlap in
// one piece of memory (model.Program).
func PlaceOutput(op G.Op, t *tensor.Dense) bool {
	if p, ok := op.(Placer); ok {
		p.PlaceOutput(t)
		return true
	}
	b := ownBuffer(op)
	if b == nil {
		return false
	}
	b.place(t)
	return true
}

// ownBuffer is the output buffer of an operation of this package whose
// single output PlaceOutput places (nil for any other operation).
func ownBuffer(op G.Op) *buffer {
	switch o := op.(type) {
	case *addOp:
		return &o.out
	case *linearOp:
		return &o.out
	case *matmulOp:
		return &o.out
	case *rmsnormGradOp:
		return &o.out
	case *ropeOp:
		return &o.out
	case *swigluOp:
		return &o.out
	case *rmsnormOp:
		return &o.out
	case *attentionOp:
		return &o.out
	case *checkpointOp:
		return &o.out
	case *recomputeOp:
		return &o.out
	}
	return nil
}

// PlacePicked is PlaceOutput for the operations of the backward pass that
// compute several outputs in one pass (SwiGLU's and attention's
// gradients), handed out by Pick nodes: output i goes to t (nil: the
// operation's own memory).
func PlacePicked(op G.Op, i int, t *tensor.Dense) bool {
	bs := pickedBuffers(op)
	if i < 0 || i >= len(bs) {
		return false
	}
	bs[i].place(t)
	return true
}

// pickedBuffers are the outputs PlacePicked places (nil for another
// operation).
func pickedBuffers(op G.Op) []*buffer {
	switch o := op.(type) {
	case *swigluGradOp:
		return []*buffer{&o.fwd.grads.dg, &o.fwd.grads.du}
	case *attentionGradOp:
		return []*buffer{&o.fwd.grads.dq, &o.fwd.grads.dk, &o.fwd.grads.dv}
	}
	return nil
}

// Unplace returns every output of op that PlaceOutput or PlacePicked
// accepts to the operation's own memory. A program unplaces all the
// operations it runs before placing its own choice, so that memory
// another program placed them in is never shared in its run.
func Unplace(op G.Op) {
	if PlaceOutput(op, nil) {
		return
	}
	for _, b := range pickedBuffers(op) {
		b.place(nil)
	}
}

// PickIndex returns which output of its input's operation a Pick node
// hands out; ok is false for another operation.
func PickIndex(op G.Op) (i int, ok bool) {
	p, ok := op.(*pickOp)
	if !ok {
		return 0, false
	}
	return p.i, true
}

// MultiPlaceable reports whether PlacePicked accepts op.
func MultiPlaceable(op G.Op) bool {
	switch op.(type) {
	case *swigluGradOp, *attentionGradOp:
		return true
	}
	return false
}

// Placer is an operation of another package whose single output lives in
// memory of its own, never an input's nor a view of one, and which writes
// it where a program places it (PlaceOutput; nil: its own memory again)
// when that fits the output's dtype and shape. PlaceOutput, Placeable and
// FreshOutput accept it as this package's own.
type Placer interface {
	G.Op
	PlaceOutput(t *tensor.Dense)
}

// Output is the memory of the single output of an operation of another
// package: embedded in the operation, it makes it a Placer, and Get gives
// the memory a program placed the output in when that fits, else the
// operation's own, reused across runs.
type Output struct{ b buffer }

// PlaceOutput implements Placer.
func (o *Output) PlaceOutput(t *tensor.Dense) { o.b.place(t) }

// Get returns the memory for an output of dtype dt and the given shape.
func (o *Output) Get(dt tensor.Dtype, shape ...int) *tensor.Dense { return o.b.get(dt, shape...) }

// Placeable reports whether PlaceOutput accepts op.
func Placeable(op G.Op) bool {
	_, ok := op.(Placer)
	return ok || ownBuffer(op) != nil
}

// FreshOutput reports whether op's value is never the value of one of
// its inputs nor a view of it: true for the operations of this package
// but Pick (which hands out a buffer of its input's operation); false for
// any other operation (gorgonia's own may write into an input in place).
func FreshOutput(op G.Op) bool {
	switch op.(type) {
	case *pickOp:
		return false
	case Placer:
		return true
	case *addOp, *linearOp, *matmulOp, *rmsnormGradOp, *ropeOp, *rmsnormOp, *colSumOp,
		*attentionOp, *attentionGradOp, *embeddingOp, *embeddingGradOp, *funcLossOp, *funcLossGradOp,
		*logProbsOp, *logProbsGradOp, *meanNLLOp, *scaledGradOp, *headSliceOp, *headUnsliceOp,
		*mlaKeysOp, *mlaKeysGradOp, *moeOp, *moeGradOp, *swigluOp, *swigluGradOp, *checkpointOp, *recomputeOp:
		return true
	}
	return false
}
