package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token matched in the raw text before any other
// processing, as in the "added_tokens" list of a tokenizer.json.
type AddedToken struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"` // only match as a whole word
	LStrip     bool   `json:"lstrip"`      // absorb the whitespace on its left
	RStrip     bool   `json:"rstrip"`      // absorb the whitespace on its right
	Normalized bool   `json:"normalized"`  // match in the normalized text
	Special    bool   `json:"special"`     // skipped by Decode(..., skipSpecial)
}

// trie is a byte trie over token contents, for leftmost-longest matching
// (the daachorse/aho-corasick MatchKind::LeftmostLongest of the reference).
type trie struct {
	nodes []trieNode
	first [256]bool // bytes that begin some token
}

type trieNode struct {
	edges []trieEdge
	token int // index into the token list, or -1
}

type trieEdge struct {
	b    byte
	next int32
}

func newTrie() *trie { return &trie{nodes: []trieNode{{token: -1}}} }

func (t *trie) insert(s string, token int) {
	if s == "" {
		return
	}
	t.first[s[0]] = true
	n := 0
	for i := 0; i < len(s); i++ {
		next := int32(-1)
		for _, e := range t.nodes[n].edges {
			if e.b == s[i] {
				next = e.next
				break
			}
		}
		if next < 0 {
			next = int32(len(t.nodes))
			t.nodes = append(t.nodes, trieNode{token: -1})
			t.nodes[n].edges = append(t.nodes[n].edges, trieEdge{s[i], next})
		}
		n = int(next)
	}
	if t.nodes[n].token < 0 {
		t.nodes[n].token = token
	}
}

// longestAt returns the token and end of the longest match at s[i:].
func (t *trie) longestAt(s string, i int) (token, end int) {
	token, end = -1, -1
	n := 0
	for j := i; j < len(s); j++ {
		next := int32(-1)
		for _, e := range t.nodes[n].edges {
			if e.b == s[j] {
				next = e.next
				break
			}
		}
		if next < 0 {
			break
		}
		n = int(next)
		if t.nodes[n].token >= 0 {
			token, end = t.nodes[n].token, j+1
		}
	}
	return token, end
}

// addedSplit is a piece of text: an added token (token >= 0) or plain text.
type addedSplit struct {
	span
	token int // index into addedVocab.tokens, or -1
}

// addedVocab holds the added tokens and finds them in text.
type addedVocab struct {
	tokens        []AddedToken
	raw, normTrie *trie // tokens matched before / after normalization
}

func newAddedVocab(tokens []AddedToken, normalize func(string) string) *addedVocab {
	v := &addedVocab{tokens: tokens}
	for i, tok := range tokens {
		if tok.Normalized {
			if v.normTrie == nil {
				v.normTrie = newTrie()
			}
			content := tok.Content
			if normalize != nil {
				content = normalize(content)
			}
			v.normTrie.insert(content, i)
		} else {
			if v.raw == nil {
				v.raw = newTrie()
			}
			v.raw.insert(tok.Content, i)
		}
	}
	return v
}

// endsWithWord and startsWithWord are the \w$ and ^\w tests of single_word.
func endsWithWord(s string) bool {
	r, _ := utf8.DecodeLastRuneInString(s)
	return s != "" && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return s != "" && isWordRune(r)
}

// find splits s into added tokens and the text between them, following
// AddedVocabulary::find_matches of Hugging Face tokenizers: leftmost-longest
// matches, single_word matches only between non-word characters, and
// lstrip/rstrip tokens absorbing the whitespace beside them.
func (v *addedVocab) find(dst []addedSplit, s string, t *trie) []addedSplit {
	if t == nil || s == "" {
		if s != "" {
			dst = append(dst, addedSplit{span{0, len(s)}, -1})
		}
		return dst
	}
	startOffset := 0
	for i := 0; i < len(s); {
		if !t.first[s[i]] {
			i++
			continue
		}
		tok, stop := t.longestAt(s, i)
		if tok < 0 {
			i++
			continue
		}
		start := i
		i = stop // the search resumes after the match, as aho-corasick does
		if start < startOffset {
			continue // inside what an rstrip already absorbed
		}
		at := v.tokens[tok]
		if at.SingleWord {
			startSpace := start == 0 || !endsWithWord(s[:start])
			stopSpace := stop == len(s) || !startsWithWord(s[stop:])
			if !startSpace || !stopSpace {
				continue
			}
		}
		if at.LStrip {
			ns := start
			for ns > 0 {
				r, w := utf8.DecodeLastRuneInString(s[:ns])
				if !unicode.IsSpace(r) {
					break
				}
				ns -= w
			}
			start = max(ns, startOffset)
		}
		if at.RStrip {
			for stop < len(s) {
				r, w := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += w
			}
		}
		if startOffset < start {
			dst = append(dst, addedSplit{span{startOffset, start}, -1})
		}
		dst = append(dst, addedSplit{span{start, stop}, tok})
		startOffset = stop
	}
	if startOffset < len(s) {
		dst = append(dst, addedSplit{span{startOffset, len(s)}, -1})
	}
	return dst
}
