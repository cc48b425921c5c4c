package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kinds of BPE pipeline a Spec describes.
const (
	// KindByteLevel is byte-level BPE (GPT-2, Llama-3, Qwen2): text is
	// split by a regex, each word's bytes mapped to printable characters
	// and merged; decoding maps them back.
	KindByteLevel = "byte-level"
	// KindSentencePiece is SentencePiece-style BPE (Llama-2, Mistral):
	// spaces become "▁" with one prepended, no pre-tokenizer, and bytes
	// missing from the vocabulary fall back to <0xXX> tokens.
	KindSentencePiece = "sentencepiece"
)

// Pre-tokenizer regexes of byte-level BPE, by the names file formats give
// them (llama.cpp's tokenizer.ggml.pre).
const (
	PreGPT2   = "gpt2"   // GPT-2's regex
	PreLlama3 = "llama3" // Llama-3's regex (digits in runs of up to three)
	PreQwen2  = "qwen2"  // Qwen2's regex (single digits)
)

// Spec is a tokenizer in the terms another file format stores it (GGUF's
// tokenizer.ggml.* metadata): the vocabulary, the merges by rank, the
// added tokens, the pre-tokenizer by name, the special tokens and whether
// encoding adds BOS or EOS. Spec and FromSpec convert a tokenizer to it and
// back; a tokenizer whose pipeline has no such description is refused by
// Spec rather than described wrongly.
type Spec struct {
	Kind         string
	Pre          string      // byte-level only: PreGPT2, PreLlama3 or PreQwen2
	NFC          bool        // byte-level only: text is NFC-normalized first (Qwen2)
	IgnoreMerges bool        // a word that is a token is not merged (Llama-3)
	Tokens       []string    // id → token in the vocabulary's alphabet ("" where none)
	Merges       [][2]string // by rank
	Added        []AddedToken
	Unknown      string // the unknown token (SentencePiece), "" for none
	BOS, EOS     int    // -1 when none
	PAD          int    // -1 when none
	AddBOS       bool
	AddEOS       bool
	ChatTemplate string
}

var (
	sentencePieceNormalizer = `{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]}`
	sentencePieceDecoder    = `{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]}`
	byteLevelDecoder        = `{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true}`
	preRegex                = map[string]string{PreGPT2: patternGPT2, PreLlama3: patternLlama3, PreQwen2: patternQwen2}
)

// jsonEqual compares two JSON documents by value.
func jsonEqual(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	ra, _ := json.Marshal(x)
	rb, _ := json.Marshal(y)
	return bytes.Equal(ra, rb)
}

