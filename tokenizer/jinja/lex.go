// Package jinja renders the subset of Jinja2 that Hugging Face chat
// templates use, with the settings transformers renders them under
// (trim_blocks, lstrip_blocks, loop controls, and the tojson,
// raise_exception and strftime_now helpers of apply_chat_template).
//
// Supported: text, {{ }}, {# #} and the tags if/elif/else, for (with
// loop.*, else, an inline filter and tuple targets), set (plain, namespace
// attribute and block form), break, continue, raw, and transformers'
// generation tag; expressions with Python literals, lists, dicts, tuples,
// attribute and item access, slices, calls, filters, tests, the
// conditional expression and Jinja's operators; the usual filters, tests
// and the string, list and dict methods templates call. Anything else is
// a parse or render error naming the construct, never silently ignored.
//
// Example:
//
//	t, err := jinja.Parse("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}")
//	out, err := t.Render(map[string]any{"messages": msgs})
//
// May import: tokenizer/..., data/..., checkpoints/..., internal/blas and
// internal/kernel; never model/..., finetune, train, lora, a stage or an
// application.
package jinja

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// segKind is the kind of a top-level piece of a template.
type segKind int

const (
	segText segKind = iota
	segOutput
	segStmt
)

// segment is literal text, an output expression {{ }} or a statement {% %},
// with the tokens of its inside and its line for error messages.
type segment struct {
	kind segKind
	text string
	toks []token
	line int
}

