package finetune

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	mgguf "github.com/gotune/gotune/model/gguf"
)

// TestOpenGGUF: a base given as a GGUF file opens as its model directory
// does (every stage that takes a base goes through Open): the same
// weights and the same tokenization.
func TestOpenGGUF(t *testing.T) {
	dir, err := Open(tinymodel.WorldBase())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "base.gguf")
	if err := mgguf.Save(path, dir.Weights, dir.Tokenizer, mgguf.Options{}); err != nil {
		t.Fatal(err)
	}
	m, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	want := dir.Weights.Named()
	for i, n := range m.Weights.Named() {
		if n.Name != want[i].Name || !slices.Equal(model.F32(n.Tensor), model.F32(want[i].Tensor)) {
			t.Fatalf("tensor %s differs", want[i].Name)
		}
	}
	s := "### Instruction:\nWhere is the fox?\n\n### Response:\n"
	if a, b := m.Tokenizer.Encode(s, true), dir.Tokenizer.Encode(s, true); !slices.Equal(a, b) {
		t.Fatalf("tokens from GGUF %v, from the directory %v", a, b)
	}
	if m.BaseDir != path {
		t.Fatalf("BaseDir %q", m.BaseDir)
	}
}
