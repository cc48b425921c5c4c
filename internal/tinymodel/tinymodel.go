// Package tinymodel builds the random models that tests and benchmarks
// use: the tiny preset narrowed to two layers of width 32, over a
// byte-level tokenizer, so that a test gets a real engine in milliseconds;
// a DeepSeek model of the same width; random weights of any named preset
// (the benchmarks' stories15M); the references tests check a model against
// (the float64 NLL of a token, the central-difference check of a graph's
// gradients); the directory in which a package's tests share the models
// they train once; and the context with which tests interrupt a training
// run.
//
// May import: model/... (model/generate included), tokenizer/...,
// checkpoints/..., internal/blas and internal/kernel; imported by tests
// only.
package tinymodel

import (
	"github.com/gotune/gotune/internal/reference"
	"math"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/model/hf"
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

// DeepSeek returns random weights of a tiny DeepSeek model (width 32, a
// dense first layer and MoEs of 4 experts, top 2, one shared expert, in
// the other two, over a byte-level tokenizer holding specials): with v3
// false a deepseek_v2 (plain q_proj, softmax greedy routing), with v3 true
// a deepseek_v3 (compressed queries, sigmoid noaux_tc routing over 2
// groups with a non-zero correction bias).
func DeepSeek(tb testing.TB, v3 bool, seed uint64, maxPos int, specials ...string) (*model.Weights, *tokenizer.Tokenizer) {
	tb.Helper()
	tok := tokenizer.NewByteLevel(specials)
	c := model.Config{Architectures: []string{"DeepseekV2ForCausalLM"}, ModelType: "deepseek_v2",
		HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 3, NumAttentionHeads: 4,
		VocabSize: tok.VocabSize(), MaxPositionEmbeddings: maxPos, RMSNormEps: 1e-6, HiddenAct: "silu", RopeTheta: 10000,
		DeepSeek: &model.DeepSeek{KVLoraRank: 16, QKNopeHeadDim: 8, QKRopeHeadDim: 4, VHeadDim: 8,
			NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 16,
			FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: model.ScoringSoftmax, TopkMethod: model.TopkGreedy,
			RoutedScalingFactor: 1}}
	if v3 {
		rank := 16
		c.Architectures, c.ModelType = []string{"DeepseekV3ForCausalLM"}, "deepseek_v3"
		c.QLoraRank, c.ScoringFunc, c.TopkMethod, c.NGroup, c.TopkGroup = &rank, model.ScoringSigmoid, model.TopkNoAuxTC, 2, 1
		c.NormTopkProb, c.RoutedScalingFactor = true, 2.5
	}
	w, err := model.NewRandom(c, seed)
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range w.Layers {
		if l.RouterBias != nil {
			for i, v := range model.F32(l.RouterBias) {
				model.F32(l.RouterBias)[i] = v + 0.01*float32(i%3-1)
			}
		}
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

// WorldBase returns the directory of a small base model pretrained on the
// built-in world (2 layers of width 64, a 512-token BPE vocabulary),
// committed under testdata/worldbase so that the tests of the RLHF stages
// start from a language model without spending minutes pretraining one.
// TestGenerateWorldBase (run with -gen-base) regenerates it.
func WorldBase() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "testdata", "worldbase")
}

// Logits builds a forward-only graph of w with opt (batch shape and an
// optional hook such as a LoRA injection), runs it on a fixed pattern of
// tokens and returns a copy of its (B·T, V) logits.
func Logits(tb testing.TB, w *model.Weights, opt model.GraphOptions) []float32 {
	tb.Helper()
	g, err := model.Build(w, opt)
	if err != nil {
		tb.Fatal(err)
	}
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32((i*7 + 3) % w.Config.VocabSize)
	}
	p, err := g.Compile(nil, nil, g.Logits())
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Run(); err != nil {
		tb.Fatal(err)
	}
	return append([]float32(nil), model.Value32(g.Logits())...)
}

// MaxRelDiff is max |a − b| over max |a|: the distance of two logit
// vectors relative to their scale.
func MaxRelDiff(a, b []float32) float64 {
	var scale, diff float64
	for i := range a {
		scale = math.Max(scale, math.Abs(float64(a[i])))
		diff = math.Max(diff, math.Abs(float64(a[i]-b[i])))
	}
	return diff / math.Max(scale, 1e-30)
}

// LogSumExp is log Σ exp(logits), computed in float64 with the maximum
// logit subtracted first so that no exponential overflows.
func LogSumExp(logits []float32) float64 {
	m := math.Inf(-1)
	for _, v := range logits {
		m = math.Max(m, float64(v))
	}
	var z float64
	for _, v := range logits {
		z += math.Exp(float64(v) - m)
	}
	return m + math.Log(z)
}

// NLL is −log softmax(logits)[target] = LogSumExp(logits) − logits[target]:
// the reference that tests check the graph's and the engine's losses
// against.
func NLL(logits []float32, target int) float64 {
	return LogSumExp(logits) - float64(logits[target])
}

// Save writes weights and their tokenizer as a Hugging Face model
// directory, the form in which the stages and commands read a model.
func Save(tb testing.TB, dir string, w *model.Weights, tok *tokenizer.Tokenizer) {
	tb.Helper()
	if err := hf.SaveModel(dir, w, hf.SaveOptions{}); err != nil {
		tb.Fatal(err)
	}
	if err := tok.Save(dir); err != nil {
		tb.Fatal(err)
	}
}

// Reference reads a case of model/testdata/reference (written by
// gen_reference.py from an independent float64 PyTorch forward pass) and
// the weights of its checkpoint.
func Reference(tb testing.TB, dir string) (*reference.Case, *model.Weights) {
	tb.Helper()
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		tb.Fatal(err)
	}
	f, err := reference.Load(dir)
	if err != nil {
		tb.Fatal(err)
	}
	w, err := model.Allocate(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	params := map[string][]float32{}
	for _, p := range w.Named() {
		params[p.Name] = model.F32(p.Tensor)
	}
	if err := f.Fill(params); err != nil {
		tb.Fatal(err)
	}
	return f, w
}
