package eval

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model/hf"
)

// charTokenizer is a tokenizer.json whose vocabulary is one character per
// id (U+4E00 + id) and nothing else: no merges, no special tokens, so a
// text of those characters encodes to exactly their ids.
func charTokenizer(V int) []byte {
	vocab := make([]string, V)
	for id := range V {
		vocab[id] = fmt.Sprintf("%q:%d", string(rune(0x4E00+id)), id)
	}
	return []byte(`{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],"normalizer":null,` +
		`"pre_tokenizer":null,"post_processor":null,"decoder":null,"model":{"type":"BPE","dropout":null,` +
		`"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,` +
		`"byte_fallback":false,"vocab":{` + strings.Join(vocab, ",") + `},"merges":[]}}`)
}

// `gotune eval` equals PyTorch on every family's reference checkpoint: the
// fixture is written as a Hugging Face directory (hf.SaveModel, so it
// reloads through strict loading) with a tokenizer mapping one character to
// each id, each row's real tokens become a one-line text, and eval's text
// loss with one window of the row (every token after the first predicted
// from its prefix) must equal the mean next-token loss computed in float64
// from the reference's logits. (The fixtures' own "loss" scores given
// targets, not the next tokens, which no text can express; the model
// package compares the graph with it.)
func TestEvalEqualsReference(t *testing.T) {
	dirs, err := filepath.Glob("../model/testdata/reference/*")
	if err != nil || len(dirs) < 7 {
		t.Fatalf("reference fixtures missing (%v)", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f, w := tinymodel.Reference(t, dir)
			V := w.Config.VocabSize
			mdir := filepath.Join(t.TempDir(), "model")
			if err := hf.SaveModel(mdir, w, hf.SaveOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mdir, "tokenizer.json"), charTokenizer(V), 0o644); err != nil {
				t.Fatal(err)
			}
			logits := f.Logits[:f.Batch*f.Seq*V]
			for r := range f.Batch {
				n := 0 // the row's real tokens: those with a scored target
				for n < f.Seq && f.LossWeights[r*f.Seq+n] > 0 {
					n++
				}
				if n < 3 {
					continue
				}
				var text strings.Builder
				var want float64
				for i := range n {
					text.WriteRune(rune(0x4E00 + int(f.Tokens[r*f.Seq+i])))
					if i == n-1 {
						break
					}
					row := logits[(r*f.Seq+i)*V : (r*f.Seq+i+1)*V]
					mx := math.Inf(-1)
					for _, v := range row {
						mx = max(mx, float64(v))
					}
					var sum float64
					for _, v := range row {
						sum += math.Exp(float64(v) - mx)
					}
					want += mx + math.Log(sum) - float64(row[f.Tokens[r*f.Seq+i+1]])
				}
				want /= float64(n - 1)
				textFile := filepath.Join(t.TempDir(), "row.txt")
				if err := os.WriteFile(textFile, []byte(text.String()+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				cfg := DefaultConfig()
				cfg.Model, cfg.Text, cfg.SeqLen, cfg.BatchSize = mdir, textFile, n-1, 1
				res, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				if res.Tokens != n-1 {
					t.Fatalf("row %d: eval scored %d tokens, want %d (the tokenizer did not give the fixture's ids)", r, res.Tokens, n-1)
				}
				d := math.Abs(res.Loss-want) / want
				if d > 1e-5 {
					t.Errorf("row %d: eval loss %.7f, reference %.7f (relative %.2g)", r, res.Loss, want, d)
				}
				t.Logf("row %d: %d tokens, eval loss %.7f, reference %.7f (relative %.2g)", r, n, res.Loss, want, d)
			}
		})
	}
}
