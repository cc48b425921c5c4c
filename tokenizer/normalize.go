package tokenizer

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites text before pre-tokenization (the "normalizer" of a
// tokenizer.json).
type normalizer interface {
	normalize(s string) string
}

type unicodeNorm struct{ form norm.Form }

func (n unicodeNorm) normalize(s string) string { return n.form.String(s) }

// lowercase is Rust's char::to_lowercase applied to each character, as
// the reference's Lowercase normalizer does: Unicode's full lower-case
// mapping, which differs from Go's per-rune mapping only for U+0130
// (İ → "i̇"). Having no context, it never yields the final sigma.
type lowercase struct{}

func (lowercase) normalize(s string) string {
	if !strings.ContainsRune(s, 0x130) {
		return strings.ToLower(s)
	}
	return strings.ToLower(strings.ReplaceAll(s, "\u0130", "i\u0307"))
}

// stripNorm trims whitespace (Unicode White_Space) from either end.
type stripNorm struct{ left, right bool }

func (n stripNorm) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// stripAccents removes combining marks (use after NFD).
type stripAccents struct{}

func (stripAccents) normalize(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsMark(r) {
			return -1
		}
		return r
	}, s)
}

// prepend puts a prefix before any non-empty text (SentencePiece's "▁").
type prepend struct{ prefix string }

func (n prepend) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prefix + s
}

// replace substitutes content for every match of a pattern.
type replace struct {
	m       matcher
	content string
}

func (n replace) normalize(s string) string { return replaceAll(s, n.m, n.content) }

func replaceAll(s string, m matcher, content string) string {
	if lm, ok := m.(literalMatcher); ok {
		return strings.ReplaceAll(s, lm.lit, content)
	}
	ms := m.appendMatches(nil, s)
	if len(ms) == 0 {
		return s
	}
	var b strings.Builder
	prev := 0
	for _, x := range ms {
		b.WriteString(s[prev:x.start])
		b.WriteString(content)
		prev = x.end
	}
	b.WriteString(s[prev:])
	return b.String()
}

type normSequence []normalizer

func (q normSequence) normalize(s string) string {
	for _, n := range q {
		s = n.normalize(s)
	}
	return s
}
