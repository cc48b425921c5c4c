package tokenizer

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dlclark/regexp2/v2"
)

// span is a half-open byte range [start, end) of a string.
type span struct{ start, end int }

// matcher finds the non-overlapping, non-empty matches of a pattern in s,
// scanning left to right as Oniguruma's find_iter does.
type matcher interface {
	appendMatches(dst []span, s string) []span
}

// The pre-tokenization regexes of the GPT-2, Llama-3 (cl100k) and Qwen2
// tokenizers. They use a negative look-ahead, which Go's regexp lacks, and
// they sit on the hot path of every encode, so they are matched by hand
// (wordPattern) rather than by a general engine; any other regex goes to a
// backtracking engine (regexp2) with the same leftmost-first semantics.
const (
	patternGPT2   = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
	patternLlama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	patternQwen2  = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
)

// compileRegex returns a matcher for an Oniguruma-style regex from a
// tokenizer.json.
func compileRegex(pattern string) (matcher, error) {
	switch pattern {
	case patternGPT2:
		return &wordPattern{gpt2: true}, nil
	case patternLlama3:
		return &wordPattern{maxDigits: 3, foldCase: true}, nil
	case patternQwen2:
		return &wordPattern{maxDigits: 1, foldCase: true}, nil
	}
	re, err := regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", pattern, err)
	}
	return &regexp2Matcher{re: re}, nil
}

// Character classes of the patterns above: \p{L}, \p{N}, \s and [\r\n].
// \s is Unicode White_Space, as in Oniguruma and Rust (unicode.IsSpace).
const (
	clLetter uint8 = 1 << iota
	clNumber
	clSpace
	clNewline
)

var asciiClass [utf8.RuneSelf]uint8

func init() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		asciiClass[r] = slowClass(r)
	}
}

func slowClass(r rune) uint8 {
	var c uint8
	if unicode.IsLetter(r) {
		c |= clLetter
	}
	if unicode.IsNumber(r) {
		c |= clNumber
	}
	if unicode.IsSpace(r) {
		c |= clSpace
	}
	if r == '\r' || r == '\n' {
		c |= clNewline
	}
	return c
}

// runeAt decodes the rune at byte i of s with its class; an invalid byte
// reads as U+FFFD of width 1, which is of no class.
func runeAt(s string, i int) (rune, int, uint8) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1, asciiClass[c]
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w == 1 {
		return r, 1, 0
	}
	return r, w, slowClass(r)
}

// wordPattern matches the GPT-2 pattern (gpt2) or the Llama-3/Qwen2 pattern
// with at most maxDigits digits per number, by hand. Each branch below is
// one alternative of the regex, tried in order; the first that matches wins.
type wordPattern struct {
	gpt2      bool
	maxDigits int  // \p{N}{1,maxDigits} (Llama-3/Qwen2 form)
	foldCase  bool // (?i:...) around the contractions
}

func (p *wordPattern) appendMatches(dst []span, s string) []span {
	for i := 0; i < len(s); {
		e := p.matchAt(s, i)
		dst = append(dst, span{i, e})
		i = e
	}
	return dst
}

// scanClass returns the end of the run of runes from i whose class has a
// bit of want and none of avoid.
func scanClass(s string, i int, want, avoid uint8) int {
	for i < len(s) {
		_, w, c := runeAt(s, i)
		if c&want == 0 || c&avoid != 0 {
			break
		}
		i += w
	}
	return i
}

// scanOther returns the end of the run of runes from i in [^\s\p{L}\p{N}].
func scanOther(s string, i int) int {
	for i < len(s) {
		_, w, c := runeAt(s, i)
		if c&(clLetter|clNumber|clSpace) != 0 {
			break
		}
		i += w
	}
	return i
}

