package dpo

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/gotune/gotune/checkpoints"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/world"
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
	tokOnce sync.Once
	tokMicro *tokenizer.Tokenizer
	tokErr   error
)

// microTokenizer is a byte-level BPE of 400 tokens trained on world text,
// with BOS, EOS and PAD.
func microTokenizer(t testing.TB) *tokenizer.Tokenizer {
	tokOnce.Do(func() {
		w := world.New(7)
		var texts []string
		for _, p := range w.Preferences(world.Train, 300) {
			texts = append(texts, p.Prompt+p.Chosen, p.Prompt+p.Rejected)
		}
		tokMicro, tokErr = tokenizer.Train(texts, 1024, []string{"<|bos|>", "<|eos|>", "<|pad|>"})
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
	if g := os.Getenv("NORMGAIN"); g != "" {
		f, _ := strconv.ParseFloat(g, 64)
		for i := range model.F32(w.Norm) {
			model.F32(w.Norm)[i] = float32(f)
		}
	}
	dir := filepath.Join(t.TempDir(), "base")
	if err := checkpoints.SaveModel(dir, w, checkpoints.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// worldPrefs writes n world preference pairs of a split to a file.
func worldPrefs(t testing.TB, split world.Split, n int) string {
	t.Helper()
	var rows []data.Preference
	for _, p := range world.New(3).Preferences(split, n) {
		rows = append(rows, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected})
	}
	path := filepath.Join(t.TempDir(), split.String()+".arrow")
	if err := data.WritePreferences(path, rows); err != nil {
		t.Fatal(err)
	}
	return path
}

// testConfig is a short run on the micro model.
func testConfig(base, out string) Config {
	cfg := DefaultConfig()
	cfg.Base, cfg.Out = base, out
	cfg.WorldPairs, cfg.WorldEvalPairs = 64, 16
	cfg.Pairs, cfg.MaxLen, cfg.Buckets = 4, 64, []int{48, 64}
	cfg.LoRA.R, cfg.LoRA.Alpha = 4, 8
	cfg.Train.Steps, cfg.Train.WarmupSteps = 4, 0
	cfg.Train.LogEvery, cfg.Train.EvalEvery, cfg.Train.CheckpointEvery = 1, 0, 0
	cfg.Train.Quiet = true
	return cfg
}

// readMetrics returns the records of a metrics.jsonl file.
func readMetrics(t testing.TB, dir string) []map[string]float64 {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []map[string]float64
	s := bufio.NewScanner(f)
	for s.Scan() {
		var m map[string]float64
		if err := json.Unmarshal(s.Bytes(), &m); err != nil {
			t.Fatalf("metrics line %q: %v", s.Text(), err)
		}
		out = append(out, m)
	}
	return out
}
