package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// piece is a fragment of text on its way to the model. first records
// whether it begins at offset 0 of the original text (Metaspace's
// prepend_scheme "first" adds "▁" only there).
type piece struct {
	s     string
	first bool
}

// preTokenizer splits a piece into the words the model sees (the
// "pre_tokenizer" of a tokenizer.json).
type preTokenizer interface {
	apply(dst []piece, p piece, sc *scratch) []piece
}

// splitPiece appends the sub-pieces of p given by spans.
func splitPiece(dst []piece, p piece, spans []span) []piece {
	for _, x := range spans {
		dst = append(dst, piece{p.s[x.start:x.end], p.first && x.start == 0})
	}
	return dst
}

// splitPre is the Split pre-tokenizer: a regex or string pattern with a
// delimiter behavior.
type splitPre struct {
	m        matcher
	behavior splitBehavior
	invert   bool
}

func (p *splitPre) apply(dst []piece, in piece, sc *scratch) []piece {
	spans := splitString(sc, in.s, p.m, p.behavior, p.invert)
	return splitPiece(dst, in, spans)
}

// byteLevelPre is GPT-2's ByteLevel pre-tokenizer: an optional leading
// space, an optional split by the GPT-2 regex, and the byte → character
// mapping of bytes.go. When it is the last step of the pipeline the mapping
// is left to the model (mapNow false), which reads raw bytes directly.
type byteLevelPre struct {
	addPrefixSpace bool
	useRegex       bool
	mapNow         bool
}

var gpt2Words = &wordPattern{gpt2: true}

func (p *byteLevelPre) apply(dst []piece, in piece, sc *scratch) []piece {
	if p.addPrefixSpace && !strings.HasPrefix(in.s, " ") {
		in.s = " " + in.s
	}
	start := len(dst)
	if p.useRegex {
		spans := splitString(sc, in.s, gpt2Words, splitIsolated, false)
		dst = splitPiece(dst, in, spans)
	} else if in.s != "" {
		dst = append(dst, in)
	}
	if p.mapNow {
		for i := start; i < len(dst); i++ {
			dst[i].s = byteLevelString(dst[i].s)
		}
	}
	return dst
}

// prependScheme says where Metaspace adds its replacement character.
type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

// metaspacePre is SentencePiece's Metaspace: spaces become "▁", a "▁" is
// prepended per the scheme, and (with split) each word keeps its "▁".
type metaspacePre struct {
	replacement rune
	scheme      prependScheme
	split       bool
}

func (p *metaspacePre) apply(dst []piece, in piece, sc *scratch) []piece {
	rep := string(p.replacement)
	s := strings.ReplaceAll(in.s, " ", rep)
	switch p.scheme {
	case prependAlways:
		if !strings.HasPrefix(s, rep) {
			s = rep + s
		}
	case prependFirst:
		if !strings.HasPrefix(s, rep) && in.first {
			s = rep + s
		}
	}
	in.s = s
	if !p.split {
		if s != "" {
			dst = append(dst, in)
		}
		return dst
	}
	r := p.replacement
	spans := splitString(sc, s, runeMatcher{func(c rune) bool { return c == r }}, splitMergedWithNext, false)
	return splitPiece(dst, in, spans)
}

// digitsPre isolates numbers: each digit alone, or runs of digits.
type digitsPre struct{ individual bool }

func (p *digitsPre) apply(dst []piece, in piece, sc *scratch) []piece {
	b := splitContiguous
	if p.individual {
		b = splitIsolated
	}
	spans := splitString(sc, in.s, runeMatcher{unicode.IsNumber}, b, false)
	return splitPiece(dst, in, spans)
}

// whitespaceSplitPre splits on whitespace, dropping it.
type whitespaceSplitPre struct{}

func (whitespaceSplitPre) apply(dst []piece, in piece, sc *scratch) []piece {
	spans := splitString(sc, in.s, runeMatcher{unicode.IsSpace}, splitRemoved, false)
	return splitPiece(dst, in, spans)
}

// whitespacePre keeps the matches of \w+|[^\w\s]+ (words and runs of
// punctuation), dropping whitespace.
type whitespacePre struct{}

type wordPunctMatcher struct{}

func (wordPunctMatcher) appendMatches(dst []span, s string) []span {
	kind := func(r rune) int {
		switch {
		case isWordRune(r):
			return 1
		case unicode.IsSpace(r):
			return 0
		}
		return 2
	}
	for i := 0; i < len(s); {
		r, w := utf8.DecodeRuneInString(s[i:])
		k := kind(r)
		if k == 0 {
			i += w
			continue
		}
		j := i + w
		for j < len(s) {
			r2, w2 := utf8.DecodeRuneInString(s[j:])
			if kind(r2) != k {
				break
			}
			j += w2
		}
		dst = append(dst, span{i, j})
		i = j
	}
	return dst
}

func (whitespacePre) apply(dst []piece, in piece, sc *scratch) []piece {
	spans := splitString(sc, in.s, wordPunctMatcher{}, splitRemoved, true)
	return splitPiece(dst, in, spans)
}

// preSequence applies its steps one after another.
type preSequence []preTokenizer

func (q preSequence) apply(dst []piece, in piece, sc *scratch) []piece {
	cur := []piece{in}
	var next []piece
	for _, step := range q {
		next = next[:0]
		for _, p := range cur {
			next = step.apply(next, p, sc)
		}
		cur, next = next, cur
	}
	return append(dst, cur...)
}
