// Package tinymodel builds the random models that tests and benchmarks
// use: the tiny preset narrowed to two layers of width 32, over a
// byte-level tokenizer, so that a test gets a real engine in milliseconds;
// and random weights of any named preset (the benchmarks' stories15M).
//
// May import: model/... (model/generate included), tokenizer/...,
// checkpoints/..., internal/blas and internal/kernel; imported by tests
// only.
package tinymodel

import (
	"testing"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/tokenizer"
)

// Weights returns random weights of the given seed and context length
// (maxPos), with a byte-level tokenizer holding the special tokens.
func Weights(tb testing.TB, seed uint64, maxPos int, specials ...string) (*model.Weights, *tokenizer.Tokenizer) {
	tb.Helper()
	tok := tokenizer.NewByteLevel(specials)
	c, err := model.Preset("tiny", tok.VocabSize())
	if err != nil {
		tb.Fatal(err)
	}
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads = 32, 64, 2, 4, 2
	c.MaxPositionEmbeddings = maxPos
	w, err := model.NewRandom(c, seed)
	if err != nil {
		tb.Fatal(err)
	}
	return w, tok
}

// Engine returns a generation engine over Weights(tb, seed, maxPos,
// specials...).
func Engine(tb testing.TB, seed uint64, maxPos int, specials ...string) *generate.Engine {
	tb.Helper()
	w, tok := Weights(tb, seed, maxPos, specials...)
	e, err := generate.New(w, tok)
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

// Preset returns random weights (of the given seed) of a named model preset
// such as "stories15M", with the preset's own vocabulary.
func Preset(tb testing.TB, name string, seed uint64) *model.Weights {
	tb.Helper()
	c, err := model.Preset(name, 0)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := model.NewRandom(c, seed)
	if err != nil {
		tb.Fatal(err)
	}
	return w
}