// splitSegments cuts the template into segments, applying whitespace
// control: "-" inside a delimiter strips all whitespace on that side;
// trim_blocks drops the first newline after a block or comment tag;
// lstrip_blocks strips spaces and tabs from the start of a line up to a
// block or comment tag ("+" after "{%" turns that off). As in Jinja, "\r\n"
// and "\r" read as "\n" and a single trailing newline is dropped.
func splitSegments(src string) ([]segment, error) {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	src = strings.TrimSuffix(src, "\n")
	var segs []segment
	pos, line := 0, 1
	lineStarting := true
	stripNext := false // the previous tag ended with "-"
	for {
		start := -1
		var open string
		for i := pos; i+1 < len(src); i++ {
			if src[i] == '{' && (src[i+1] == '{' || src[i+1] == '%' || src[i+1] == '#') {
				start, open = i, src[i:i+2]
				break
			}
		}
		text := src[pos:]
		if start >= 0 {
			text = src[pos:start]
		}
		if stripNext {
			text = strings.TrimLeftFunc(text, unicode.IsSpace)
		}
		if start < 0 {
			if text != "" {
				segs = append(segs, segment{kind: segText, text: text, line: line})
			}
			return segs, nil
		}
		sign := byte(0)
		if start+2 < len(src) && (src[start+2] == '-' || src[start+2] == '+') {
			sign = src[start+2]
		}
		switch {
		case sign == '-':
			text = strings.TrimRightFunc(text, unicode.IsSpace)
		case sign != '+' && open != "{{":
			lpos := strings.LastIndexByte(text, '\n') + 1
			if (lpos > 0 || lineStarting) && strings.Trim(text[lpos:], " \t") == "" {
				text = text[:lpos]
			}
		}
		if text != "" {
			segs = append(segs, segment{kind: segText, text: text, line: line})
		}
		line += strings.Count(src[pos:start], "\n")
		bodyStart := start + 2
		if sign != 0 {
			bodyStart++
		}
		if open == "{%" && isRawTag(src[bodyStart:]) {
			// {% raw %} ... {% endraw %} is copied verbatim.
			after := bodyStart + strings.Index(src[bodyStart:], "%}") + 2
			body, endLen, err := findEndRaw(src[after:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			segs = append(segs, segment{kind: segText, text: body, line: line})
			pos = after + len(body) + endLen
			line += strings.Count(src[start:pos], "\n")
			lineStarting, stripNext = false, false
			continue
		}
		var closeDelim string
		switch open {
		case "{{":
			closeDelim = "}}"
		case "{%":
			closeDelim = "%}"
		default:
			closeDelim = "#}"
		}
		var body string
		var end int
		if open == "{#" {
			k := strings.Index(src[bodyStart:], closeDelim)
			if k < 0 {
				return nil, fmt.Errorf("line %d: unclosed comment", line)
			}
			body, end = src[bodyStart:bodyStart+k], bodyStart+k
		} else {
			k, err := findClose(src, bodyStart, closeDelim)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			body, end = src[bodyStart:k], k
		}
		closeSign := byte(0)
		if strings.HasSuffix(body, "-") || strings.HasSuffix(body, "+") {
			closeSign = body[len(body)-1]
			body = body[:len(body)-1]
		}
		pos = end + 2
		line += strings.Count(src[start:pos], "\n")
		stripNext = closeSign == '-'
		consumed := src[start:pos]
		if !stripNext && closeSign != '+' && open != "{{" && pos < len(src) && src[pos] == '\n' {
			pos++ // trim_blocks
			line++
			consumed += "\n"
		}
		lineStarting = strings.HasSuffix(consumed, "\n")
		if stripNext {
			// "-" swallows the whitespace after the tag, newlines included.
			k := pos
			for k < len(src) {
				r, w := utf8.DecodeRuneInString(src[k:])
				if !unicode.IsSpace(r) {
					break
				}
				k += w
			}
			lineStarting = k > pos && src[k-1] == '\n'
		}
		if open == "{#" {
			continue
		}
		toks, err := lexExpr(body, line)
		if err != nil {
			return nil, err
		}
		kind := segOutput
		if open == "{%" {
			kind = segStmt
		}
		segs = append(segs, segment{kind: kind, toks: toks, line: line})
	}
}

// isRawTag reports whether a block body reads "raw %}".
func isRawTag(s string) bool {
	k := strings.Index(s, "%}")
	return k >= 0 && strings.TrimSpace(strings.TrimSuffix(s[:k], "-")) == "raw"
}

// findEndRaw finds "{% endraw %}" in s and returns the raw text before it
// and the length of the endraw tag.
func findEndRaw(s string) (body string, endLen int, err error) {
	for i := 0; ; {
		k := strings.Index(s[i:], "{%")
		if k < 0 {
			return "", 0, fmt.Errorf("raw: missing endraw")
		}
		j := i + k
		e := strings.Index(s[j+2:], "%}")
		if e < 0 {
			return "", 0, fmt.Errorf("raw: missing endraw")
		}
		if strings.Trim(s[j+2:j+2+e], "-+ \t\n") == "endraw" {
			return s[:j], e + 4, nil
		}
		i = j + 2
	}
}

// findClose finds the closing delimiter of a tag, skipping string literals.
func findClose(src string, from int, delim string) (int, error) {
	for i := from; i+1 < len(src); i++ {
		switch c := src[i]; c {
		case '\'', '"':
			j := i + 1
			for j < len(src) && src[j] != c {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(src) {
				return 0, fmt.Errorf("unterminated string")
			}
			i = j
		default:
			if src[i:i+2] == delim {
				return i, nil
			}
		}
	}
	return 0, fmt.Errorf("missing %q", delim)
}

// tokKind is the kind of an expression token.
type tokKind int

const (
	tkName tokKind = iota
	tkString
	tkInt
	tkFloat
	tkOp
	tkEOF
)

type token struct {
	kind tokKind
	s    string // name, operator or decoded string
	i    int64
	f    float64
	line int
}

// operators, longest first.
var operators = []string{"**", "//", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~",
	"<", ">", "=", "(", ")", "[", "]", "{", "}", ",", ".", ":", "|"}

func lexExpr(s string, line int) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if c == '\n' {
				line++
			}
			i++
		case c == '_' || c < utf8.RuneSelf && unicode.IsLetter(rune(c)):
			j := i
			for j < len(s) && (s[j] == '_' || s[j] < utf8.RuneSelf && (unicode.IsLetter(rune(s[j])) || unicode.IsDigit(rune(s[j])))) {
				j++
			}
			toks = append(toks, token{kind: tkName, s: s[i:j], line: line})
			i = j
		case c >= '0' && c <= '9':
			j := i
			isFloat := false
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
				j++
			}
			if j+1 < len(s) && s[j] == '.' && s[j+1] >= '0' && s[j+1] <= '9' {
				isFloat = true
				j++
				for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '_') {
					j++
				}
			}
			if j < len(s) && (s[j] == 'e' || s[j] == 'E') {
				k := j + 1
				if k < len(s) && (s[k] == '+' || s[k] == '-') {
					k++
				}
				if k < len(s) && s[k] >= '0' && s[k] <= '9' {
					isFloat = true
					for k < len(s) && s[k] >= '0' && s[k] <= '9' {
						k++
					}
					j = k
				}
			}
			lit := strings.ReplaceAll(s[i:j], "_", "")
			t := token{line: line}
			if isFloat {
				t.kind = tkFloat
				if _, err := fmt.Sscan(lit, &t.f); err != nil {
					return nil, fmt.Errorf("line %d: bad number %q", line, lit)
				}
			} else {
				t.kind = tkInt
				if _, err := fmt.Sscan(lit, &t.i); err != nil {
					return nil, fmt.Errorf("line %d: bad number %q", line, lit)
				}
			}
			toks = append(toks, t)
			i = j
		case c == '\'' || c == '"':
			str, n, err := unquote(s[i:])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", line, err)
			}
			toks = append(toks, token{kind: tkString, s: str, line: line})
			line += strings.Count(s[i:i+n], "\n")
			i += n
		default:
			matched := false
			for _, op := range operators {
				if strings.HasPrefix(s[i:], op) {
					toks = append(toks, token{kind: tkOp, s: op, line: line})
					i += len(op)
					matched = true
					break
				}
			}
			if !matched {
				r, _ := utf8.DecodeRuneInString(s[i:])
				return nil, fmt.Errorf("line %d: unexpected character %q", line, r)
			}
		}
	}
	return append(toks, token{kind: tkEOF, line: line}), nil
}

// unquote decodes a string literal at the start of s with Python's
// escapes, returning the string and the literal's length.
func unquote(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		if c == q {
			return b.String(), i + 1, nil
		}
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch e := s[i]; e {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '0':
			b.WriteByte(0)
		case 'a':
			b.WriteByte(7)
		case 'b':
			b.WriteByte(8)
		case 'f':
			b.WriteByte(12)
		case 'v':
			b.WriteByte(11)
		case '\\', '\'', '"':
			b.WriteByte(e)
		case '\n':
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[e]
			if i+n >= len(s) {
				return "", 0, fmt.Errorf("truncated \\%c escape", e)
			}
			var r rune
			for _, h := range s[i+1 : i+1+n] {
				d := strings.IndexRune("0123456789abcdef", unicode.ToLower(h))
				if d < 0 {
					return "", 0, fmt.Errorf("bad \\%c escape", e)
				}
				r = r*16 + rune(d)
			}
			b.WriteRune(r)
			i += n
		default:
			b.WriteByte('\\')
			b.WriteByte(e)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}
