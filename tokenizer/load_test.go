package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// minimal is a valid byte-level tokenizer.json to vary in the tests below.
const minimal = `{
 "version": "1.0",
 "added_tokens": [{"id": 3, "content": "<s>", "special": true}],
 "normalizer": null,
 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
 "post_processor": null,
 "decoder": {"type": "ByteLevel"},
 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]}
}`

func TestParseMinimal(t *testing.T) {
	tok, err := Parse([]byte(minimal), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := tok.Encode("abab<s>a", false); len(got) != 4 || got[0] != 2 || got[2] != 3 {
		t.Errorf("Encode = %v", got)
	}
	// Characters outside the vocabulary (no unk, no byte fallback) are
	// dropped, as in the reference.
	if got := tok.Encode("xab", false); len(got) != 1 || got[0] != 2 {
		t.Errorf("Encode(xab) = %v", got)
	}
}

// TestParseErrors checks that malformed files give errors naming the
// problem and where it is.
func TestParseErrors(t *testing.T) {
	cases := []struct {
		name, json, want string
	}{
		{"empty", ``, "empty file"},
		{"syntax", "{\n \"model\": {,}\n}", "line 2, column"},
		{"type", `{"added_tokens": "no"}`, "added_tokens"},
		{"no model", `{"version": "1.0"}`, "model: missing"},
		{"unigram", strings.Replace(minimal, `"type": "BPE"`, `"type": "Unigram"`, 1), `unsupported model type "Unigram"`},
		{"merge not in vocab", strings.Replace(minimal, `"a b"`, `"a c"`, 1), `merges[0] "a" "c": token "c" not in vocab`},
		{"merged not in vocab", strings.Replace(minimal, `"ab": 2`, `"ba": 2`, 1), `merged token "ab" not in vocab`},
		{"bad merge", strings.Replace(minimal, `"a b"`, `"a b c"`, 1), `model.merges[0]`},
		{"unk missing", strings.Replace(minimal, `"type": "BPE",`, `"type": "BPE", "unk_token": "<unk>",`, 1), `unk_token "<unk>" not in vocab`},
		{"negative id", strings.Replace(minimal, `"a": 0`, `"a": -4`, 1), "negative id"},
		{"pre", strings.Replace(minimal, `"type": "ByteLevel", "add_prefix_space"`, `"type": "Magic", "add_prefix_space"`, 1), `pre_tokenizer: unsupported pre_tokenizer type "Magic"`},
		{"decoder", strings.Replace(minimal, `"decoder": {"type": "ByteLevel"}`, `"decoder": {"type": "CTC"}`, 1), `decoder: unsupported decoder type "CTC"`},
		{"normalizer", strings.Replace(minimal, `"normalizer": null`, `"normalizer": {"type": "Sequence", "normalizers": [{"type": "Precompiled"}]}`, 1), `normalizer.normalizers[0]: unsupported normalizer type "Precompiled"`},
		{"bad regex", strings.Replace(minimal, `"normalizer": null`, `"normalizer": {"type": "Replace", "pattern": {"Regex": "("}, "content": ""}`, 1), "normalizer.pattern"},
		{"split regex", strings.Replace(minimal, `{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`, `{"type": "Split", "pattern": {"Regex": "(?<"}, "behavior": "Isolated"}`, 1), "pre_tokenizer.pattern"},
		{"behavior", strings.Replace(minimal, `{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}`, `{"type": "Split", "pattern": {"String": " "}, "behavior": "Sideways"}`, 1), `unknown split behavior "Sideways"`},
		{"empty added", strings.Replace(minimal, `"content": "<s>"`, `"content": ""`, 1), "added_tokens[0]: empty content"},
		{"template", strings.Replace(minimal, `"post_processor": null`, `"post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<x>"}}], "special_tokens": {}}`, 1), `special token "<x>" missing`},
		{"post id", strings.Replace(minimal, `"post_processor": null`, `"post_processor": {"type": "BertProcessing", "cls": ["<s>", 99], "sep": ["<s>", 3]}`, 1), "special id 99 beyond the vocabulary"},
		{"metaspace", strings.Replace(minimal, `"decoder": {"type": "ByteLevel"}`, `"decoder": {"type": "Metaspace", "replacement": "ab"}`, 1), "want one character"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.json), nil)
		if err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not mention %q", c.name, err, c.want)
		}
	}
	if _, err := Parse([]byte(minimal), []byte(`{"bos_token": 7}`)); err == nil || !strings.Contains(err.Error(), "tokenizer_config.json: bos_token") {
		t.Errorf("bad config: %v", err)
	}
	if _, err := Parse([]byte(minimal), []byte(`{"chat_template": 7}`)); err == nil || !strings.Contains(err.Error(), "chat_template") {
		t.Errorf("bad chat_template: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path: no error")
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), TokenizerFile) {
		t.Errorf("empty dir: %v", err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, TokenizerFile), []byte(minimal), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, ConfigFile), []byte("{oops"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(bad)
	if err == nil || !strings.Contains(err.Error(), filepath.Join(bad, ConfigFile)) || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("bad config: %v", err)
	}
	gz := filepath.Join(dir, "x.json.gz")
	if err := os.WriteFile(gz, []byte("not gzip"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(gz); err == nil {
		t.Error("bad gzip: no error")
	}
}

func TestConfigForms(t *testing.T) {
	cfg := `{"bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": null,
		"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}],
		"clean_up_tokenization_spaces": true}`
	tok, err := Parse([]byte(minimal), []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if tok.BOS() != 3 || tok.EOS() != -1 || tok.PAD() != 0 || tok.ChatTemplate != "D" || !tok.CleanUpSpaces {
		t.Errorf("bos %d eos %d pad %d template %q cleanup %v", tok.BOS(), tok.EOS(), tok.PAD(), tok.ChatTemplate, tok.CleanUpSpaces)
	}
}

// TestPostProcessorSpecials checks BOS and EOS found from the template
// when no config names them.
func TestPostProcessorSpecials(t *testing.T) {
	tok := loadFixture(t, "features_sp")
	if tok.BOS() != 1 || tok.EOS() != 2 {
		t.Errorf("BOS/EOS from template = %d/%d, want 1/2", tok.BOS(), tok.EOS())
	}
	tok = loadFixture(t, "features_bl")
	if tok.BOS() != 256 || tok.EOS() != 257 {
		t.Errorf("BOS/EOS from RobertaProcessing = %d/%d", tok.BOS(), tok.EOS())
	}
}

func TestFixtureSpecials(t *testing.T) {
	want := map[string][3]int{
		"qwen3":  {-1, 151645, 151643},
		"llama3": {128000, 128001, 128001},
		"llama2": {1, 2, 2},
	}
	for name, w := range want {
		tok := loadFixture(t, name)
		if got := [3]int{tok.BOS(), tok.EOS(), tok.PAD()}; got != w {
			t.Errorf("%s: BOS/EOS/PAD = %v, want %v", name, got, w)
		}
	}
	if got := loadFixture(t, "qwen3").VocabSize(); got != 151669 {
		t.Errorf("qwen3 VocabSize = %d, want 151669", got)
	}
	if id, ok := loadFixture(t, "llama3").TokenID("<|eot_id|>"); !ok || id != 128009 {
		t.Errorf("TokenID(<|eot_id|>) = %d, %v", id, ok)
	}
	if id, ok := loadFixture(t, "llama3").TokenID("Ġthe"); !ok || id != 279 {
		t.Errorf("TokenID(Ġthe) = %d, %v", id, ok)
	}
}

func TestCleanUpSpaces(t *testing.T) {
	tok := loadFixture(t, "llama3")
	ids := tok.Encode("Hello , world ! I 'm here .", false)
	if got := tok.Decode(ids, false); got != "Hello, world! I'm here." {
		t.Errorf("with clean-up: %q", got)
	}
	tok.CleanUpSpaces = false
	defer func() { tok.CleanUpSpaces = true }()
	if got := tok.Decode(ids, false); got != "Hello , world ! I 'm here ." {
		t.Errorf("without clean-up: %q", got)
	}
}

// FuzzParse checks that no tokenizer.json, however malformed, panics the
// loader, and that whatever loads can encode and decode.
func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(`{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": [["a", "a"]]}}`))
	f.Add([]byte(`{"model": {"vocab": {"▁": 0, "<0x41>": 1}, "merges": [], "byte_fallback": true, "unk_token": "▁"},
		"pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first"},
		"decoder": {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, {"type": "Strip", "content": " ", "start": 1, "stop": 2}]}}`))
	for _, name := range []string{"features_sp", "features_bl", "features_ws"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name, TokenizerFile)); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Parse(data, nil)
		if err != nil {
			return
		}
		ids := tok.Encode("Hello wörld 🤖 <s>\xff", true)
		_ = tok.Decode(ids, false)
		_ = tok.Decode([]int{-1, 0, 1, 1 << 30}, true)
	})
}

