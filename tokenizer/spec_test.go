package tokenizer

import (
	"path/filepath"
	"slices"
	"testing"
)

// TestSpecRoundTrip describes each fixture tokenizer (and the project's
// trained one) as a Spec, rebuilds it with FromSpec, and requires the
// rebuilt tokenizer to encode and decode every golden text exactly as the
// original does, special tokens included.
func TestSpecRoundTrip(t *testing.T) {
	want := map[string]struct {
		kind, pre string
		addBOS    bool
	}{
		"qwen3":   {KindByteLevel, PreQwen2, false},
		"llama3":  {KindByteLevel, PreLlama3, false}, // this tokenizer.json adds no BOS
		"llama2":  {KindSentencePiece, "", true},
		"trained": {KindByteLevel, PreLlama3, true},
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			var orig *Tokenizer
			if name == "trained" {
				var err error
				if orig, err = Load(filepath.Join("testdata", name)); err != nil {
					t.Fatal(err)
				}
			} else {
				orig = loadFixture(t, name)
			}
			s, err := orig.Spec()
			if err != nil {
				t.Fatal(err)
			}
			if s.Kind != w.kind || s.Pre != w.pre || s.AddBOS != w.addBOS {
				t.Fatalf("spec kind %q pre %q add_bos %v, want %q %q %v", s.Kind, s.Pre, s.AddBOS, w.kind, w.pre, w.addBOS)
			}
			back, err := FromSpec(s)
			if err != nil {
				t.Fatal(err)
			}
			if back.VocabSize() != orig.VocabSize() || back.BOS() != orig.BOS() || back.EOS() != orig.EOS() || back.PAD() != orig.PAD() {
				t.Fatalf("rebuilt %v, original %v", back, orig)
			}
			golden := readGolden(t, "llama3") // the texts; every tokenizer encodes them
			for _, g := range golden {
				for _, special := range []bool{false, true} {
					a, b := orig.Encode(g.Text, special), back.Encode(g.Text, special)
					if !slices.Equal(a, b) {
						t.Fatalf("%q (special %v): rebuilt %v, original %v", g.Text, special, b, a)
					}
					if da, db := orig.Decode(a, false), back.Decode(a, false); da != db {
						t.Fatalf("decode %v: rebuilt %q, original %q", a, db, da)
					}
				}
			}
			if back.ChatTemplate != orig.ChatTemplate {
				t.Fatal("chat template changed")
			}
		})
	}
}

func TestFromSpecRefuses(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Kind: "wordpiece"}, `tokenizer kind "wordpiece" is not known`},
		{Spec{Kind: KindByteLevel, Pre: "tekken", BOS: -1, EOS: -1, PAD: -1}, `byte-level pre-tokenizer "tekken" is not known`},
		{Spec{Kind: KindByteLevel, Pre: PreGPT2, Tokens: []string{"a"}, BOS: 3, EOS: -1, PAD: -1}, "bos: special token id 3 is not in the vocabulary"},
		{Spec{Kind: KindByteLevel, Pre: PreGPT2, Tokens: []string{"a", "a"}, BOS: -1, EOS: -1, PAD: -1}, `token 1 "a" appears twice`},
	} {
		if _, err := FromSpec(tc.spec); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("FromSpec(%+v): error %v, want %q", tc.spec, err, tc.want)
		}
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub))
}
