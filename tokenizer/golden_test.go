package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// The fixture tokenizers vendored under testdata/, with golden encodings
// made by an independent implementation (transformers.js).
var fixtures = []string{"qwen3", "llama3", "llama2"}

var (
	fixtureMu    sync.Mutex
	fixtureCache = map[string]*Tokenizer{}
)

// loadFixture loads testdata/<name> once per test binary.
func loadFixture(tb testing.TB, name string) *Tokenizer {
	tb.Helper()
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	if t, ok := fixtureCache[name]; ok {
		return t
	}
	t, err := Load(filepath.Join("testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	fixtureCache[name] = t
	return t
}

type goldenLine struct {
	Text           string `json:"text"`
	IDs            []int  `json:"ids"`
	IDsWithSpecial []int  `json:"ids_with_special"`
	Decoded        string `json:"decoded"`
}

func readGolden(tb testing.TB, name string) []goldenLine {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", name, "golden.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []goldenLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var g goldenLine
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			tb.Fatalf("%s golden line %d: %v", name, n, err)
		}
		out = append(out, g)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	if len(out) == 0 {
		tb.Fatalf("%s: no golden lines", name)
	}
	return out
}

// TestGolden checks every golden line of every fixture: ids without and
// with special tokens, and the decoding of the ids.
func TestGolden(t *testing.T) {
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			tok := loadFixture(t, name)
			for i, g := range readGolden(t, name) {
				if got := tok.Encode(g.Text, false); !slices.Equal(got, g.IDs) {
					t.Errorf("line %d %q:\n ids  %v\n want %v", i+1, g.Text, got, g.IDs)
				}
				if got := tok.Encode(g.Text, true); !slices.Equal(got, g.IDsWithSpecial) {
					t.Errorf("line %d %q:\n ids_with_special  %v\n want %v", i+1, g.Text, got, g.IDsWithSpecial)
				}
				if got := tok.Decode(g.IDs, false); got != g.Decoded {
					t.Errorf("line %d: decoded %q, want %q", i+1, got, g.Decoded)
				}
			}
		})
	}
}

type referenceLine struct {
	Text               string `json:"text"`
	IDs                []int  `json:"ids"`
	IDsWithSpecial     []int  `json:"ids_with_special"`
	Decoded            string `json:"decoded"`
	DecodedSkipSpecial string `json:"decoded_skip_special"`
}

func readReference(tb testing.TB, dir string) []referenceLine {
	tb.Helper()
	f, err := os.Open(filepath.Join("testdata", dir, "hf_reference.jsonl"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []referenceLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		var r referenceLine
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			tb.Fatalf("%s reference line %d: %v", dir, n, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestHFReference checks stress strings against the encodings of Hugging
// Face's Rust tokenizers library (testdata/gen_hf_reference.js), for the
// fixtures, a tokenizer made by Train, and three small tokenizers built to
// exercise the components the fixtures do not use.
func TestHFReference(t *testing.T) {
	for _, name := range append(fixtures, "trained", "features_sp", "features_bl", "features_ws") {
		t.Run(name, func(t *testing.T) {
			tok := loadFixture(t, name)
			defer func(c bool) { tok.CleanUpSpaces = c }(tok.CleanUpSpaces)
			tok.CleanUpSpaces = false // the tokenizers library never cleans up
			bad := 0
			for i, r := range readReference(t, name) {
				if got := tok.Encode(r.Text, false); !slices.Equal(got, r.IDs) {
					t.Errorf("line %d %q:\n ids  %v\n want %v", i+1, r.Text, got, r.IDs)
					bad++
				}
				if got := tok.Encode(r.Text, true); !slices.Equal(got, r.IDsWithSpecial) {
					t.Errorf("line %d %q:\n ids_with_special  %v\n want %v", i+1, r.Text, got, r.IDsWithSpecial)
					bad++
				}
				if got := tok.Decode(r.IDs, false); got != r.Decoded {
					t.Errorf("line %d: decoded %q, want %q", i+1, got, r.Decoded)
					bad++
				}
				if got := tok.Decode(r.IDs, true); got != r.DecodedSkipSpecial {
					t.Errorf("line %d: decoded skipping special %q, want %q", i+1, got, r.DecodedSkipSpecial)
					bad++
				}
				if bad > 10 {
					t.Fatal("too many differences")
				}
			}
		})
	}
}
