package finetune

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
)

func TestReadCorpus(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	cases := []struct {
		name, content string
		want          []string
	}{
		{"lines.txt", "first doc\nsecond doc\n\n", []string{"first doc", "second doc"}},
		{"paras.txt", "line one\nline two\n\n\nnext para\r\n\r\nlast\n", []string{"line one\nline two", "next para", "last"}},
		{"docs.jsonl", "{\"text\": \"a\\n\\nb\"}\n\n{\"text\": \"c\", \"id\": 3}\n{\"text\": \"  \"}\n", []string{"a\n\nb", "c"}},
	}
	for _, c := range cases {
		got, err := ReadCorpus(write(c.name, c.content))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	bad := []struct{ name, content, want string }{
		{"bad.jsonl", "{\"text\": \"a\"}\n{\"text\": 3}\n", "line 2"},
		{"notext.jsonl", "{\"body\": \"a\"}\n", "line 1: no \"text\" string"},
		{"empty.txt", "\n \n", "no documents"},
	}
	for _, c := range bad {
		if _, err := ReadCorpus(write(c.name, c.content)); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: error %v, want it to name the file and mention %q", c.name, err, c.want)
		}
	}
}

func TestWindows(t *testing.T) {
	stream := []int32{10, 11, 12, 13, 14, 15, 16, 17} // 8 tokens, 7 targets
	w := Windows{Stream: stream, T: 3}
	if w.Len() != 3 || w.Full() != 2 {
		t.Fatalf("Len %d Full %d, want 3 and 2", w.Len(), w.Full())
	}
	tok, tgt, wt := make([]int32, 6), make([]int32, 6), make([]float32, 6)
	if n := w.Fill(1, 0, tok, tgt, wt, -1); n != 3 || !slices.Equal(tok[:3], []int32{13, 14, 15}) || !slices.Equal(tgt[:3], []int32{14, 15, 16}) {
		t.Errorf("window 1: n=%d tokens %v targets %v", n, tok[:3], tgt[:3])
	}
	// The short last window: one target, then padding with weight 0.
	if n := w.Fill(2, 1, tok, tgt, wt, -1); n != 1 || !slices.Equal(tok[3:], []int32{16, -1, -1}) || !slices.Equal(tgt[3:], []int32{17, -1, -1}) || !slices.Equal(wt, []float32{1, 1, 1, 1, 0, 0}) {
		t.Errorf("window 2: n=%d tokens %v targets %v weights %v", n, tok[3:], tgt[3:], wt)
	}
	// Every target exactly once across the windows.
	total := 0
	for k := range w.Len() {
		total += w.Fill(k, 0, tok, tgt, wt, 0)
	}
	if total != len(stream)-1 {
		t.Errorf("%d targets, want %d", total, len(stream)-1)
	}
	if (Windows{Stream: []int32{1}, T: 4}).Len() != 0 || (Windows{Stream: []int32{1, 2}, T: 4}).Full() != 0 {
		t.Error("degenerate streams")
	}
}

// FuzzParseCorpus: any bytes give documents or an error, never a panic,
// and documents are non-empty and trimmed in the plain-text form.
func FuzzParseCorpus(f *testing.F) {
	f.Add([]byte("a\nb\n"), false)
	f.Add([]byte("a\n\nb c\nd\n"), false)
	f.Add([]byte("{\"text\": \"x\"}\n{\"text\": \"y\\n\"}\n"), true)
	f.Add([]byte("{\"text\": 1}"), true)
	f.Fuzz(func(t *testing.T, raw []byte, jsonl bool) {
		docs, err := parseCorpus(raw, jsonl, "fuzz")
		if err != nil {
			return
		}
		if len(docs) == 0 {
			t.Fatal("no documents and no error")
		}
		for _, d := range docs {
			if strings.TrimSpace(d) == "" || (!jsonl && d != strings.TrimSpace(d)) {
				t.Fatalf("document %q", d)
			}
		}
	})
}

// scoreWindows is an independent evaluation: full logits from the graph,
// log-softmax and the mean NLL of every target computed here in float64.
func scoreWindows(t *testing.T, w *model.Weights, s Windows, B int) (float64, int) {
	t.Helper()
	T := s.T
	g, err := model.Build(w, model.GraphOptions{B: B, T: T})
	if err != nil {
		t.Fatal(err)
	}
	logits := g.Logits()
	prog, err := g.Compile(nil, nil, logits)
	if err != nil {
		t.Fatal(err)
	}
	V := w.Config.VocabSize
	var sum float64
	var n int
	weights := make([]float32, B*T)
	for k := 0; k < s.Len(); k += B {
		rows := min(B, s.Len()-k)
		for r := range B {
			s.Fill(min(k+r, s.Len()-1), r, g.In.Tokens, g.In.Targets, weights, 0)
		}
		if err := prog.Run(); err != nil {
			t.Fatal(err)
		}
		lg := model.Value32(logits)
		for i := range rows * T {
			if weights[i] == 0 {
				continue
			}
			sum += tinymodel.NLL(lg[i*V:(i+1)*V], int(g.In.Targets[i]))
			n++
		}
	}
	return sum / float64(n), n
}

// TestTextLoss checks TextLoss against the independent scoring, for a
// window length that leaves a short last window and a batch that leaves
// empty rows, and WindowLoss's limit on the windows scored.
func TestTextLoss(t *testing.T) {
	w, tok := tinymodel.Weights(t, 5, 64, "<s>", "</s>")
	docs := []string{"the cat sat on the mat", "one two three four five six", "a b c d e f g h i j k l m n o p", "last document."}
	s := Windows{Stream: Tokenize(tok, docs), T: 24}
	if s.Len()%3 == 0 || (len(s.Stream)-1)%24 == 0 {
		t.Fatalf("%d tokens: the test wants a short last window and an empty row", len(s.Stream))
	}
	loss, n, err := TextLoss(context.Background(), w, s, 3, int32(tok.PAD()))
	if err != nil {
		t.Fatal(err)
	}
	want, wantN := scoreWindows(t, w, s, 3)
	if n != len(s.Stream)-1 || n != wantN || math.Abs(loss-want) > 1e-4*want {
		t.Errorf("TextLoss = %.6f over %d targets; independent %.6f over %d, stream of %d tokens", loss, n, want, wantN, len(s.Stream))
	}
	if _, _, err := TextLoss(context.Background(), w, s, 0, 0); err == nil {
		t.Error("no windows per pass: no error")
	}

	// The first two windows only.
	g, err := model.Build(w, model.GraphOptions{B: 2, T: 24})
	if err != nil {
		t.Fatal(err)
	}
	head, _, _ := TokenLoss(g, nil)
	prog, err := g.Compile(nil, nil, head)
	if err != nil {
		t.Fatal(err)
	}
	first, n2, err := WindowLoss(context.Background(), g, prog.Run, head, s, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	two := Windows{Stream: s.Stream[:2*24+1], T: 24}
	if want, wantN := scoreWindows(t, w, two, 2); n2 != 48 || n2 != wantN || math.Abs(first-want) > 1e-4*want {
		t.Errorf("two windows: %.6f over %d targets, want %.6f over %d", first, n2, want, wantN)
	}
	if _, _, err := WindowLoss(context.Background(), g, prog.Run, head, Windows{Stream: s.Stream, T: 16}, 0, 0); err == nil {
		t.Error("windows of another length: no error")
	}
}
