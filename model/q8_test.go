package model

import (
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/q8"
)

// TestStoreQ8 quantizes the frozen matrices whose rows are whole Q8_0
// blocks to exactly the blocks of their values (ggml's rule), leaves the
// others in float32, keeps tied embeddings tied, reports the logical
// shape, and a training graph given such weights refuses, naming a tensor.
func TestStoreQ8(t *testing.T) {
	c := Config{ModelType: "llama", HiddenSize: 32, IntermediateSize: 48, NumHiddenLayers: 2,
		NumAttentionHeads: 4, NumKeyValueHeads: 2, VocabSize: 40, MaxPositionEmbeddings: 16,
		RMSNormEps: 1e-5, HiddenAct: "silu", TieWordEmbeddings: true}
	w, err := NewRandom(c, 5)
	if err != nil {
		t.Fatal(err)
	}
	twin, err := NewRandom(c, 5)
	if err != nil {
		t.Fatal(err)
	}
	before := w.Bytes()
	n := w.StoreQ8()
	names, fields := twin.frozenMatrices()
	quantized := 0
	for i, f := range fields {
		got := w.param(names[i])
		src := F32(*f)
		rows, cols := (*f).Shape()[0], (*f).Shape()[1]
		if r, k := MatrixShape(got); r != rows || k != cols {
			t.Errorf("%s: MatrixShape %d×%d, want %d×%d", names[i], r, k, rows, cols)
		}
		blocks := Q8(got)
		if cols%q8.BlockLen != 0 {
			if blocks != nil {
				t.Errorf("%s: %d columns are not whole blocks, yet it was quantized", names[i], cols)
			}
			continue
		}
		if blocks == nil {
			t.Fatalf("%s not quantized", names[i])
		}
		want := make([]q8.Block, len(src)/q8.BlockLen)
		q8.QuantizeRow(want, src)
		for b := range want {
			if blocks[b] != want[b] {
				t.Fatalf("%s block %d: %+v, want %+v", names[i], b, blocks[b], want[b])
			}
		}
		quantized += len(src)
	}
	if n != quantized || quantized == 0 {
		t.Fatalf("StoreQ8 reported %d values, quantized %d", n, quantized)
	}
	if Q8(w.Layers[0].Down) != nil {
		t.Fatal("down_proj (48 columns) was quantized")
	}
	if w.LMHead != w.Embed {
		t.Fatal("tied embeddings were split")
	}
	if after := w.Bytes(); after != before-int64(n)*4+int64(n/q8.BlockLen)*36 {
		t.Fatalf("%d → %d bytes for %d values quantized", before, after, n)
	}
	_, err = Build(w, GraphOptions{B: 1, T: 4, Trainable: func(string) bool { return false }})
	if err == nil || !strings.Contains(err.Error(), "model.embed_tokens.weight") || !strings.Contains(err.Error(), "Q8_0") {
		t.Fatalf("Build on Q8_0 weights: %v", err)
	}
}
