package selfinstruct

import "strings"

// Tokenize splits text as Google's rouge_score package does without
// stemming (tokenize.tokenize): lowercase, every run of characters other
// than a–z and 0–9 becomes a separator, empty tokens are dropped.
func Tokenize(text string) []string {
	text = strings.ToLower(text)
	return strings.FieldsFunc(text, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
}

// lcsLen is the length of the longest common subsequence of a and b, by
// the classic dynamic programme in O(len(a)·len(b)) time, O(len(b)) space.
func lcsLen(a, b []string) int {
	if len(a) == 0 || len(b) == 0 {
		return 0
	}
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			if a[i] == b[j] {
				cur[j+1] = prev[j] + 1
			} else {
				cur[j+1] = max(cur[j], prev[j+1])
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// RougeL is the ROUGE-L F-measure of two token sequences (Lin 2004, §3.1,
// eq. 2–4 with β = 1): with L the LCS length, P = L/|candidate| and
// R = L/|reference|, F = 2PR/(P+R); 0 when either is empty or L = 0. It is
// symmetric in its arguments.
func RougeL(a, b []string) float64 {
	l := lcsLen(a, b)
	if l == 0 {
		return 0
	}
	p := float64(l) / float64(len(a))
	r := float64(l) / float64(len(b))
	return 2 * p * r / (p + r)
}
