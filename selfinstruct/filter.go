package selfinstruct

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// DefaultBlocklist is Alpaca's list of words naming things a text-only
// model cannot do; an instruction containing one as a whole word (case
// insensitive) is dropped.
var DefaultBlocklist = []string{
	"image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
	"map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram",
}

// Filter holds Alpaca's per-task heuristics.
type Filter struct {
	blocked *regexp.Regexp // nil when the blocklist is empty
}

// NewFilter returns the filter with the given blocklist.
func NewFilter(blocklist []string) *Filter {
	f := &Filter{}
	var alts []string
	for _, w := range blocklist {
		if w = strings.TrimSpace(w); w != "" {
			alts = append(alts, regexp.QuoteMeta(w))
		}
	}
	if len(alts) > 0 {
		f.blocked = regexp.MustCompile(`(?i)\b(` + strings.Join(alts, "|") + `)\b`)
	}
	return f
}

// Check returns why t must be dropped, or "" when it passes: more than 3
// and at most 150 words, no blocklisted word, not starting with "Write a
// program", with ASCII punctuation, or with a non-ASCII character.
func (f *Filter) Check(t GeneratedTask) string {
	inst := t.Instruction
	switch n := len(strings.Fields(inst)); {
	case n <= 3:
		return ReasonTooShort
	case n > 150:
		return ReasonTooLong
	}
	if f.blocked != nil && f.blocked.MatchString(inst) {
		return ReasonBlocklist
	}
	if strings.HasPrefix(inst, "Write a program") {
		return ReasonProgram
	}
	r, _ := utf8.DecodeRuneInString(inst)
	if r < utf8.RuneSelf && strings.ContainsRune(asciiPunctuation, r) {
		return ReasonPunct
	}
	if r >= utf8.RuneSelf {
		return ReasonNonASCII
	}
	return ""
}

// asciiPunctuation is Python's string.punctuation.
const asciiPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
