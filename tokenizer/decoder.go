package tokenizer

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// decoder turns token strings back into text (the "decoder" of a
// tokenizer.json). Like the reference's decode_chain, each step maps a list
// of strings to a list of strings; the final list is concatenated.
type decoder interface {
	decodeChain(tokens []string) []string
}

// byteLevelDec maps byte-level characters back to bytes and reads the
// result as UTF-8, replacing ill-formed sequences by U+FFFD. A token with
// a character outside the byte table contributes its own UTF-8 bytes.
type byteLevelDec struct{}

func (byteLevelDec) decodeChain(tokens []string) []string {
	var buf []byte
	for _, t := range tokens {
		var ok bool
		if buf, ok = unByteLevel(buf, t); !ok {
			buf = append(buf, t...)
		}
	}
	return []string{string(appendLossy(nil, buf))}
}

// metaspaceDec turns "▁" back into spaces, dropping those of the first
// token unless the prepend scheme is "never".
type metaspaceDec struct {
	replacement rune
	scheme      prependScheme
}

func (d metaspaceDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = strings.Map(func(r rune) rune {
			if r != d.replacement {
				return r
			}
			if i == 0 && d.scheme != prependNever {
				return -1
			}
			return ' '
		}, t)
	}
	return out
}

// replaceDec substitutes content for the matches of a pattern in each token.
type replaceDec struct {
	m       matcher
	content string
}

func (d replaceDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = replaceAll(t, d.m, d.content)
	}
	return out
}

// byteFallbackDec turns runs of "<0xXX>" tokens into the text they spell;
// a run that is not valid UTF-8 becomes one U+FFFD per byte.
type byteFallbackDec struct{}

func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(t[3:5], 16, 8)
	return byte(v), err == nil
}

func (byteFallbackDec) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var pending []byte
	flush := func() {
		if len(pending) == 0 {
			return
		}
		if utf8.Valid(pending) {
			out = append(out, string(pending))
		} else {
			for range pending {
				out = append(out, "\uFFFD")
			}
		}
		pending = pending[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			pending = append(pending, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

// fuseDec joins all tokens into one.
type fuseDec struct{}

func (fuseDec) decodeChain(tokens []string) []string {
	return []string{strings.Join(tokens, "")}
}

// stripDec removes up to start leading and stop trailing copies of content
// from each token.
type stripDec struct {
	content     rune
	start, stop int
}

func (d stripDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rs := []rune(t)
		lo := 0
		for lo < d.start && lo < len(rs) && rs[lo] == d.content {
			lo++
		}
		hi := len(rs)
		for n := 0; n < d.stop && hi > lo && rs[hi-1] == d.content; n++ {
			hi--
		}
		out[i] = string(rs[lo:hi])
	}
	return out
}

// bpeSuffixDec is the BPEDecoder of suffix-marked vocabularies ("</w>"):
// the suffix becomes a space, except on the last token.
type bpeSuffixDec struct{ suffix string }

func (d bpeSuffixDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		rep := " "
		if i == len(tokens)-1 {
			rep = ""
		}
		out[i] = strings.ReplaceAll(t, d.suffix, rep)
	}
	return out
}

type decSequence []decoder

func (q decSequence) decodeChain(tokens []string) []string {
	for _, d := range q {
		tokens = d.decodeChain(tokens)
	}
	return tokens
}

// cleanUpTokenization is transformers' clean_up_tokenization: it removes
// the spaces that word-level tokenizers left before punctuation and
// English contractions. The replacements run one after another, as there.
func cleanUpTokenization(s string) string {
	for _, r := range cleanUpPairs {
		s = strings.ReplaceAll(s, r[0], r[1])
	}
	return s
}

var cleanUpPairs = [...][2]string{
	{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
	{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
}
