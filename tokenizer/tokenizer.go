package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// Tokenizer turns text into token ids and back, exactly as the Hugging Face
// tokenizer described by its tokenizer.json does. It is safe for concurrent
// use.
type Tokenizer struct {
	normalizer normalizer
	pre        preTokenizer
	rawInput   bool // the model reads raw bytes (deferred ByteLevel mapping)
	model      *bpeModel
	post       postProcessor
	decoder    decoder
	added      *addedVocab

	tokens  []string       // id → token (model and added tokens)
	ids     map[string]int // added tokens by content (model tokens are in model.vocab)
	special []bool         // id → is a special token

	bos, eos, pad int

	// CleanUpSpaces applies transformers' clean_up_tokenization to decoded
	// text (set from tokenizer_config.json's clean_up_tokenization_spaces).
	CleanUpSpaces bool
	// ChatTemplate is the Jinja chat template of tokenizer_config.json, if any.
	ChatTemplate string

	loadedTemplate string // the chat template as read, to tell if it changed

	file   *tokenizerFile // the tokenizer.json this was built from
	raw    []byte         // its bytes, when read from a file
	config map[string]any // tokenizer_config.json, when given
}

// VocabSize is the number of token ids, added tokens included (one more
// than the largest id).
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenID returns the id of a token string (an added token's content, or a
// model token in the vocabulary's own alphabet, e.g. "Ġthe").
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	if id, ok := t.ids[tok]; ok {
		return id, true
	}
	id, ok := t.model.vocab[tok]
	return id, ok
}

// Token returns the string of a token id.
func (t *Tokenizer) Token(id int) (string, bool) {
	if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
		return "", false
	}
	return t.tokens[id], true
}

// IsSpecial reports whether id is a special token.
func (t *Tokenizer) IsSpecial(id int) bool {
	return id >= 0 && id < len(t.special) && t.special[id]
}

// BOS is the beginning-of-sequence id, or -1 when there is none.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS is the end-of-sequence id, or -1 when there is none.
func (t *Tokenizer) EOS() int { return t.eos }

// PAD is the padding id: the pad token, else EOS, else 0.
func (t *Tokenizer) PAD() int {
	switch {
	case t.pad >= 0:
		return t.pad
	case t.eos >= 0:
		return t.eos
	}
	return 0
}

// encodeState holds the buffers of one Encode call.
type encodeState struct {
	splits, subSplits []addedSplit
	pieces            []piece
	sc                scratch
}

var statePool = sync.Pool{New: func() any { return new(encodeState) }}

// Encode returns the token ids of text; with addSpecial the post-processor
// adds the model's special tokens (e.g. BOS). Added tokens written in the
// text (such as "<|im_start|>") are recognised. Text that is not valid
// UTF-8 is read with each ill-formed sequence replaced by U+FFFD, as a
// Python caller decoding bytes with errors="replace" would see it.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	if !utf8.ValidString(text) {
		text = string(appendLossy(nil, []byte(text)))
	}
	st := statePool.Get().(*encodeState)
	ids := make([]int, 0, len(text)/3+2)
	st.splits = t.added.find(st.splits[:0], text, t.added.raw)
	for _, sp := range st.splits {
		if sp.token >= 0 {
			ids = append(ids, t.added.tokens[sp.token].ID)
			continue
		}
		seg := text[sp.start:sp.end]
		if t.normalizer != nil {
			seg = t.normalizer.normalize(seg)
		}
		if t.added.normTrie == nil {
			ids = t.encodeSegment(ids, piece{seg, sp.start == 0}, st)
			continue
		}
		st.subSplits = t.added.find(st.subSplits[:0], seg, t.added.normTrie)
		for _, sub := range st.subSplits {
			if sub.token >= 0 {
				ids = append(ids, t.added.tokens[sub.token].ID)
				continue
			}
			ids = t.encodeSegment(ids, piece{seg[sub.start:sub.end], sp.start == 0 && sub.start == 0}, st)
		}
	}
	clear(st.pieces[:cap(st.pieces)]) // drop references into text
	statePool.Put(st)
	if t.post != nil {
		ids = t.post.process(ids, addSpecial)
	}
	return ids
}

// encodeSegment pre-tokenizes a normalized segment and runs the model on
// each word.
func (t *Tokenizer) encodeSegment(ids []int, p piece, st *encodeState) []int {
	if p.s == "" {
		return ids
	}
	if t.pre == nil {
		return t.model.tokenize(ids, p.s, t.rawInput)
	}
	st.pieces = t.pre.apply(st.pieces[:0], p, &st.sc)
	for _, q := range st.pieces {
		ids = t.model.tokenize(ids, q.s, t.rawInput)
	}
	return ids
}

