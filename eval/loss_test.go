package eval

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/model/generate"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/tokenizer"
)

// TestRunData scores the base model and the base with an adapter on an
// instructions dataset and checks both against the engine's token-by-token
// losses of the completion tokens (the engine on weights with the adapter
// merged, the evaluation with the adapter applied in the graph).
func TestRunData(t *testing.T) {
	base, w, _ := modelDir(t)
	adapter := adapterDir(t, base, w, 7)
	rows := []data.Instruction{
		{Instruction: "Say hi.", Output: "hi"},
		{Instruction: "Add the two numbers.", Input: "17 and 25", Output: "42"},
		{Instruction: "Reverse the letters of the word.", Input: "gotune", Output: "enutog"},
		{Instruction: "Write the word in capital letters.", Input: "apple", Output: "APPLE"},
		{Instruction: "Sort the numbers.", Input: "9, 2, 5", Output: "2, 5, 9"},
		{System: "Be brief.", Instruction: "Name a prime.", Output: "Seven."},
		{Instruction: "Count the letter l in the word.", Input: "hello", Output: "2"},
	}
	path := filepath.Join(t.TempDir(), "rows.arrow")
	if err := data.WriteInstructions(path, rows); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Model, cfg.Data, cfg.BatchSize = base, path, 3
	losses := map[string]float64{}
	for _, c := range []struct {
		name, adapter string
		max           int
	}{{"base", "", 0}, {"adapter", adapter, 0}, {"first rows", "", 5}} {
		cfg.Adapter, cfg.MaxRows = c.adapter, c.max
		got, err := Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var adapters []string
		if c.adapter != "" {
			adapters = []string{c.adapter}
		}
		mw, tok, err := LoadModel(base, adapters...)
		if err != nil {
			t.Fatal(err)
		}
		e, err := generate.New(mw, tok)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := finetune.NewInstructionEncoder(tok, tokenizer.TemplateAlpaca, false)
		if err != nil {
			t.Fatal(err)
		}
		scored := rows
		if c.max > 0 {
			scored = rows[:c.max]
		}
		var sum float64
		var n int
		for _, r := range scored {
			ex, err := enc.Encode(r)
			if err != nil {
				t.Fatal(err)
			}
			s, k := engineNLL(t, e, ex.IDs, func(i int) bool { return ex.Mask[i] })
			sum, n = sum+s, n+k
		}
		want := sum / float64(n)
		if got.Rows != len(scored) || got.Tokens != n || math.Abs(got.Loss-want) > 1e-4*(1+want) ||
			math.Abs(got.Perplexity-math.Exp(got.Loss)) > 1e-9*got.Perplexity {
			t.Errorf("%s: %+v; want %d rows, %d tokens, loss %.6f (engine)", c.name, got, len(scored), n, want)
		}
		losses[c.name] = got.Loss
	}
	if math.Abs(losses["adapter"]-losses["base"]) < 1e-3 {
		t.Errorf("the adapter changes the loss by %g only: the two cases test the same thing", losses["adapter"]-losses["base"])
	}

	cfg.Adapter, cfg.MaxRows = "", 0
	cfg.Data = filepath.Join(t.TempDir(), "missing.arrow")
	if _, err := Run(context.Background(), cfg); err == nil {
		t.Error("a missing dataset: no error")
	}
	cfg.Data, cfg.SeqLen = path, 1024
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), KeySeqLen+" 1024 exceeds the model's 512 positions") {
		t.Errorf("rows longer than the model's positions: %v", err)
	}
}

// TestRunText checks the loss of a text against the engine's, window by
// window, for a window length that leaves a short last window and a batch
// that leaves empty rows; and that a model directory without a tokenizer
// needs one given.
func TestRunText(t *testing.T) {
	base, w, tok := modelDir(t)
	docs := []string{"the cat sat on the mat", "one two three four five six", "a b c d e f g h i j k l m n o p", "last document."}
	text := filepath.Join(t.TempDir(), "eval.jsonl")
	var b strings.Builder
	for _, d := range docs {
		fmt.Fprintf(&b, "{\"text\": %q}\n", d)
	}
	if err := os.WriteFile(text, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	const T = 24
	stream := finetune.Tokenize(tok, docs)
	if (len(stream)-1)%T == 0 || ((len(stream)-2+T)/T)%3 == 0 {
		t.Fatalf("%d tokens: the test wants a short last window and an empty row", len(stream))
	}
	e, err := generate.New(w, tok)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	var n int
	for start := 0; start+1 < len(stream); start += T {
		ids := make([]int, 0, T+1)
		for _, id := range stream[start:min(start+T+1, len(stream))] {
			ids = append(ids, int(id))
		}
		s, k := engineNLL(t, e, ids, func(int) bool { return true })
		sum, n = sum+s, n+k
	}
	want := sum / float64(n)

	cfg := DefaultConfig()
	cfg.Model, cfg.Text, cfg.SeqLen, cfg.BatchSize = base, text, T, 3
	got, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Tokens != len(stream)-1 || n != got.Tokens || got.Rows != 0 || math.Abs(got.Loss-want) > 1e-4*want ||
		math.Abs(got.Perplexity-math.Exp(got.Loss)) > 1e-9*got.Perplexity {
		t.Errorf("text: %+v; want %d tokens, loss %.6f (engine)", got, len(stream)-1, want)
	}

	// The same model as a GGUF file (F32) scores the same, with the
	// tokenizer of its metadata; a tokenizer given beside it is refused.
	ggufPath := filepath.Join(t.TempDir(), "model.gguf")
	if err := mgguf.Save(ggufPath, w, tok, mgguf.Options{Dtype: mgguf.F32}); err != nil {
		t.Fatal(err)
	}
	fromGGUF := cfg
	fromGGUF.Model = ggufPath
	if g, err := Run(context.Background(), fromGGUF); err != nil || g.Tokens != got.Tokens || math.Abs(g.Loss-got.Loss) > 1e-6*got.Loss {
		t.Errorf("GGUF: %+v, %v; want %+v", g, err, got)
	}
	fromGGUF.Tokenizer = base
	if _, err := Run(context.Background(), fromGGUF); err == nil || !strings.Contains(err.Error(), KeyTokenizer) {
		t.Errorf("GGUF with a tokenizer given: %v", err)
	}

	// Without a tokenizer in the directory one must be given.
	tokDir := t.TempDir()
	if err := tok.Save(tokDir); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(base, tokenizer.TokenizerFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "give a tokenizer ("+KeyTokenizer+")") {
		t.Errorf("no tokenizer: %v", err)
	}
	cfg.Tokenizer = tokDir
	if again, err := Run(context.Background(), cfg); err != nil || again.Loss != got.Loss {
		t.Errorf("with the tokenizer given: %+v, %v; want loss %g", again, err, got.Loss)
	}
	cfg.SeqLen = 1024
	if _, err := Run(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), KeySeqLen) {
		t.Errorf("windows longer than the model's positions: %v", err)
	}
}