// FuzzEncodeDecode checks that byte-level tokenizers round-trip any valid
// UTF-8 exactly (after NFC where the tokenizer normalizes), that invalid
// UTF-8 reads as its U+FFFD replacement, and that decoding arbitrary ids
// never panics.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range patternSeeds {
		f.Add(s, 7)
	}
	trained := trainSmall(f)
	qwen := loadFixture(f, "qwen3")
	f.Fuzz(func(t *testing.T, s string, seed int) {
		valid := string(appendLossy(nil, []byte(s)))
		for _, tok := range []*Tokenizer{trained, qwen} {
			want := valid
			if tok == qwen {
				want = norm.NFC.String(valid)
			}
			ids := tok.Encode(s, false)
			if got := tok.Decode(ids, false); got != want {
				t.Fatalf("round trip of %q: got %q, want %q", s, got, want)
			}
			if !utf8.ValidString(s) {
				continue
			}
			// Arbitrary ids decode to valid UTF-8 without panicking.
			junk := []int{seed, -seed, seed * 7919 % tok.VocabSize(), tok.VocabSize()}
			if out := tok.Decode(junk, seed%2 == 0); !utf8.ValidString(out) {
				t.Fatalf("Decode(%v) is not valid UTF-8", junk)
			}
		}
	})
}