// contraction returns the length of 's|'t|'re|'ve|'m|'ll|'d at s[i:]
// (s[i] is the apostrophe), or 0.
func contraction(s string, i int, fold bool) int {
	eq := func(j int, want byte) (int, bool) {
		if j >= len(s) {
			return 0, false
		}
		if s[j] == want {
			return 1, true
		}
		if !fold {
			return 0, false
		}
		if s[j] == want-'a'+'A' {
			return 1, true
		}
		// Under Unicode case folding U+017F LATIN SMALL LETTER LONG S is s.
		if want == 's' && strings.HasPrefix(s[j:], "\u017f") {
			return 2, true
		}
		return 0, false
	}
	j := i + 1
	for _, alt := range [...]string{"s", "t", "re", "ve", "m", "ll", "d"} {
		k, ok := j, true
		for x := 0; x < len(alt) && ok; x++ {
			var w int
			w, ok = eq(k, alt[x])
			k += w
		}
		if ok {
			return k - i
		}
	}
	return 0
}

func (p *wordPattern) matchAt(s string, i int) int {
	r, w, c := runeAt(s, i)
	if r == '\'' {
		if n := contraction(s, i, p.foldCase); n > 0 {
			return i + n
		}
	}
	if p.gpt2 {
		// ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`
		j, cj := i, c
		if r == ' ' && i+1 < len(s) {
			if _, _, cn := runeAt(s, i+1); cn&clSpace == 0 {
				j, cj = i+1, cn
			}
		}
		switch {
		case cj&clLetter != 0:
			return scanClass(s, j, clLetter, 0)
		case cj&clNumber != 0:
			return scanClass(s, j, clNumber, 0)
		case cj&clSpace == 0:
			return scanOther(s, j)
		}
	} else {
		// `[^\r\n\p{L}\p{N}]?\p{L}+`
		if c&clLetter != 0 {
			return scanClass(s, i, clLetter, 0)
		}
		if c&(clNewline|clNumber) == 0 && i+w < len(s) {
			if _, _, cn := runeAt(s, i+w); cn&clLetter != 0 {
				return scanClass(s, i+w, clLetter, 0)
			}
		}
		// `\p{N}{1,n}`
		if c&clNumber != 0 {
			j := i
			for n := 0; n < p.maxDigits && j < len(s); n++ {
				_, wj, cj := runeAt(s, j)
				if cj&clNumber == 0 {
					break
				}
				j += wj
			}
			return j
		}
		// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
		j := i
		if r == ' ' && i+1 < len(s) {
			if _, _, cn := runeAt(s, i+1); cn&(clLetter|clNumber|clSpace) == 0 {
				j = i + 1
			}
		}
		if _, _, cj := runeAt(s, j); cj&(clLetter|clNumber|clSpace) == 0 {
			e := scanOther(s, j)
			for e < len(s) && (s[e] == '\r' || s[e] == '\n') {
				e++
			}
			return e
		}
	}
	// What is left starts with whitespace.
	end := scanClass(s, i, clSpace, 0)
	if !p.gpt2 {
		// `\s*[\r\n]+`: the whitespace run up to its last newline.
		for k := end - 1; k >= i; k-- {
			if s[k] == '\r' || s[k] == '\n' {
				return k + 1
			}
		}
	}
	// `\s+(?!\S)`: the run, less its last character when a non-space follows.
	if end < len(s) {
		_, lastW := utf8.DecodeLastRuneInString(s[i:end])
		if end-lastW > i {
			return end - lastW
		}
	}
	// `\s+`
	return end
}

// regexp2Matcher matches any other regex with a backtracking engine.
type regexp2Matcher struct{ re *regexp2.Regexp }

func (m *regexp2Matcher) appendMatches(dst []span, s string) []span {
	idx, err := m.re.FindAllStringIndex(s, -1)
	if err != nil {
		// regexp2 fails only on a match timeout, which is never set here.
		panic(fmt.Sprintf("tokenizer: regex %s: %v", m.re, err))
	}
	for _, x := range idx {
		if x[1] > x[0] {
			dst = append(dst, span{x[0], x[1]})
		}
	}
	return dst
}

// literalMatcher matches a literal string.
type literalMatcher struct{ lit string }

func (m literalMatcher) appendMatches(dst []span, s string) []span {
	if m.lit == "" {
		return dst
	}
	for i := 0; ; {
		k := strings.Index(s[i:], m.lit)
		if k < 0 {
			return dst
		}
		dst = append(dst, span{i + k, i + k + len(m.lit)})
		i += k + len(m.lit)
	}
}

