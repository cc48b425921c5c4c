package gguf

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/gotune/gotune/checkpoints/gguf"
	"github.com/gotune/gotune/tokenizer"
)

// llama.cpp's token types (llama_token_type / gguf TokenType).
const (
	tokenNormal      int32 = 1
	tokenUnknown     int32 = 2
	tokenControl     int32 = 3
	tokenUserDefined int32 = 4
	tokenUnused      int32 = 5
	tokenByte        int32 = 6
)

// Tokenizer metadata keys (gguf-py's Keys.Tokenizer).
const (
	keyTokModel     = "tokenizer.ggml.model"
	keyTokPre       = "tokenizer.ggml.pre"
	keyTokens       = "tokenizer.ggml.tokens"
	keyTokScores    = "tokenizer.ggml.scores"
	keyTokTypes     = "tokenizer.ggml.token_type"
	keyTokMerges    = "tokenizer.ggml.merges"
	keyBOS          = "tokenizer.ggml.bos_token_id"
	keyEOS          = "tokenizer.ggml.eos_token_id"
	keyPAD          = "tokenizer.ggml.padding_token_id"
	keyUNK          = "tokenizer.ggml.unknown_token_id"
	keyAddBOS       = "tokenizer.ggml.add_bos_token"
	keyAddEOS       = "tokenizer.ggml.add_eos_token"
	keyAddSpace     = "tokenizer.ggml.add_space_prefix"
	keyChatTemplate = "tokenizer.chat_template"
)

// preNames maps byte-level pre-tokenizers to llama.cpp's tokenizer.ggml.pre.
// llama.cpp's "llama-bpe" applies Llama-3's regex and ignore_merges (a word
// that is a token is not merged); "dbrx" applies the same regex without it.
func preName(s tokenizer.Spec) (string, error) {
	switch {
	case s.Pre == tokenizer.PreLlama3 && s.IgnoreMerges:
		return "llama-bpe", nil
	case s.Pre == tokenizer.PreLlama3:
		return "dbrx", nil
	case s.Pre == tokenizer.PreQwen2 && !s.IgnoreMerges:
		return "qwen2", nil
	case s.Pre == tokenizer.PreGPT2 && !s.IgnoreMerges:
		return "gpt-2", nil
	}
	return "", fmt.Errorf("pre-tokenizer %s with ignore_merges %v has no llama.cpp equivalent", s.Pre, s.IgnoreMerges)
}

// TokenizerMetadata returns the tokenizer.* metadata of tok for a model of
// vocabSize embedding rows: "gpt2" (byte-level BPE: tokens, merges, token
// types and tokenizer.ggml.pre) or "llama" (SentencePiece-style BPE:
// tokens, scores and token types with <0xXX> byte tokens), the special
// token ids, the add-BOS/EOS flags and the chat template. The vocabulary is
// padded to vocabSize with unused "[PADn]" tokens, as llama.cpp's
// converter does, since llama.cpp takes the vocabulary size from it.
func TokenizerMetadata(tok *tokenizer.Tokenizer, vocabSize int) ([]gguf.KV, error) {
	s, err := tok.Spec()
	if err != nil {
		return nil, err
	}
	if len(s.Tokens) > vocabSize {
		return nil, fmt.Errorf("the tokenizer has %d tokens, more than the model's vocab_size %d", len(s.Tokens), vocabSize)
	}
	added := map[int]tokenizer.AddedToken{}
	for _, a := range s.Added {
		added[a.ID] = a
	}
	tokens := make([]string, vocabSize)
	types := make([]int32, vocabSize)
	for id := range tokens {
		t := ""
		if id < len(s.Tokens) {
			t = s.Tokens[id]
		}
		a, isAdded := added[id]
		switch {
		case t == "":
			tokens[id], types[id] = fmt.Sprintf("[PAD%d]", id), tokenUnused
		case s.Kind == tokenizer.KindSentencePiece && t == s.Unknown:
			tokens[id], types[id] = t, tokenUnknown
		case isAdded && a.Special:
			tokens[id], types[id] = t, tokenControl
		case isAdded:
			tokens[id], types[id] = t, tokenUserDefined
		case s.Kind == tokenizer.KindSentencePiece && isByteToken(t):
			tokens[id], types[id] = t, tokenByte
		default:
			tokens[id], types[id] = t, tokenNormal
		}
	}
	var kv []gguf.KV
	switch s.Kind {
	case tokenizer.KindByteLevel:
		pre, err := preName(s)
		if err != nil {
			return nil, err
		}
		merges := make([]string, len(s.Merges))
		for i, m := range s.Merges {
			merges[i] = m[0] + " " + m[1]
		}
		kv = append(kv,
			gguf.KV{Key: keyTokModel, Value: "gpt2"},
			gguf.KV{Key: keyTokPre, Value: pre},
			gguf.KV{Key: keyTokens, Value: tokens},
			gguf.KV{Key: keyTokTypes, Value: types},
			gguf.KV{Key: keyTokMerges, Value: merges})
	case tokenizer.KindSentencePiece:
		// llama.cpp's SentencePiece tokenizer merges the adjacent pair whose
		// result has the highest score; a token's score here is minus the
		// rank of the first merge that makes it, so that the order is the
		// merges' order (sentencepiece's own scores are ordered the same
		// way).
		scores := make([]float32, vocabSize)
		rank := map[string]int{}
		for r, m := range s.Merges {
			if _, ok := rank[m[0]+m[1]]; !ok {
				rank[m[0]+m[1]] = r
			}
		}
		for id, t := range tokens {
			if r, ok := rank[t]; ok && types[id] == tokenNormal {
				scores[id] = -float32(r)
			} else {
				scores[id] = -1e9
			}
		}
		kv = append(kv,
			gguf.KV{Key: keyTokModel, Value: "llama"},
			gguf.KV{Key: keyTokPre, Value: "default"},
			gguf.KV{Key: keyTokens, Value: tokens},
			gguf.KV{Key: keyTokScores, Value: scores},
			gguf.KV{Key: keyTokTypes, Value: types},
			gguf.KV{Key: keyAddSpace, Value: true})
		if id, ok := tok.TokenID(s.Unknown); ok && s.Unknown != "" {
			kv = append(kv, gguf.KV{Key: keyUNK, Value: uint32(id)})
		}
	}
	for _, p := range []struct {
		key string
		id  int
	}{{keyBOS, s.BOS}, {keyEOS, s.EOS}, {keyPAD, s.PAD}} {
		if p.id >= 0 {
			kv = append(kv, gguf.KV{Key: p.key, Value: uint32(p.id)})
		}
	}
	kv = append(kv, gguf.KV{Key: keyAddBOS, Value: s.AddBOS}, gguf.KV{Key: keyAddEOS, Value: s.AddEOS})
	if s.ChatTemplate != "" {
		kv = append(kv, gguf.KV{Key: keyChatTemplate, Value: s.ChatTemplate})
	}
	return kv, nil
}

