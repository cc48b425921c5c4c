package tokenizer

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gotune/gotune/internal/configtest"
)

var update = flag.Bool("update", false, "rewrite testdata/trained from Train")

// syntheticCorpus makes n deterministic lines of mixed text: a small
// grammar of English sentences with numbers, code, punctuation and a few
// other scripts.
func syntheticCorpus(n int, seed uint64) []string {
	r := rand.New(rand.NewPCG(seed, 7))
	subjects := []string{"The model", "A tokenizer", "Our team", "The cat", "Each layer", "She", "They", "Gradient descent"}
	verbs := []string{"learns", "merges", "reads", "writes", "predicts", "ignores", "counts", "sorts"}
	objects := []string{"the tokens", "a sequence", "every byte", "new words", "the loss", "rare pairs", "long documents"}
	extras := []string{"quickly", "again", "in 42 steps", "with 3.14 precision", "(see §2)", "— fast!", "today?", "x ** 2", "`code`", "café", "日本語", "🤖", "naïve"}
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for s := 0; s < 1+r.IntN(3); s++ {
			if s > 0 {
				b.WriteString(" ")
			}
			b.WriteString(subjects[r.IntN(len(subjects))] + " " + verbs[r.IntN(len(verbs))] + " " + objects[r.IntN(len(objects))])
			if r.IntN(2) == 0 {
				b.WriteString(" " + extras[r.IntN(len(extras))])
			}
			b.WriteString(".")
		}
		if r.IntN(4) == 0 {
			b.WriteString("\n")
		}
		out[i] = b.String()
	}
	return out
}

var trainSpecials = []string{"<|bos|>", "<|eos|>", "<|pad|>"}

