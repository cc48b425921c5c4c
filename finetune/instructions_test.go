package finetune

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
)

func TestInstructionEncoder(t *testing.T) {
	tok := tokenizer.NewByteLevel([]string{"<s>", "</s>"})
	enc, err := NewInstructionEncoder(tok, tokenizer.TemplateAlpaca, false)
	if err != nil {
		t.Fatal(err)
	}
	row := data.Instruction{Instruction: "Add the numbers.", Input: "1 and 2", Output: "3"}
	ex, err := enc.Encode(row)
	if err != nil {
		t.Fatal(err)
	}
	// BOS, the prompt (not in the loss), then the output and EOS (in it).
	want := tok.EncodePromptCompletion(tokenizer.FormatAlpaca(row.Instruction, row.Input), row.Output, true, true)
	if !slices.Equal(ex.IDs, want.IDs) || !slices.Equal(ex.Mask, want.Mask) || ex.IDs[len(ex.IDs)-1] != tok.EOS() {
		t.Errorf("Encode = %v / %v, want %v / %v", ex.IDs, ex.Mask, want.IDs, want.Mask)
	}
	if first := slices.Index(ex.Mask, true); first <= 0 || slices.Contains(ex.Mask[first:], false) {
		t.Errorf("mask %v is not a prompt part followed by a completion part", ex.Mask)
	}
	all, _ := NewInstructionEncoder(tok, tokenizer.TemplateAlpaca, true)
	if ex, _ := all.Encode(row); slices.Contains(ex.Mask, false) {
		t.Errorf("train on inputs left tokens out of the loss: %v", ex.Mask)
	}
	exs, err := enc.EncodeAll([]data.Instruction{row, row}, "")
	if err != nil || len(exs) != 2 || exs[1].Row != 1 {
		t.Errorf("EncodeAll = %+v, %v", exs, err)
	}
	if _, err := enc.EncodeAll([]data.Instruction{row, {Instruction: "x"}}, "set.arrow"); err == nil || !strings.Contains(err.Error(), "set.arrow: row 1: empty output") {
		t.Errorf("a row without output: %v", err)
	}
	if _, err := NewInstructionEncoder(tok, "vicuna", false); err == nil || !strings.Contains(err.Error(), "alpaca, chatml, llama3, jinja") {
		t.Errorf("an unknown template: %v", err)
	}
	if _, err := NewInstructionEncoder(tok, tokenizer.TemplateJinja, false); err == nil {
		t.Error("the jinja template was accepted for a tokenizer without chat_template")
	}
	if _, err := NewInstructionEncoder(tokenizer.NewByteLevel(nil), tokenizer.TemplateAlpaca, false); err == nil {
		t.Error("the alpaca template was accepted for a tokenizer without EOS")
	}
}

func TestScoringBatchOptions(t *testing.T) {
	for maxLen, want := range map[int][]int{
		40: {40}, 64: {64}, 100: {64, 100}, 512: {64, 128, 256, 512}, 600: {64, 128, 256, 512, 600},
	} {
		if got := LengthBuckets(maxLen); !slices.Equal(got, want) {
			t.Errorf("LengthBuckets(%d) = %v, want %v", maxLen, got, want)
		}
	}
	mc := model.Config{MaxPositionEmbeddings: 300}
	opts, err := ScoringBatchOptions(4, 0, data.TruncateKeepStart, mc, 2)
	if err != nil {
		t.Fatal(err)
	}
	if opts.BatchSize != 4 || opts.MaxLen != 300 || opts.PadID != 2 || opts.Shuffle || !slices.Equal(opts.Buckets, []int{64, 128, 256, 300}) {
		t.Errorf("options %+v", opts)
	}
	if _, err := ScoringBatchOptions(4, 301, data.TruncateKeepStart, mc, 2); err == nil || !strings.Contains(err.Error(), "300 positions") {
		t.Errorf("rows longer than the positions: %v", err)
	}
}

// MeanLoss weighs each batch's mean by its tokens: the mean over two
// batches is their token-weighted mean, not the mean of their means.
func TestMeanLoss(t *testing.T) {
	w, tok := tinymodel.Weights(t, 3, 512, "<s>", "</s>")
	m := New("", w, tok)
	enc, err := NewInstructionEncoder(tok, tokenizer.TemplateAlpaca, false)
	if err != nil {
		t.Fatal(err)
	}
	ex, err := enc.EncodeAll([]data.Instruction{{Instruction: "Hi.", Output: "a long reply here"}, {Instruction: "Yo.", Output: "b"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := ScoringBatchOptions(1, 0, data.TruncateKeepStart, w.Config, tok.PAD())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := data.NewBatcher(ex, opts)
	if err != nil {
		t.Fatal(err)
	}
	batches := b.Epoch(0)
	var sum, n float64
	for _, one := range batches {
		l, err := m.MeanLoss(context.Background(), "t", []data.Batch{one})
		if err != nil {
			t.Fatal(err)
		}
		var k float64
		for _, v := range one.Weights {
			k += float64(v)
		}
		sum, n = sum+l*k, n+k
	}
	both, err := m.MeanLoss(context.Background(), "t", batches)
	if err != nil {
		t.Fatal(err)
	}
	if len(batches) != 2 || math.Abs(both-sum/n) > 1e-6*both {
		t.Errorf("%d batches: MeanLoss %g, token-weighted mean of the batches %g", len(batches), both, sum/n)
	}
	if l, err := m.MeanLoss(context.Background(), "t", nil); err != nil || !math.IsNaN(l) {
		t.Errorf("no batches: %g, %v; want NaN", l, err)
	}
}