// isByteToken matches SentencePiece's byte-fallback tokens "<0xXX>".
func isByteToken(t string) bool {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return false
	}
	for _, c := range t[3:5] {
		if !strings.ContainsRune("0123456789ABCDEF", c) {
			return false
		}
	}
	return true
}

// LoadTokenizer rebuilds the tokenizer a GGUF file describes in its
// tokenizer.* metadata.
func LoadTokenizer(f *gguf.File) (*tokenizer.Tokenizer, error) {
	s, err := tokenizerSpec(f)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.FromSpec(s)
	if err != nil {
		return nil, fmt.Errorf("tokenizer metadata: %w", err)
	}
	return tok, nil
}

func stringsValue(f *gguf.File, key string) ([]string, error) {
	v, ok := f.Get(key)
	if !ok {
		return nil, fmt.Errorf("metadata %s is missing", key)
	}
	s, ok := v.([]string)
	if !ok {
		return nil, fmt.Errorf("metadata %s: want an array of strings, got %T", key, v)
	}
	return s, nil
}

func tokenizerSpec(f *gguf.File) (tokenizer.Spec, error) {
	var s tokenizer.Spec
	kind, err := f.String(keyTokModel)
	if err != nil {
		return s, err
	}
	tokens, err := stringsValue(f, keyTokens)
	if err != nil {
		return s, err
	}
	types := make([]int32, len(tokens))
	for i := range types {
		types[i] = tokenNormal
	}
	if v, ok := f.Get(keyTokTypes); ok {
		t, ok := v.([]int32)
		if !ok || len(t) != len(tokens) {
			return s, fmt.Errorf("metadata %s: want %d i32 values, got %T of length %d", keyTokTypes, len(tokens), v, lenOf(v))
		}
		types = t
	}
	s.Tokens = make([]string, len(tokens))
	for id, t := range tokens {
		switch types[id] {
		case tokenUnused:
			continue // a hole in the vocabulary (padding)
		case tokenControl, tokenUserDefined, tokenUnknown:
			s.Added = append(s.Added, tokenizer.AddedToken{ID: id, Content: t, Special: types[id] != tokenUserDefined})
		case tokenNormal, tokenByte:
		default:
			return s, fmt.Errorf("metadata %s[%d]: token type %d is not known", keyTokTypes, id, types[id])
		}
		s.Tokens[id] = t
	}
	id := func(key string) (int, error) {
		v, err := f.Int(key)
		if gguf.IsMissing(err) {
			return -1, nil
		}
		if err != nil {
			return 0, err
		}
		if v < 0 || v >= int64(len(tokens)) {
			return 0, fmt.Errorf("metadata %s: id %d is outside the vocabulary (%d tokens)", key, v, len(tokens))
		}
		return int(v), nil
	}
	if s.BOS, err = id(keyBOS); err != nil {
		return s, err
	}
	if s.EOS, err = id(keyEOS); err != nil {
		return s, err
	}
	if s.PAD, err = id(keyPAD); err != nil {
		return s, err
	}
	flag := func(key string, def bool) (bool, error) {
		b, err := f.Bool(key)
		if gguf.IsMissing(err) {
			return def, nil
		}
		return b, err
	}
	if s.ChatTemplate, err = f.String(keyChatTemplate); err != nil && !gguf.IsMissing(err) {
		return s, err
	}
	switch kind {
	case "gpt2":
		s.Kind = tokenizer.KindByteLevel
		pre, err := f.String(keyTokPre)
		if err != nil {
			return s, err
		}
		switch pre {
		case "llama-bpe", "llama3", "llama-v3":
			s.Pre, s.IgnoreMerges = tokenizer.PreLlama3, true
		case "dbrx", "smaug-bpe":
			s.Pre = tokenizer.PreLlama3
		case "qwen2", "deepseek-r1-qwen":
			// Hugging Face's Qwen2 tokenizer NFC-normalizes the text first.
			s.Pre, s.NFC = tokenizer.PreQwen2, true
		case "gpt-2", "gpt2":
			s.Pre = tokenizer.PreGPT2
		default:
			return s, fmt.Errorf("metadata %s: pre-tokenizer %q is not implemented (implemented: llama-bpe, dbrx, qwen2, gpt-2)", keyTokPre, pre)
		}
		merges, err := stringsValue(f, keyTokMerges)
		if err != nil {
			return s, err
		}
		s.Merges = make([][2]string, len(merges))
		for i, m := range merges {
			a, b, ok := strings.Cut(m, " ")
			if !ok || strings.Contains(b, " ") {
				return s, fmt.Errorf("metadata %s[%d]: want \"a b\", got %q", keyTokMerges, i, m)
			}
			s.Merges[i] = [2]string{a, b}
		}
		def := pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3"
		if s.AddBOS, err = flag(keyAddBOS, def); err != nil {
			return s, err
		}
	case "llama":
		s.Kind = tokenizer.KindSentencePiece
		if addSpace, err := flag(keyAddSpace, true); err != nil || !addSpace {
			return s, fmt.Errorf("metadata %s: only true is implemented (err %v)", keyAddSpace, err)
		}
		v, ok := f.Get(keyTokScores)
		scores, isF32 := v.([]float32)
		if !ok || !isF32 || len(scores) != len(tokens) {
			return s, fmt.Errorf("metadata %s: want %d f32 values, got %T of length %d", keyTokScores, len(tokens), v, lenOf(v))
		}
		s.Merges = sentencePieceMerges(tokens, types, scores)
		unk, err := id(keyUNK)
		if err != nil {
			return s, err
		}
		if unk >= 0 {
			s.Unknown = tokens[unk]
		}
		if s.AddBOS, err = flag(keyAddBOS, true); err != nil {
			return s, err
		}
	default:
		return s, fmt.Errorf("metadata %s: tokenizer model %q is not implemented (want gpt2 or llama)", keyTokModel, kind)
	}
	if s.AddEOS, err = flag(keyAddEOS, false); err != nil {
		return s, err
	}
	return s, nil
}