// runeMatcher matches every single character for which is holds.
type runeMatcher struct{ is func(rune) bool }

func (m runeMatcher) appendMatches(dst []span, s string) []span {
	for i, r := range s {
		if m.is(r) {
			dst = append(dst, span{i, i + utf8.RuneLen(r)})
		}
	}
	return dst
}

// goRegexMatcher matches an RE2 regex (Replace normalizers and decoders).
type goRegexMatcher struct{ re *regexp.Regexp }

func (m goRegexMatcher) appendMatches(dst []span, s string) []span {
	for _, x := range m.re.FindAllStringIndex(s, -1) {
		if x[1] > x[0] {
			dst = append(dst, span{x[0], x[1]})
		}
	}
	return dst
}

// isWordRune approximates the Unicode \w of Rust's regex crate: alphabetic,
// marks, decimal numbers, connector punctuation and the joiners.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsMark(r) || unicode.Is(unicode.Nd, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

// splitBehavior says what becomes of the matches when a string is split.
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseBehavior(s string) (splitBehavior, error) {
	switch s {
	case "Removed":
		return splitRemoved, nil
	case "Isolated":
		return splitIsolated, nil
	case "MergedWithPrevious":
		return splitMergedWithPrevious, nil
	case "MergedWithNext":
		return splitMergedWithNext, nil
	case "Contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("unknown split behavior %q", s)
}

// flagged is a span marked as a match (or, after the behavior is applied,
// as to be removed).
type flagged struct {
	span
	match bool
}

// scratch holds buffers reused across the splits of one encode call.
type scratch struct {
	matches []span
	parts   []flagged
	spans   []span
}

// splitString splits s by the matches of m under the given behavior,
// following NormalizedString::split of Hugging Face tokenizers: the pieces
// cover s except what the behavior removes, and with invert the matches
// are what is kept. The result lives in sc.spans until the next call.
func splitString(sc *scratch, s string, m matcher, behavior splitBehavior, invert bool) []span {
	dst := sc.spans[:0]
	defer func() { sc.spans = dst[:0] }()
	if s == "" {
		return dst
	}
	sc.matches = m.appendMatches(sc.matches[:0], s)
	ms := sc.matches
	if behavior == splitIsolated {
		// Matches and the gaps between them, each a piece.
		prev := 0
		for _, x := range ms {
			if x.start > prev {
				dst = append(dst, span{prev, x.start})
			}
			dst = append(dst, x)
			prev = x.end
		}
		if prev < len(s) {
			dst = append(dst, span{prev, len(s)})
		}
		return dst
	}
	parts := sc.parts[:0]
	prev := 0
	for _, x := range ms {
		if x.start > prev {
			parts = append(parts, flagged{span{prev, x.start}, false})
		}
		parts = append(parts, flagged{x, true})
		prev = x.end
	}
	if prev < len(s) {
		parts = append(parts, flagged{span{prev, len(s)}, false})
	}
	sc.parts = parts
	if invert {
		for i := range parts {
			parts[i].match = !parts[i].match
		}
	}
	var out []flagged
	switch behavior {
	case splitRemoved:
		out = parts
	case splitContiguous:
		prevMatch := false
		for _, p := range parts {
			if p.match == prevMatch && len(out) > 0 {
				out[len(out)-1].end = p.end
			} else {
				out = append(out, flagged{p.span, false})
			}
			prevMatch = p.match
		}
	case splitMergedWithPrevious:
		prevMatch := false
		for _, p := range parts {
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = p.end
			} else {
				out = append(out, flagged{p.span, false})
			}
			prevMatch = p.match
		}
	case splitMergedWithNext:
		prevMatch := false
		for i := len(parts) - 1; i >= 0; i-- {
			p := parts[i]
			if p.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = p.start
			} else {
				out = append(out, flagged{p.span, false})
			}
			prevMatch = p.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	for _, p := range out {
		if !p.match && p.end > p.start {
			dst = append(dst, p.span)
		}
	}
	return dst
}
