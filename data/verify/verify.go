// Package verify judges answers: exact match up to white space, and the
// recomputed answer of recognisable task families.
//
// ExactMatch is the metric of held-out evaluation and of on-policy pair
// mining (an answer is right when it is the reference answer, up to white
// space). Task needs no reference answer: it recognises the family of an
// instruction (arithmetic, sorting, reversing, counting, …) from its
// wording and input, recomputes the answer and checks the output against
// it, which is how self-instruct keeps only generated tasks whose answer is
// right. Both are pure functions of their arguments, cheap enough to be
// called once per sampled answer, so they can serve as reward functions
// too.
//
// May import: the standard library only.
package verify

import "strings"

// Normalize trims s and collapses every run of white space to one space:
// the only leniency of ExactMatch.
func Normalize(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ExactMatch reports whether a and b are equal up to white space: leading
// and trailing space is ignored and every run of white space counts as one
// space. Case and punctuation count.
func ExactMatch(a, b string) bool {
	return Normalize(a) == Normalize(b)
}
