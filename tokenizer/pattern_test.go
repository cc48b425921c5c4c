package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dlclark/regexp2/v2"
)

// reference compiles a pattern with the general backtracking engine, which
// the hand-written matchers must agree with.
func reference(t testing.TB, pattern string) matcher {
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		t.Fatal(err)
	}
	return &regexp2Matcher{re: re}
}

var patternSeeds = []string{
	"Hello, world! It's 12345 o'clock.\n\n  indented\tTAB\r\n",
	"I'M HERE, YOU'LL SEE. 'S 'll 'ſ 'x",
	"  \n \n\n   x  y   ",
	"中文and English混合text123数字 ١٢٣ ² Ⅻ",
	"emoji 🤖🚀 👨\u200d👩\u200d👧 flag 🇫🇷",
	"x\u00a0nbsp\u2003em\u200bzw\u3000ideo\u0085nel\ufeffbom",
	"(hello) [world] {x} \"q\" 'a' ...!!! ??? ,;:",
	"\r\r\n\n\r a\r b \r\n c",
	"cafe\u0301 e\u0301\u0301 \u0301x",
	"\xff\xfe invalid \xc3 bytes",
	"",
	" ",
	"'",
	"a'",
}

func checkPattern(t *testing.T, name string, fast matcher, ref matcher, s string) {
	t.Helper()
	got := fast.appendMatches(nil, s)
	want := ref.appendMatches(nil, s)
	if !slices.Equal(got, want) {
		t.Fatalf("%s on %q:\n got  %v\n want %v", name, s, pieces(s, got), pieces(s, want))
	}
}

func pieces(s string, spans []span) []string {
	var out []string
	for _, x := range spans {
		out = append(out, s[x.start:x.end])
	}
	return out
}

var patterns = []struct {
	name    string
	pattern string
}{
	{"gpt2", patternGPT2},
	{"llama3", patternLlama3},
	{"qwen2", patternQwen2},
}

// TestWordPatterns compares the hand-written matchers with the general
// regex engine on seed strings and random mixtures of tricky characters.
func TestWordPatterns(t *testing.T) {
	alphabet := []rune("aZé中1٣²' \t\n\r\u00a0\u2003\u200b.,!?-_(🤖\u0301sSlLtTmMdDrReEvV\u017f\u0085")
	r := rand.New(rand.NewPCG(1, 2))
	for _, p := range patterns {
		fast, err := compileRegex(p.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fast.(*wordPattern); !ok {
			t.Fatalf("%s: not recognised as a known pattern", p.name)
		}
		ref := reference(t, p.pattern)
		for _, s := range patternSeeds {
			checkPattern(t, p.name, fast, ref, s)
		}
		for i := 0; i < 3000; i++ {
			rs := make([]rune, r.IntN(20))
			for k := range rs {
				rs[k] = alphabet[r.IntN(len(alphabet))]
			}
			checkPattern(t, p.name, fast, ref, string(rs))
		}
	}
}

// FuzzWordPatterns differentially fuzzes the hand-written matchers.
func FuzzWordPatterns(f *testing.F) {
	for _, s := range patternSeeds {
		f.Add(s)
	}
	var fast, ref []matcher
	for _, p := range patterns {
		m, err := compileRegex(p.pattern)
		if err != nil {
			f.Fatal(err)
		}
		fast = append(fast, m)
		ref = append(ref, reference(f, p.pattern))
	}
	f.Fuzz(func(t *testing.T, s string) {
		// The matchers see only valid UTF-8 (Encode replaces the rest);
		// regexp2 reads each invalid byte as U+FFFD too.
		for i := range patterns {
			checkPattern(t, patterns[i].name, fast[i], ref[i], s)
		}
	})
}

func TestSplitBehaviors(t *testing.T) {
	s := "a--b----c-"
	m := literalMatcher{"-"}
	cases := []struct {
		b      splitBehavior
		invert bool
		want   string
	}{
		{splitRemoved, false, "[a b c]"},
		{splitIsolated, false, "[a - - b - - - - c -]"},
		{splitMergedWithPrevious, false, "[a- - b- - - - c-]"},
		{splitMergedWithNext, false, "[a - -b - - - -c -]"},
		{splitContiguous, false, "[a -- b ---- c -]"},
		{splitRemoved, true, "[- - - - - - -]"},
	}
	for _, c := range cases {
		var sc scratch
		got := fmt.Sprint(pieces(s, splitString(&sc, s, m, c.b, c.invert)))
		if got != c.want {
			t.Errorf("behavior %d invert %v: %s, want %s", c.b, c.invert, got, c.want)
		}
	}
}

// TestMergeStrategies checks that the linear scan used for short words and
// the heap used for long ones merge identically.
func TestMergeStrategies(t *testing.T) {
	tok := loadFixture(t, "qwen3")
	m := tok.model
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("the quick brown fox jumps over a lazy dog THE 0123 ing tion ,.")
	for i := 0; i < 2000; i++ {
		w := make([]byte, 2+r.IntN(60))
		for k := range w {
			w[k] = alphabet[r.IntN(len(alphabet))]
		}
		var a, b bpeWord
		for _, c := range w {
			a.ids = append(a.ids, m.byteIDs[c])
			b.ids = append(b.ids, m.byteIDs[c])
		}
		small := slices.Clone(m.mergeSmall(&a))
		heap := slices.Clone(m.mergeHeap(&b))
		if !slices.Equal(small, heap) {
			t.Fatalf("%q: linear %v, heap %v", w, small, heap)
		}
	}
}

func TestAppendLossy(t *testing.T) {
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"é🤖", "é🤖"},
		{"\xe2\x82", "\uFFFD"},                 // truncated 3-byte sequence: one replacement
		{"\xe2\x82A", "\uFFFDA"},               // ... followed by ASCII
		{"\xff\xfe", "\uFFFD\uFFFD"},           // never-valid bytes: one each
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate: E D is valid lead, A0 is not
		{"\xf0\x9f\xa4", "\uFFFD"},             // truncated 4-byte
		{"\xc0\xaf", "\uFFFD\uFFFD"},           // overlong
		{"a\x80b", "a\uFFFDb"},
	}
	for _, c := range cases {
		if got := string(appendLossy(nil, []byte(c.in))); got != c.want {
			t.Errorf("appendLossy(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestMarkerSplit checks that cutting long SentencePiece words before each
// "▁" gives the tokens of merging the whole word.
func TestMarkerSplit(t *testing.T) {
	for _, name := range []string{"llama2", "features_sp"} {
		tok := loadFixture(t, name)
		m := tok.model
		if m.marker == "" {
			t.Fatalf("%s: no marker found", name)
		}
		r := rand.New(rand.NewPCG(5, 6))
		words := []string{"▁the", "▁▁", "▁quick", "x", "é", "中", "▁", "ing", "🤖", "\n", "▁▁▁a", "."}
		for i := 0; i < 500; i++ {
			var b []byte
			for n := r.IntN(40); n >= 0; n-- {
				b = append(b, words[r.IntN(len(words))]...)
			}
			w := string(b)
			whole := m.tokenizeWord(nil, w, false)
			split := m.tokenize(nil, w, false)
			if !slices.Equal(whole, split) {
				t.Fatalf("%s %q: whole word %v, split %v", name, w, whole, split)
			}
		}
	}
	if loadFixture(t, "qwen3").model.marker != "" {
		t.Error("qwen3 should have no marker")
	}
}
