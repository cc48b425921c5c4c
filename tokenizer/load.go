package tokenizer

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// File names of a Hugging Face tokenizer directory.
const (
	TokenizerFile = "tokenizer.json"
	ConfigFile    = "tokenizer_config.json"
)

// maxFileSize bounds what Load reads (the largest public tokenizer.json
// files are a few tens of MB).
const maxFileSize = 1 << 30

// tokenizerFile is the top level of a tokenizer.json; components stay raw
// until parsed, and are written back as they were.
type tokenizerFile struct {
	Version       string          `json:"version"`
	Truncation    json.RawMessage `json:"truncation"`
	Padding       json.RawMessage `json:"padding"`
	AddedTokens   []AddedToken    `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         json.RawMessage `json:"model"`
}

// Load reads a tokenizer from a tokenizer.json file (optionally gzipped,
// "tokenizer.json.gz") or from a directory holding one; a
// tokenizer_config.json beside it supplies the BOS, EOS and PAD tokens,
// the chat template and the decoding clean-up flag.
func Load(pathOrDir string) (*Tokenizer, error) {
	path := pathOrDir
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	dir := filepath.Dir(path)
	if fi.IsDir() {
		dir = path
		path = filepath.Join(dir, TokenizerFile)
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if _, errGz := os.Stat(path + ".gz"); errGz == nil {
				path += ".gz"
			}
		}
	}
	data, err := readMaybeGzip(path)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var config []byte
	cfgPath := filepath.Join(dir, ConfigFile)
	if c, err := os.ReadFile(cfgPath); err == nil {
		config = c
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	t, err := Parse(data, config)
	if err != nil {
		if config != nil && strings.HasPrefix(err.Error(), ConfigFile) {
			return nil, fmt.Errorf("load tokenizer %s: %w", cfgPath, err)
		}
		return nil, fmt.Errorf("load tokenizer %s: %w", path, err)
	}
	return t, nil
}

func readMaybeGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxFileSize)
	}
	return data, nil
}

// Parse builds a tokenizer from the bytes of a tokenizer.json and, when
// config is not nil, of a tokenizer_config.json.
func Parse(tokenizerJSON, config []byte) (*Tokenizer, error) {
	var f tokenizerFile
	if err := strictUnmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, err)
	}
	t, err := build(&f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", TokenizerFile, err)
	}
	t.raw = tokenizerJSON
	if config != nil {
		if err := t.applyConfig(config); err != nil {
			return nil, fmt.Errorf("%s: %w", ConfigFile, err)
		}
	}
	t.resolveSpecials()
	return t, nil
}

// strictUnmarshal decodes JSON, reporting syntax and type errors by line
// and column.
func strictUnmarshal(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty file")
	}
	err := json.Unmarshal(data, v)
	if err == nil {
		return nil
	}
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		line, col := lineCol(data, se.Offset)
		return fmt.Errorf("line %d, column %d: %w", line, col, err)
	case errors.As(err, &te):
		line, col := lineCol(data, te.Offset)
		return fmt.Errorf("line %d, column %d: field %q: %w", line, col, te.Field, err)
	}
	return err
}

func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

// isNull reports whether a raw component is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || bytes.Equal(t, []byte("null"))
}

// typeOf reads the "type" field of a component.
func typeOf(raw json.RawMessage, path string) (string, error) {
	var h struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &h); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return h.Type, nil
}

func decodeInto(raw json.RawMessage, path string, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// patternJSON is a Split/Replace pattern: {"String": ...} or {"Regex": ...}.
type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

func (p patternJSON) matcher(path string, engine func(string) (matcher, error)) (matcher, error) {
	switch {
	case p.String != nil:
		return literalMatcher{*p.String}, nil
	case p.Regex != nil:
		m, err := engine(*p.Regex)
		if err != nil {
			return nil, fmt.Errorf("%s.pattern: %w", path, err)
		}
		return m, nil
	}
	return nil, fmt.Errorf("%s.pattern: want {\"String\": ...} or {\"Regex\": ...}", path)
}

// goRegex compiles a Replace pattern with Go's RE2 engine.
func goRegex(p string) (matcher, error) {
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	return goRegexMatcher{re}, nil
}

func parseNormalizer(raw json.RawMessage, path string) (normalizer, error) {
	typ, err := typeOf(raw, path)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Lowercase":
		return lowercase{}, nil
	case "StripAccents":
		return stripAccents{}, nil
	case "Strip":
		var c struct {
			Left  bool `json:"strip_left"`
			Right bool `json:"strip_right"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		return stripNorm{c.Left, c.Right}, nil
	case "Prepend":
		var c struct {
			Prepend string `json:"prepend"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		return prepend{c.Prepend}, nil
	case "Replace":
		var c struct {
			Pattern patternJSON `json:"pattern"`
			Content string      `json:"content"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		m, err := c.Pattern.matcher(path, goRegex)
		if err != nil {
			return nil, err
		}
		return replace{m, c.Content}, nil
	case "Sequence":
		var c struct {
			Normalizers []json.RawMessage `json:"normalizers"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		var q normSequence
		for i, r := range c.Normalizers {
			n, err := parseNormalizer(r, fmt.Sprintf("%s.normalizers[%d]", path, i))
			if err != nil {
				return nil, err
			}
			q = append(q, n)
		}
		return q, nil
	}
	return nil, fmt.Errorf("%s: unsupported normalizer type %q", path, typ)
}

// parsePreTokenizer parses a pre-tokenizer; last says whether it is the
// final step of the pipeline (where a ByteLevel step may leave its byte
// mapping to the model).
func parsePreTokenizer(raw json.RawMessage, path string, last bool) (preTokenizer, error) {
	typ, err := typeOf(raw, path)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		c := struct {
			AddPrefixSpace bool `json:"add_prefix_space"`
			UseRegex       bool `json:"use_regex"`
		}{UseRegex: true}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		return &byteLevelPre{addPrefixSpace: c.AddPrefixSpace, useRegex: c.UseRegex, mapNow: !last}, nil
	case "Split":
		var c struct {
			Pattern  patternJSON `json:"pattern"`
			Behavior string      `json:"behavior"`
			Invert   bool        `json:"invert"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		m, err := c.Pattern.matcher(path, compileRegex)
		if err != nil {
			return nil, err
		}
		b, err := parseBehavior(c.Behavior)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &splitPre{m: m, behavior: b, invert: c.Invert}, nil
	case "Metaspace":
		var c struct {
			Replacement    string `json:"replacement"`
			AddPrefixSpace *bool  `json:"add_prefix_space"`
			PrependScheme  string `json:"prepend_scheme"`
			Split          *bool  `json:"split"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		rep, err := oneRune(c.Replacement, path+".replacement")
		if err != nil {
			return nil, err
		}
		scheme, err := parseScheme(c.PrependScheme, c.AddPrefixSpace, path)
		if err != nil {
			return nil, err
		}
		return &metaspacePre{replacement: rep, scheme: scheme, split: c.Split == nil || *c.Split}, nil
	case "Digits":
		var c struct {
			Individual bool `json:"individual_digits"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		return &digitsPre{c.Individual}, nil
	case "WhitespaceSplit":
		return whitespaceSplitPre{}, nil
	case "Whitespace":
		return whitespacePre{}, nil
	case "Sequence":
		var c struct {
			Steps []json.RawMessage `json:"pretokenizers"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		var q preSequence
		for i, r := range c.Steps {
			p, err := parsePreTokenizer(r, fmt.Sprintf("%s.pretokenizers[%d]", path, i), last && i == len(c.Steps)-1)
			if err != nil {
				return nil, err
			}
			if bl, ok := p.(*byteLevelPre); ok && !bl.addPrefixSpace && !bl.useRegex && !bl.mapNow {
				continue // a deferred mapping alone does nothing here
			}
			q = append(q, p)
		}
		if len(q) == 1 {
			return q[0], nil
		}
		return q, nil
	}
	return nil, fmt.Errorf("%s: unsupported pre_tokenizer type %q", path, typ)
}

// defersByteLevel reports whether the last step of a pre-tokenizer
// pipeline is a ByteLevel whose mapping is left to the model.
func defersByteLevel(raw json.RawMessage) bool {
	var h struct {
		Type  string            `json:"type"`
		Steps []json.RawMessage `json:"pretokenizers"`
	}
	if json.Unmarshal(raw, &h) != nil {
		return false
	}
	switch h.Type {
	case "ByteLevel":
		return true
	case "Sequence":
		return len(h.Steps) > 0 && defersByteLevel(h.Steps[len(h.Steps)-1])
	}
	return false
}

func oneRune(s, path string) (rune, error) {
	r, n := utf8.DecodeRuneInString(s)
	if s == "" || n != len(s) || r == utf8.RuneError {
		return 0, fmt.Errorf("%s: want one character, got %q", path, s)
	}
	return r, nil
}

func parseScheme(s string, addPrefixSpace *bool, path string) (prependScheme, error) {
	scheme := prependAlways
	switch s {
	case "", "always":
	case "first":
		scheme = prependFirst
	case "never":
		scheme = prependNever
	default:
		return 0, fmt.Errorf("%s: unknown prepend_scheme %q", path, s)
	}
	if addPrefixSpace != nil && !*addPrefixSpace {
		if scheme != prependNever && s != "" {
			return 0, fmt.Errorf("%s: add_prefix_space false contradicts prepend_scheme %q", path, s)
		}
		scheme = prependNever
	}
	return scheme, nil
}

func parseDecoder(raw json.RawMessage, path string) (decoder, error) {
	typ, err := typeOf(raw, path)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		return byteLevelDec{}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Metaspace":
		var c struct {
			Replacement    string `json:"replacement"`
			AddPrefixSpace *bool  `json:"add_prefix_space"`
			PrependScheme  string `json:"prepend_scheme"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		rep, err := oneRune(c.Replacement, path+".replacement")
		if err != nil {
			return nil, err
		}
		scheme, err := parseScheme(c.PrependScheme, c.AddPrefixSpace, path)
		if err != nil {
			return nil, err
		}
		return metaspaceDec{rep, scheme}, nil
	case "Replace":
		var c struct {
			Pattern patternJSON `json:"pattern"`
			Content string      `json:"content"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		m, err := c.Pattern.matcher(path, goRegex)
		if err != nil {
			return nil, err
		}
		return replaceDec{m, c.Content}, nil
	case "Strip":
		var c struct {
			Content string `json:"content"`
			Start   int    `json:"start"`
			Stop    int    `json:"stop"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		r, err := oneRune(c.Content, path+".content")
		if err != nil {
			return nil, err
		}
		if c.Start < 0 || c.Stop < 0 {
			return nil, fmt.Errorf("%s: negative start or stop", path)
		}
		return stripDec{r, c.Start, c.Stop}, nil
	case "BPEDecoder":
		c := struct {
			Suffix string `json:"suffix"`
		}{Suffix: "</w>"}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		return bpeSuffixDec{c.Suffix}, nil
	case "Sequence":
		var c struct {
			Decoders []json.RawMessage `json:"decoders"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		var q decSequence
		for i, r := range c.Decoders {
			d, err := parseDecoder(r, fmt.Sprintf("%s.decoders[%d]", path, i))
			if err != nil {
				return nil, err
			}
			q = append(q, d)
		}
		return q, nil
	}
	return nil, fmt.Errorf("%s: unsupported decoder type %q", path, typ)
}

// parsePost parses a post-processor; special ids come from its own tables.
func parsePost(raw json.RawMessage, path string) (postProcessor, error) {
	typ, err := typeOf(raw, path)
	if err != nil {
		return nil, err
	}
	switch typ {
	case "ByteLevel":
		return noPost{}, nil
	case "TemplateProcessing":
		var c struct {
			Single []struct {
				SpecialToken *struct {
					ID string `json:"id"`
				} `json:"SpecialToken"`
				Sequence *struct {
					ID string `json:"id"`
				} `json:"Sequence"`
			} `json:"single"`
			Specials map[string]struct {
				IDs []int `json:"ids"`
			} `json:"special_tokens"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		p := &templatePost{}
		for i, it := range c.Single {
			switch {
			case it.Sequence != nil:
				p.single = append(p.single, templateItem{sequence: true})
			case it.SpecialToken != nil:
				sp, ok := c.Specials[it.SpecialToken.ID]
				if !ok {
					return nil, fmt.Errorf("%s.single[%d]: special token %q missing from special_tokens", path, i, it.SpecialToken.ID)
				}
				for _, id := range sp.IDs {
					if id < 0 {
						return nil, fmt.Errorf("%s.special_tokens[%q]: negative id %d", path, it.SpecialToken.ID, id)
					}
				}
				p.single = append(p.single, templateItem{ids: sp.IDs})
			default:
				return nil, fmt.Errorf("%s.single[%d]: want SpecialToken or Sequence", path, i)
			}
		}
		return p, nil
	case "BertProcessing", "RobertaProcessing":
		var c struct {
			Sep [2]json.RawMessage `json:"sep"`
			Cls [2]json.RawMessage `json:"cls"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		var cls, sep int
		if err := json.Unmarshal(c.Cls[1], &cls); err != nil || cls < 0 {
			return nil, fmt.Errorf("%s.cls: want [token, id]", path)
		}
		if err := json.Unmarshal(c.Sep[1], &sep); err != nil || sep < 0 {
			return nil, fmt.Errorf("%s.sep: want [token, id]", path)
		}
		return &wrapPost{cls: cls, sep: sep}, nil
	case "Sequence":
		var c struct {
			Processors []json.RawMessage `json:"processors"`
		}
		if err := decodeInto(raw, path, &c); err != nil {
			return nil, err
		}
		var q postSequence
		for i, r := range c.Processors {
			p, err := parsePost(r, fmt.Sprintf("%s.processors[%d]", path, i))
			if err != nil {
				return nil, err
			}
			q = append(q, p)
		}
		return q, nil
	}
	return nil, fmt.Errorf("%s: unsupported post_processor type %q", path, typ)
}

// modelJSON is the "model" object of a BPE tokenizer.json.
type modelJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	Vocab                   map[string]int  `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

// parseMerges reads merges written as "a b" strings or as ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err == nil {
		out := make([][2]string, 0, len(strs))
		for i, s := range strs {
			if strings.HasPrefix(s, "#version") {
				continue
			}
			a, b, ok := strings.Cut(s, " ")
			if !ok || strings.Contains(b, " ") {
				return nil, fmt.Errorf("model.merges[%d]: want \"a b\", got %q", i, s)
			}
			out = append(out, [2]string{a, b})
		}
		return out, nil
	}
	var pairs [][]string
	if err := json.Unmarshal(raw, &pairs); err != nil {
		return nil, fmt.Errorf("model.merges: want a list of \"a b\" strings or [a, b] pairs: %w", err)
	}
	out := make([][2]string, len(pairs))
	for i, p := range pairs {
		if len(p) != 2 {
			return nil, fmt.Errorf("model.merges[%d]: want a pair, got %d strings", i, len(p))
		}
		out[i] = [2]string{p[0], p[1]}
	}
	return out, nil
}

func parseModel(raw json.RawMessage) (*bpeModel, error) {
	if isNull(raw) {
		return nil, errors.New("model: missing")
	}
	var c modelJSON
	if err := decodeInto(raw, "model", &c); err != nil {
		return nil, err
	}
	if c.Type != "BPE" && !(c.Type == "" && c.Merges != nil) {
		return nil, fmt.Errorf("model: unsupported model type %q (only BPE is implemented)", c.Type)
	}
	if c.Vocab == nil {
		return nil, errors.New("model.vocab: missing")
	}
	merges, err := parseMerges(c.Merges)
	if err != nil {
		return nil, err
	}
	cfg := bpeConfig{vocab: c.Vocab, merges: merges, fuseUnk: c.FuseUnk,
		byteFallback: c.ByteFallback, ignoreMerges: c.IgnoreMerges}
	if c.UnkToken != nil {
		cfg.unk = *c.UnkToken
	}
	if c.ContinuingSubwordPrefix != nil {
		cfg.contPrefix = *c.ContinuingSubwordPrefix
	}
	if c.EndOfWordSuffix != nil {
		cfg.endSuffix = *c.EndOfWordSuffix
	}
	if c.Dropout != nil {
		cfg.dropout = *c.Dropout
	}
	m, err := newBPE(cfg)
	if err != nil {
		return nil, fmt.Errorf("model.%w", err)
	}
	return m, nil
}

// build assembles a tokenizer from a parsed tokenizer.json.
func build(f *tokenizerFile) (*Tokenizer, error) {
	t := &Tokenizer{file: f, bos: -1, eos: -1, pad: -1}
	var err error
	if t.model, err = parseModel(f.Model); err != nil {
		return nil, err
	}
	if !isNull(f.Normalizer) {
		if t.normalizer, err = parseNormalizer(f.Normalizer, "normalizer"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.PreTokenizer) {
		if t.pre, err = parsePreTokenizer(f.PreTokenizer, "pre_tokenizer", true); err != nil {
			return nil, err
		}
		if t.rawInput = defersByteLevel(f.PreTokenizer); t.rawInput {
			t.model.enableRawInput()
		}
		if bl, ok := t.pre.(*byteLevelPre); ok && !bl.addPrefixSpace && !bl.useRegex && !bl.mapNow {
			t.pre = nil
		}
	}
	if !isNull(f.PostProcessor) {
		if t.post, err = parsePost(f.PostProcessor, "post_processor"); err != nil {
			return nil, err
		}
	}
	if !isNull(f.Decoder) {
		if t.decoder, err = parseDecoder(f.Decoder, "decoder"); err != nil {
			return nil, err
		}
	}
	n := len(t.model.tokens)
	for i, at := range f.AddedTokens {
		if at.ID < 0 || at.ID >= 1<<31-1 {
			return nil, fmt.Errorf("added_tokens[%d]: id %d out of range", i, at.ID)
		}
		if at.Content == "" {
			return nil, fmt.Errorf("added_tokens[%d]: empty content", i)
		}
		if !utf8.ValidString(at.Content) {
			return nil, fmt.Errorf("added_tokens[%d]: content is not valid UTF-8", i)
		}
		n = max(n, at.ID+1)
	}
	t.tokens = make([]string, n)
	copy(t.tokens, t.model.tokens)
	t.special = make([]bool, n)
	specialText := map[string]bool{}
	t.ids = make(map[string]int, len(f.AddedTokens))
	for _, at := range f.AddedTokens {
		t.tokens[at.ID] = at.Content
		t.ids[at.Content] = at.ID
		if at.Special {
			specialText[at.Content] = true
		}
	}
	for id, tok := range t.tokens {
		t.special[id] = specialText[tok]
	}
	var normalize func(string) string
	if t.normalizer != nil {
		normalize = t.normalizer.normalize
	}
	t.added = newAddedVocab(f.AddedTokens, normalize)
	if t.post != nil {
		before, after := t.post.around()
		for _, id := range append(before, after...) {
			if id >= len(t.tokens) {
				return nil, fmt.Errorf("post_processor: special id %d beyond the vocabulary (%d)", id, len(t.tokens))
			}
		}
	}
	return t, nil
}
