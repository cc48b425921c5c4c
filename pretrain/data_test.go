package pretrain

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
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

func TestSplitHeldOut(t *testing.T) {
	docs := syntheticCorpus(2000, 4)
	tr, held := SplitHeldOut(docs, 0.1)
	if len(tr)+len(held) != len(docs) || len(held) < 120 || len(held) > 280 {
		t.Fatalf("split %d / %d", len(tr), len(held))
	}
	// Stable under reordering, and a document's copies stay on one side.
	rev := slices.Clone(docs)
	slices.Reverse(rev)
	_, held2 := SplitHeldOut(rev, 0.1)
	slices.Sort(held)
	slices.Sort(held2)
	if !slices.Equal(held, held2) {
		t.Error("held-out set depends on document order")
	}
	for _, h := range held {
		if slices.Contains(tr, h) {
			t.Fatalf("%q is on both sides", h)
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

func TestOrderResumes(t *testing.T) {
	a := &Order{Seed: 3, N: 7}
	var seq []int
	for range 20 {
		seq = append(seq, a.Next())
	}
	// Each epoch is a permutation, and the epochs differ.
	for e := range 2 {
		ep := slices.Clone(seq[7*e : 7*e+7])
		slices.Sort(ep)
		if !slices.Equal(ep, []int{0, 1, 2, 3, 4, 5, 6}) {
			t.Fatalf("epoch %d is not a permutation: %v", e, seq[7*e:7*e+7])
		}
	}
	if slices.Equal(seq[:7], seq[7:14]) {
		t.Error("two epochs in the same order")
	}
	b := &Order{Seed: 3, N: 7}
	for range 9 {
		b.Next()
	}
	raw, err := b.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	c := &Order{Seed: 3, N: 7}
	if err := c.RestoreState(raw); err != nil {
		t.Fatal(err)
	}
	for i := 9; i < 20; i++ {
		if k := c.Next(); k != seq[i] {
			t.Fatalf("restored order gives %d at %d, want %d", k, i, seq[i])
		}
	}
	if c.Progress() != 20.0/7 {
		t.Errorf("progress %g", c.Progress())
	}
	if err := (&Order{Seed: 3, N: 8}).RestoreState(raw); err == nil {
		t.Error("restored a position of other data")
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