// sentencePieceMerges derives BPE merges from a SentencePiece vocabulary
// as transformers' SentencePieceExtractor does: every split of a normal
// token into two vocabulary pieces is a merge, ordered by the token's score
// (highest first; ties in id order), and the splits of one token by the
// ids of their pieces.
func sentencePieceMerges(tokens []string, types []int32, scores []float32) [][2]string {
	ids := map[string]int{}
	for id, t := range tokens {
		if types[id] != tokenUnused {
			if _, dup := ids[t]; !dup {
				ids[t] = id
			}
		}
	}
	type merge struct {
		l, r  string
		score float32
	}
	var all []merge
	for id, t := range tokens {
		if types[id] != tokenNormal {
			continue
		}
		var local []merge
		for k := range t {
			if k == 0 {
				continue
			}
			l, r := t[:k], t[k:]
			if !utf8.ValidString(l) {
				continue
			}
			if _, ok := ids[l]; !ok {
				continue
			}
			if _, ok := ids[r]; !ok {
				continue
			}
			local = append(local, merge{l, r, scores[id]})
		}
		slices.SortStableFunc(local, func(a, b merge) int {
			return cmp.Or(cmp.Compare(ids[a.l], ids[b.l]), cmp.Compare(ids[a.r], ids[b.r]))
		})
		all = append(all, local...)
	}
	slices.SortStableFunc(all, func(a, b merge) int { return cmp.Compare(b.score, a.score) })
	out := make([][2]string, len(all))
	for i, m := range all {
		out[i] = [2]string{m.l, m.r}
	}
	return out
}

func lenOf(v any) int {
	switch x := v.(type) {
	case []string:
		return len(x)
	case []int32:
		return len(x)
	case []float32:
		return len(x)
	}
	return 0
}
