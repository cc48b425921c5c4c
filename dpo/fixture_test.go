package dpo

import (
	"path/filepath"
	"sync"
	"testing"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// microConfig is a model small enough to train in seconds on two cores.
func microConfig(vocab int) model.Config {
	c, err := model.Preset("tiny", vocab)
	if err != nil {
		panic(err)
	}
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 64, 160, 2
	c.NumAttentionHeads, c.NumKeyValueHeads = 4, 2
	return c
}

var (
	tokOnce  sync.Once
	tokMicro *tokenizer.Tokenizer
	tokErr   error
)

// microTokenizer is a byte-level BPE of 1024 tokens trained on world text,
// with BOS, EOS and PAD, and ChatML's turn markers as special tokens.
func microTokenizer(t testing.TB) *tokenizer.Tokenizer {
	tokOnce.Do(func() {
		w := world.New(7)
		var texts []string
		for _, p := range w.Preferences(world.Train, 300) {
			texts = append(texts, p.Prompt+p.Chosen, p.Prompt+p.Rejected)
		}
		tokMicro, tokErr = tokenizer.Train(texts, 1024, []string{"<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"})
	})
	if tokErr != nil {
		t.Fatal(tokErr)
	}
	return tokMicro
}

// microBase writes a random micro model with the tokenizer into a fresh
// directory.
func microBase(t testing.TB, seed uint64) string {
	t.Helper()
	tok := microTokenizer(t)
	w, err := model.NewRandom(microConfig(tok.VocabSize()), seed)
	if err != nil {
		t.Fatal(err)
	}
	return saveBase(t, w, tok)
}

// saveBase writes weights and a tokenizer as a model directory.
func saveBase(t testing.TB, w *model.Weights, tok *tokenizer.Tokenizer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "base")
	tinymodel.Save(t, dir, w, tok)
	return dir
}

// worldPrefs writes n world preference pairs of a split to a file.
func worldPrefs(t testing.TB, split world.Split, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), split.String()+".arrow")
	if err := data.WritePreferences(path, world.New(3).Preferences(split, n).Rows()); err != nil {
		t.Fatal(err)
	}
	return path
}

// useWorld trains cfg on n pairs of the built-in world (seed 1) and
// evaluates it on evalN pairs of its Valid split, as `gotune dpo` does
// without --data.
func useWorld(cfg *Config, n, evalN int) {
	w := world.New(1)
	cfg.Rows, cfg.EvalRows = w.Preferences(world.Train, n).Rows(), w.Preferences(world.Valid, evalN).Rows()
}

// testConfig is a short run on the micro model.
func testConfig(base, out string) Config {
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = base, out
	cfg.Loss = LossConfig{Type: Sigmoid, Beta: 0.1} // plain DPO
	useWorld(&cfg, 64, 16)
	cfg.Pairs, cfg.MaxLen, cfg.Buckets = 4, 64, []int{48, 64}
	cfg.LoRA.R, cfg.LoRA.Alpha = 4, 8
	cfg.Train.Steps, cfg.Train.WarmupSteps = 4, 0
	cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 1, 0, 0
	cfg.Train.Quiet = true
	return cfg
}

// sftBase makes the starting model of a DPO run as the pipeline does,
// briefly: a random micro model fine-tuned in full on the world's
// instructions (prompt and answer tokens, as a causal LM), steps updates of
// 8 rows at learning rate 3·10⁻³.
func sftBase(t testing.TB, seed uint64, steps int) string {
	t.Helper()
	tok := microTokenizer(t)
	w, err := model.NewRandom(microConfig(tok.VocabSize()), seed)
	if err != nil {
		t.Fatal(err)
	}
	var exs []data.Example
	for _, in := range world.New(11).Instructions(world.Train, 1000) {
		e := tok.EncodePromptCompletion(tokenizer.FormatAlpaca(in.Instruction, in.Input), in.Output, true, true)
		exs = append(exs, data.Example{IDs: e.IDs, Mask: e.Mask})
	}
	const B, T = 8, 64
	g, err := model.Build(w, model.GraphOptions{B: B, T: T, Trainable: func(string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	loss := g.MeanNLL(g.InputVector("weights", B*T))
	var nodes []*gorgonia.Node
	var vals [][]float32
	var sizes []int
	for _, n := range w.Named() {
		nodes = append(nodes, g.Params[n.Name])
		vals = append(vals, model.F32(n.Tensor))
		sizes = append(sizes, len(vals[len(vals)-1]))
	}
	prog, err := g.Compile(loss, nodes)
	if err != nil {
		t.Fatal(err)
	}
	opt := train.NewAdamW(0.9, 0.95, 1e-8, 0, sizes)
	decay := make([]bool, len(nodes))
	grads := make([][]float32, len(nodes))
	weights := g.Vector("weights")
	for s := range steps {
		k := (s * B) % (len(exs) - B)
		b := data.Collate(exs[k:k+B], T, tok.PAD())
		copy(g.In.Tokens, b.Inputs)
		copy(g.In.Targets, b.Targets)
		for i := range weights {
			weights[i] = 0
			if i%T < b.Lengths[i/T]-1 { // every real next token
				weights[i] = 1
			}
		}
		prog.ZeroGrad()
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		for i, n := range nodes {
			grads[i] = prog.Grad(n)
		}
		train.ClipGlobalNorm(grads, 1)
		opt.Update(vals, grads, decay, 3e-3)
	}
	return saveBase(t, w, tok)
}
