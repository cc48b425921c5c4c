package ops

import (
	"fmt"
	"hash"

	"github.com/chewxy/hm"
	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// Embedding gathers rows of table (V, C) by the token ids in tokens (N),
// giving (N, C). tokens is read on every run, so the caller refills it in
// place between runs; its length fixes N.
func Embedding(table *G.Node, tokens []int32) (*G.Node, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("embedding: no tokens")
	}
	return apply(&embeddingOp{tokens: tokens}, table)
}

// checkIDs reports the first id outside [0, v).
func checkIDs(ids []int32, v int, what string) error {
	for i, id := range ids {
		if id < 0 || int(id) >= v {
			return fmt.Errorf("%s id %d at position %d is outside the vocabulary [0, %d)", what, id, i, v)
		}
	}
	return nil
}

type embeddingOp struct {
	pure
	tokens []int32
	out    buffer
}

func (op *embeddingOp) Arity() int    { return 1 }
func (op *embeddingOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(2)) }
func (op *embeddingOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{len(op.tokens), s[0][1]}, nil
}
func (op *embeddingOp) WriteHash(h hash.Hash) {
	// The token buffer's address tells apart gathers of different inputs.
	fmt.Fprintf(h, "gotune.Embedding{%d,%p}", len(op.tokens), &op.tokens[0])
}
func (op *embeddingOp) Hashcode() uint32 { return hashOf(op) }
func (op *embeddingOp) String() string   { return "Embedding" }

func (op *embeddingOp) Do(in ...G.Value) (G.Value, error) {
	V, C := in[0].Shape()[0], in[0].Shape()[1]
	if err := checkIDs(op.tokens, V, "token"); err != nil {
		return nil, fmt.Errorf("embedding: %w", err)
	}
	out := op.out.get(in[0].Dtype(), len(op.tokens), C)
	switch in[0].Dtype() {
	case tensor.Float32:
		table, err := weightOf[float32](in[0], "embedding table")
		if err != nil {
			return nil, err
		}
		gatherRows(table, out.Data().([]float32), op.tokens)
	default:
		table, err := weightOf[float64](in[0], "embedding table")
		if err != nil {
			return nil, err
		}
		gatherRows(table, out.Data().([]float64), op.tokens)
	}
	return out, nil
}

// gatherRows copies table rows: out[n] = table[ids[n]].
func gatherRows[T Float](table weight[T], out []T, ids []int32) {
	C := table.cols
	for n, id := range ids {
		table.rowInto(int(id), out[n*C:(n+1)*C])
	}
}

func (op *embeddingOp) DiffWRT(int) []bool { return []bool{true} }
func (op *embeddingOp) SymDiff(in G.Nodes, out, grad *G.Node) (G.Nodes, error) {
	d, err := apply(&embeddingGradOp{tokens: op.tokens, vocab: in[0].Shape()[0]}, grad)
	return G.Nodes{d}, err
}

// embeddingGradOp scatters the output gradient (N, C) back onto the table
// rows it was gathered from: dTable[v] = Σ_{n: ids[n]=v} dOut[n].
type embeddingGradOp struct {
	pure
	terminal
	tokens []int32
	vocab  int
	out    buffer
}

func (op *embeddingGradOp) Arity() int    { return 1 }
func (op *embeddingGradOp) Type() hm.Type { return hm.NewFnType(tensorType(2), tensorType(2)) }
func (op *embeddingGradOp) InferShape(ds ...G.DimSizer) (tensor.Shape, error) {
	s, err := shapes(ds, 2)
	if err != nil {
		return nil, err
	}
	return tensor.Shape{op.vocab, s[0][1]}, nil
}
func (op *embeddingGradOp) WriteHash(h hash.Hash) {
	fmt.Fprintf(h, "gotune.EmbeddingGrad{%d,%d,%p}", op.vocab, len(op.tokens), &op.tokens[0])
}
func (op *embeddingGradOp) Hashcode() uint32 { return hashOf(op) }
func (op *embeddingGradOp) String() string   { return "EmbeddingGrad" }

func (op *embeddingGradOp) Do(in ...G.Value) (G.Value, error) {
	dy, err := dense(in[0], "embedding gradient")
	if err != nil {
		return nil, err
	}
	C := dy.Shape()[1]
	if err := checkIDs(op.tokens, op.vocab, "token"); err != nil {
		return nil, fmt.Errorf("embedding gradient: %w", err)
	}
	out := op.out.get(dy.Dtype(), op.vocab, C)
	switch dy.Dtype() {
	case tensor.Float32:
		scatterRows(floats[float32](dy, out), op.tokens, C)
	default:
		scatterRows(floats[float64](dy, out), op.tokens, C)
	}
	return out, nil
}

// scatterRows zeroes out and adds dy[n] into out[ids[n]]; s = {dy, out}.
func scatterRows[T Float](s [][]T, ids []int32, C int) {
	dy, out := s[0], s[1]
	clear(out)
	for n, id := range ids {
		row := out[int(id)*C : (int(id)+1)*C]
		for c, g := range dy[n*C : (n+1)*C] {
			row[c] += g
		}
	}
}