func trainSmall(tb testing.TB) *Tokenizer {
	tb.Helper()
	tok, err := Train(syntheticCorpus(2000, 1), 400, trainSpecials)
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// TestTrainedFixture keeps testdata/trained (read by the Hugging Face
// reference script) equal to what Train makes; -update rewrites it.
func TestTrainedFixture(t *testing.T) {
	tok := trainSmall(t)
	dir := filepath.Join("testdata", "trained")
	if *update {
		if err := tok.Save(dir); err != nil {
			t.Fatal(err)
		}
	}
	tmp := t.TempDir()
	if err := tok.Save(tmp); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{TokenizerFile, ConfigFile} {
		got, err := os.ReadFile(filepath.Join(tmp, name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from testdata/trained (training is not deterministic, or run go test -update)", name)
		}
	}
}

func TestTrain(t *testing.T) {
	corpus := syntheticCorpus(2000, 1)
	tok := trainSmall(t)
	if got := tok.VocabSize(); got != 400 {
		t.Errorf("VocabSize = %d, want 400", got)
	}
	// Bytes first, then the specials.
	for b := 0; b < 256; b++ {
		if got := tok.Encode(string([]byte{byte(b)}), false); utf8.RuneStart(byte(b)) && b < 0x80 && !slices.Equal(got, []int{b}) {
			t.Fatalf("byte %d encodes as %v", b, got)
		}
	}
	for i, s := range trainSpecials {
		if id, ok := tok.TokenID(s); !ok || id != 256+i {
			t.Errorf("TokenID(%q) = %d, %v; want %d", s, id, ok, 256+i)
		}
	}
	if tok.BOS() != 256 || tok.EOS() != 257 || tok.PAD() != 258 {
		t.Errorf("BOS/EOS/PAD = %d/%d/%d, want 256/257/258", tok.BOS(), tok.EOS(), tok.PAD())
	}
	// Merges compress: far fewer tokens than bytes on the training text,
	// and every text round-trips.
	var nBytes, nTokens int
	for _, line := range corpus {
		ids := tok.Encode(line, false)
		nBytes += len(line)
		nTokens += len(ids)
		if got := tok.Decode(ids, false); got != line {
			t.Fatalf("round trip %q -> %q", line, got)
		}
	}
	if ratio := float64(nBytes) / float64(nTokens); ratio < 3 {
		t.Errorf("only %.2f bytes per token on the training corpus", ratio)
	}
	// With special tokens, BOS comes first; specials in text stay whole.
	ids := tok.Encode("hi<|eos|>", true)
	if ids[0] != 256 || ids[len(ids)-1] != 257 {
		t.Errorf("Encode with specials = %v", ids)
	}
	if got := tok.Decode(ids, true); got != "hi" {
		t.Errorf("Decode skipping specials = %q", got)
	}
}

func TestTrainDeterministic(t *testing.T) {
	a, b := trainSmall(t), trainSmall(t)
	da, db := t.TempDir(), t.TempDir()
	if err := a.Save(da); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(db); err != nil {
		t.Fatal(err)
	}
	fa, _ := os.ReadFile(filepath.Join(da, TokenizerFile))
	fb, _ := os.ReadFile(filepath.Join(db, TokenizerFile))
	if !bytes.Equal(fa, fb) {
		t.Error("two trainings on the same corpus differ")
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	tok := trainSmall(t)
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.VocabSize() != tok.VocabSize() || back.BOS() != tok.BOS() || back.EOS() != tok.EOS() || back.PAD() != tok.PAD() {
		t.Fatalf("after Load: %v, before: %v", back, tok)
	}
	texts := append(syntheticCorpus(200, 99), "<|bos|>x<|pad|>", "  \n\t", "emoji 👨\u200d👩\u200d👧 and ✓", "")
	for _, s := range texts {
		for _, special := range []bool{false, true} {
			if a, b := tok.Encode(s, special), back.Encode(s, special); !slices.Equal(a, b) {
				t.Fatalf("Encode(%q, %v): %v before Save, %v after Load", s, special, a, b)
			}
		}
	}
	// Loading the file itself (not the directory) reads the config beside it.
	again, err := Load(filepath.Join(dir, TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	if again.BOS() != tok.BOS() {
		t.Errorf("BOS via file path = %d", again.BOS())
	}
	// A loaded tokenizer saves byte for byte.
	dir2 := t.TempDir()
	if err := back.Save(dir2); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, TokenizerFile))
	b, _ := os.ReadFile(filepath.Join(dir2, TokenizerFile))
	if !bytes.Equal(a, b) {
		t.Error("Save after Load changed tokenizer.json")
	}
}

func TestSaveLoadedFixtureKeepsConfig(t *testing.T) {
	tok := loadFixture(t, "qwen3")
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.EOS() != tok.EOS() || back.PAD() != tok.PAD() || back.BOS() != -1 || back.ChatTemplate != tok.ChatTemplate {
		t.Errorf("after Save/Load: %v (template %d bytes), want %v", back, len(back.ChatTemplate), tok)
	}
	text := "<|im_start|>user\nhello 世界<|im_end|>"
	if !slices.Equal(back.Encode(text, true), tok.Encode(text, true)) {
		t.Error("encodings differ after Save/Load")
	}
}

func TestNewByteLevel(t *testing.T) {
	tok := NewByteLevel([]string{"<s>", "</s>"})
	if tok.VocabSize() != 258 || tok.BOS() != 256 || tok.EOS() != 257 {
		t.Fatalf("%v", tok)
	}
	s := "héllo\x00\t🤖 <s>"
	ids := tok.Encode(s, false)
	want := append([]int{}, []int{'h', 0xC3, 0xA9, 'l', 'l', 'o', 0, '\t', 0xF0, 0x9F, 0xA4, 0x96, ' '}...)
	want = append(want, 256)
	if !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
	if got := tok.Decode(ids, false); got != s {
		t.Errorf("Decode = %q", got)
	}
	if got := tok.Encode("a", true); !slices.Equal(got, []int{256, 'a'}) {
		t.Errorf("with specials: %v", got)
	}
	plain := NewByteLevel(nil)
	if plain.BOS() != -1 || plain.EOS() != -1 || plain.PAD() != 0 {
		t.Errorf("no specials: %v", plain)
	}
}

func TestTrainErrors(t *testing.T) {
	// Each invalid setting is an error naming its key, from Train and from
	// TrainFiles alike.
	corpus := filepath.Join(t.TempDir(), "corpus.txt")
	if err := os.WriteFile(corpus, []byte("abc abc"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []configtest.Case[TrainConfig]{
		{Key: KeyVocabSize, Edit: func(c *TrainConfig) { c.VocabSize = 100 }},
		{Key: KeyVocabSize, Edit: func(c *TrainConfig) { c.VocabSize = -1 }},
		{Key: KeyVocabSize, Edit: func(c *TrainConfig) { c.VocabSize, c.Specials = 257, []string{"<a>", "<b>"} }},
		{Key: KeySpecial, Edit: func(c *TrainConfig) { c.Specials = []string{"<a>", "<a>"} }},
		{Key: KeySpecial, Edit: func(c *TrainConfig) { c.Specials = []string{""} }},
	}
	train := func(c TrainConfig) error {
		_, err := Train([]string{"abc"}, c.VocabSize, c.Specials)
		return err
	}
	trainFiles := func(c TrainConfig) error {
		_, err := TrainFiles([]string{corpus}, c)
		return err
	}
	valid := TrainConfig{VocabSize: 300}
	configtest.Check(t, valid, TrainConfig.Validate, train, cases)
	configtest.Check(t, valid, TrainConfig.Validate, trainFiles, cases)
	if _, err := TrainFiles(nil, TrainConfig{VocabSize: 300}); err == nil {
		t.Error("no files: no error")
	}
	if _, err := TrainFiles([]string{filepath.Join(t.TempDir(), "missing.txt")}, TrainConfig{VocabSize: 300}); err == nil {
		t.Error("missing file: no error")
	}
	// A corpus too small for the vocabulary stops early.
	tok, err := Train([]string{"ab ab ab"}, 1000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() >= 1000 || tok.VocabSize() <= 256 {
		t.Errorf("tiny corpus vocab = %d", tok.VocabSize())
	}
}

func TestSetSpecialTokens(t *testing.T) {
	tok := NewByteLevel([]string{"<x>", "<y>"})
	if err := tok.SetSpecialTokens("<y>", "<x>", ""); err != nil {
		t.Fatal(err)
	}
	if tok.BOS() != 257 || tok.EOS() != 256 || tok.PAD() != 256 {
		t.Errorf("%v", tok)
	}
	if err := tok.SetSpecialTokens("<nope>", "", ""); err == nil {
		t.Error("unknown token: no error")
	}
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.BOS() != 257 || back.EOS() != 256 {
		t.Errorf("after Load: %v", back)
	}
}

// TestConcurrentEncode encodes from several goroutines at once (run with
// -race to check the caches and pools).
func TestConcurrentEncode(t *testing.T) {
	tok := trainSmall(t)
	texts := benchLines()[:1500] // many distinct words: the cache publishes snapshots
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = tok.Encode(s, true)
	}
	fresh := trainSmall(t) // empty caches, filled concurrently below
	errs := make(chan string, 4)
	for g := 0; g < 4; g++ {
		go func(g int) {
			for k := range texts {
				i := (k*7 + g*13) % len(texts)
				if got := fresh.Encode(texts[i], true); !slices.Equal(got, want[i]) {
					errs <- texts[i]
					return
				}
			}
			errs <- ""
		}(g)
	}
	for g := 0; g < 4; g++ {
		if s := <-errs; s != "" {
			t.Errorf("concurrent Encode(%q) differs", s)
		}
	}
}
