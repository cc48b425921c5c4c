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
	var b *buffer
	switch o := op.(type) {
	case Placer:
		o.PlaceOutput(t)
		return true
	case *addOp:
		b = &o.out
	case *linearOp:
		b = &o.out
	case *matmulOp:
		b = &o.out
	case *rmsnormGradOp:
		b = &o.out
	case *ropeOp:
		b = &o.out
	case *swigluOp:
		b = &o.out
	case *rmsnormOp:
		b = &o.out
	case *attentionOp:
		b = &o.out
	case *checkpointOp:
		b = &o.out
	case *recomputeOp:
		b = &o.out
	default:
		return false
	}
	b.place(t)
	return true
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

// Placeable reports whether PlaceOutput accepts op.
func Placeable(op G.Op) bool {
	switch op.(type) {
	case Placer:
		return true
	case *addOp, *linearOp, *matmulOp, *rmsnormGradOp, *ropeOp, *swigluOp, *rmsnormOp, *attentionOp,
		*checkpointOp, *recomputeOp:
		return true
	}
	return false
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