// Decode returns the text of ids, optionally leaving out special tokens.
// Unknown ids are skipped. As in transformers, the clean-up of spaces
// before punctuation is applied when CleanUpSpaces is set.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(t.tokens) || t.tokens[id] == "" {
			continue
		}
		if skipSpecial && t.special[id] {
			continue
		}
		toks = append(toks, t.tokens[id])
	}
	var s string
	if t.decoder == nil {
		s = strings.Join(toks, " ")
	} else {
		s = strings.Join(t.decoder.decodeChain(toks), "")
	}
	if t.CleanUpSpaces {
		s = cleanUpTokenization(s)
	}
	return s
}

// applyConfig reads the tokenizer_config.json fields the tokenizer uses.
func (t *Tokenizer) applyConfig(data []byte) error {
	var cfg map[string]any
	if err := strictUnmarshal(data, &cfg); err != nil {
		return err
	}
	if cfg == nil {
		return fmt.Errorf("want a JSON object")
	}
	t.config = cfg
	if v, ok := cfg["clean_up_tokenization_spaces"]; ok {
		b, isBool := v.(bool)
		if !isBool && v != nil {
			return fmt.Errorf("clean_up_tokenization_spaces: want a boolean, got %v", v)
		}
		t.CleanUpSpaces = b
	}
	switch ct := cfg["chat_template"].(type) {
	case nil:
	case string:
		t.ChatTemplate = ct
	case []any:
		// A list of named templates: take "default", else the first.
		for i, x := range ct {
			m, _ := x.(map[string]any)
			name, _ := m["name"].(string)
			tmpl, ok := m["template"].(string)
			if !ok {
				return fmt.Errorf("chat_template[%d]: want {\"name\": ..., \"template\": ...}", i)
			}
			if name == "default" || t.ChatTemplate == "" {
				t.ChatTemplate = tmpl
			}
		}
	default:
		return fmt.Errorf("chat_template: want a string or a list, got %T", ct)
	}
	t.loadedTemplate = t.ChatTemplate
	for _, key := range []string{"bos_token", "eos_token", "pad_token", "unk_token"} {
		if _, err := configToken(cfg, key); err != nil {
			return err
		}
	}
	return nil
}

// configToken reads a special token of tokenizer_config.json, written as a
// string, null, or an AddedToken object with a "content" field.
func configToken(cfg map[string]any, key string) (string, error) {
	switch v := cfg[key].(type) {
	case nil:
		return "", nil
	case string:
		return v, nil
	case map[string]any:
		if c, ok := v["content"].(string); ok {
			return c, nil
		}
	}
	return "", fmt.Errorf("%s: want a string, null or {\"content\": ...}", key)
}

// resolveSpecials finds BOS, EOS and PAD: from tokenizer_config.json when
// it names them, else from the post-processor's template (the special
// token before the sequence is BOS, the one after is EOS).
func (t *Tokenizer) resolveSpecials() {
	t.bos, t.eos, t.pad = -1, -1, -1
	lookup := func(key string) (int, bool) {
		if t.config == nil {
			return -1, false
		}
		if _, present := t.config[key]; !present {
			return -1, false
		}
		s, _ := configToken(t.config, key)
		if s == "" {
			return -1, true // explicitly none
		}
		id, ok := t.TokenID(s)
		if !ok {
			return -1, false
		}
		return id, true
	}
	var before, after []int
	if t.post != nil {
		before, after = t.post.around()
	}
	if id, ok := lookup("bos_token"); ok {
		t.bos = id
	} else if len(before) > 0 {
		t.bos = before[0]
	}
	if id, ok := lookup("eos_token"); ok {
		t.eos = id
	} else if len(after) > 0 {
		t.eos = after[len(after)-1]
	}
	if id, ok := lookup("pad_token"); ok {
		t.pad = id
	}
}

// SetSpecialTokens names the BOS, EOS and PAD tokens ("" for none); each
// must be a token of the vocabulary. Save records them in
// tokenizer_config.json.
func (t *Tokenizer) SetSpecialTokens(bos, eos, pad string) error {
	ids := [3]int{-1, -1, -1}
	for i, s := range [3]string{bos, eos, pad} {
		if s == "" {
			continue
		}
		id, ok := t.TokenID(s)
		if !ok {
			return fmt.Errorf("special token %q is not in the vocabulary", s)
		}
		ids[i] = id
	}
	if t.config == nil {
		t.config = map[string]any{}
	}
	for i, key := range [3]string{"bos_token", "eos_token", "pad_token"} {
		if s := [3]string{bos, eos, pad}[i]; s != "" {
			t.config[key] = s
		} else {
			t.config[key] = nil
		}
	}
	t.bos, t.eos, t.pad = ids[0], ids[1], ids[2]
	return nil
}

// String describes the tokenizer briefly.
func (t *Tokenizer) String() string {
	return fmt.Sprintf("Tokenizer(vocab=%d, bos=%d, eos=%d, pad=%d)", t.VocabSize(), t.bos, t.eos, t.PAD())
}

// jsonString marshals s without HTML escaping.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