// preName names the byte-level pre-tokenizer of a tokenizer.json: a Split
// on one of the known regexes followed by ByteLevel without its own regex,
// or ByteLevel with the GPT-2 regex.
func preName(raw json.RawMessage) (string, error) {
	var p struct {
		Type          string            `json:"type"`
		UseRegex      *bool             `json:"use_regex"`
		AddPrefix     bool              `json:"add_prefix_space"`
		Pretokenizers []json.RawMessage `json:"pretokenizers"`
		Pattern       struct {
			Regex string `json:"Regex"`
		} `json:"pattern"`
		Behavior string `json:"behavior"`
		Invert   bool   `json:"invert"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", err
	}
	switch p.Type {
	case "ByteLevel":
		if p.UseRegex != nil && *p.UseRegex && !p.AddPrefix {
			return PreGPT2, nil
		}
	case "Sequence":
		if len(p.Pretokenizers) != 2 {
			break
		}
		var split, bl struct {
			Type     string `json:"type"`
			UseRegex bool   `json:"use_regex"`
			Add      bool   `json:"add_prefix_space"`
			Pattern  struct {
				Regex string `json:"Regex"`
			} `json:"pattern"`
			Behavior string `json:"behavior"`
			Invert   bool   `json:"invert"`
		}
		if json.Unmarshal(p.Pretokenizers[0], &split) != nil || json.Unmarshal(p.Pretokenizers[1], &bl) != nil {
			break
		}
		if split.Type != "Split" || split.Behavior != "Isolated" || split.Invert || bl.Type != "ByteLevel" || bl.UseRegex || bl.Add {
			break
		}
		for name, re := range preRegex {
			if split.Pattern.Regex == re {
				return name, nil
			}
		}
	}
	return "", fmt.Errorf("pre_tokenizer %s has no name in the known set (GPT-2, Llama-3 or Qwen2 regex with ByteLevel)", raw)
}

// Spec describes the tokenizer (see Spec). It fails for a pipeline that is
// neither byte-level BPE with a known regex nor SentencePiece-style BPE.
func (t *Tokenizer) Spec() (Spec, error) {
	f := t.file
	if f == nil {
		return Spec{}, errors.New("tokenizer has no tokenizer.json to describe")
	}
	var m modelJSON
	if err := json.Unmarshal(f.Model, &m); err != nil {
		return Spec{}, fmt.Errorf("model: %w", err)
	}
	merges, err := parseMerges(m.Merges)
	if err != nil {
		return Spec{}, err
	}
	if m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "" || m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "" {
		return Spec{}, errors.New("model: continuing_subword_prefix and end_of_word_suffix have no description")
	}
	s := Spec{Tokens: append([]string(nil), t.tokens...), Merges: merges, Added: append([]AddedToken(nil), f.AddedTokens...),
		BOS: t.bos, EOS: t.eos, PAD: t.pad, ChatTemplate: t.ChatTemplate, IgnoreMerges: m.IgnoreMerges}
	if m.UnkToken != nil {
		s.Unknown = *m.UnkToken
	}
	switch {
	case isNull(f.Normalizer) && !isNull(f.PreTokenizer) && !m.ByteFallback:
		s.Kind = KindByteLevel
	case jsonEqual(f.Normalizer, `{"type":"NFC"}`) && !isNull(f.PreTokenizer) && !m.ByteFallback:
		s.Kind, s.NFC = KindByteLevel, true
	case jsonEqual(f.Normalizer, sentencePieceNormalizer) && isNull(f.PreTokenizer) && m.ByteFallback:
		s.Kind = KindSentencePiece
	default:
		return Spec{}, errors.New("the tokenizer is neither byte-level BPE nor SentencePiece-style BPE with byte fallback")
	}
	if s.Kind == KindByteLevel {
		if s.Pre, err = preName(f.PreTokenizer); err != nil {
			return Spec{}, err
		}
	}
	// What encoding adds around the text: the post-processor's template.
	probe := t.Encode("a", false)
	full := t.Encode("a", true)
	for i := 0; i+len(probe) <= len(full); i++ {
		if equalInts(full[i:i+len(probe)], probe) {
			s.AddBOS = i > 0 && full[0] == t.bos
			s.AddEOS = i+len(probe) < len(full) && full[len(full)-1] == t.eos
			break
		}
	}
	return s, nil
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FromSpec builds the tokenizer a Spec describes, as the tokenizer.json
// and tokenizer_config.json Hugging Face would hold for it.
func FromSpec(s Spec) (*Tokenizer, error) {
	vocab := map[string]int{}
	for id, tok := range s.Tokens {
		if tok == "" {
			continue
		}
		if _, dup := vocab[tok]; dup {
			return nil, fmt.Errorf("token %d %q appears twice in the vocabulary", id, tok)
		}
		vocab[tok] = id
	}
	merges := make([]string, len(s.Merges))
	for i, m := range s.Merges {
		merges[i] = m[0] + " " + m[1]
	}
	model := map[string]any{"type": "BPE", "dropout": nil, "continuing_subword_prefix": nil, "end_of_word_suffix": nil,
		"fuse_unk": false, "byte_fallback": false, "ignore_merges": s.IgnoreMerges, "vocab": vocab, "merges": merges, "unk_token": nil}
	if s.Unknown != "" {
		model["unk_token"] = s.Unknown
	}
	file := map[string]any{"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": s.Added}
	switch s.Kind {
	case KindByteLevel:
		re, ok := preRegex[s.Pre]
		if !ok {
			return nil, fmt.Errorf("byte-level pre-tokenizer %q is not known (want %s, %s or %s)", s.Pre, PreGPT2, PreLlama3, PreQwen2)
		}
		file["normalizer"] = nil
		if s.NFC {
			file["normalizer"] = json.RawMessage(`{"type":"NFC"}`)
		}
		if s.Pre == PreGPT2 {
			file["pre_tokenizer"] = json.RawMessage(`{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true}`)
		} else {
			file["pre_tokenizer"] = json.RawMessage(`{"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":` + jsonString(re) +
				`},"behavior":"Isolated","invert":false},{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]}`)
		}
		file["decoder"] = json.RawMessage(byteLevelDecoder)
	case KindSentencePiece:
		model["byte_fallback"], model["fuse_unk"] = true, true
		file["normalizer"] = json.RawMessage(sentencePieceNormalizer)
		file["pre_tokenizer"] = nil
		file["decoder"] = json.RawMessage(sentencePieceDecoder)
	default:
		return nil, fmt.Errorf("tokenizer kind %q is not known (want %s or %s)", s.Kind, KindByteLevel, KindSentencePiece)
	}
	file["model"] = model
	tok := func(id int) (string, error) {
		if id < 0 {
			return "", nil
		}
		if id >= len(s.Tokens) || s.Tokens[id] == "" {
			return "", fmt.Errorf("special token id %d is not in the vocabulary (%d tokens)", id, len(s.Tokens))
		}
		return s.Tokens[id], nil
	}
	bos, err := tok(s.BOS)
	if err != nil {
		return nil, fmt.Errorf("bos: %w", err)
	}
	eos, err := tok(s.EOS)
	if err != nil {
		return nil, fmt.Errorf("eos: %w", err)
	}
	pad, err := tok(s.PAD)
	if err != nil {
		return nil, fmt.Errorf("pad: %w", err)
	}
	var single []any
	special := map[string]any{}
	if s.AddBOS && bos != "" {
		single = append(single, map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}})
		special[bos] = map[string]any{"id": bos, "ids": []int{s.BOS}, "tokens": []string{bos}}
	}
	single = append(single, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}})
	if s.AddEOS && eos != "" {
		single = append(single, map[string]any{"SpecialToken": map[string]any{"id": eos, "type_id": 0}})
		special[eos] = map[string]any{"id": eos, "ids": []int{s.EOS}, "tokens": []string{eos}}
	}
	file["post_processor"] = map[string]any{"type": "TemplateProcessing", "single": single, "pair": single, "special_tokens": special}
	nullable := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	config := map[string]any{"bos_token": nullable(bos), "eos_token": nullable(eos), "pad_token": nullable(pad),
		"add_bos_token": s.AddBOS, "add_eos_token": s.AddEOS, "clean_up_tokenization_spaces": false}
	if s.ChatTemplate != "" {
		config["chat_template"] = s.ChatTemplate
	}
	tj, err := marshalIndent(file)
	if err != nil {
		return nil, err
	}
	cj, err := marshalIndent(config)
	if err != nil {
		return nil, err
	}
	return Parse(tj, cj)
}
