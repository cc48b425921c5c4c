package verify

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// ErrUnknownTask is what Task returns for a task of no family it
// recognises: it can say nothing about the output.
var ErrUnknownTask = errors.New("verify: no known task family")

// Task judges output as the answer to an instruction and its input (""
// when the instruction stands alone). It recognises the task's family from
// the instruction's wording and the input, computes the answer itself and
// returns nil when output gives it, an error saying what it wanted when
// not, and ErrUnknownTask when the task is of no family it knows.
//
// The families are those of the default self-instruct seed tasks:
// arithmetic expressions, sums, differences, products, averages, sorting,
// reversing, case changes, removing spaces, replacing a quoted word,
// counting words, letters and vowels, the larger or smaller of numbers,
// parity and primality. The first family whose wording and input match
// decides. Outputs are read leniently where the family allows it: a
// number is the last number written (to the precision given), a verdict
// may be a sentence, a word may be quoted.
func Task(instruction, input, output string) error {
	inst := strings.ToLower(instruction)
	in := strings.TrimSpace(input)
	out := strings.TrimSpace(output)
	for _, c := range checkers {
		if ok, err := c(inst, in, out); ok {
			return err
		}
	}
	return ErrUnknownTask
}

// A checker reports whether the task is of its family and, if so, whether
// the output is right.
type checker func(inst, in, out string) (applies bool, err error)

var checkers = []checker{
	checkSort, checkCase, checkRemoveSpaces, checkReplace, checkReverse,
	checkParity, checkPrime, checkVowels, checkCountLetters, checkCountWords,
	checkAverage, checkExtreme, checkBinary, checkExpression,
}

var (
	numberRE = regexp.MustCompile(`-?\d+(?:\.\d+)?`)
	exprRE   = regexp.MustCompile(`[\d(][\d\s.+\-*/×÷−()]*[\d)]`)
)

// wordREs caches the whole-word patterns of has.
var wordREs sync.Map // string → *regexp.Regexp

// has reports whether s contains any of words as a whole word or phrase.
func has(s string, words ...string) bool {
	for _, w := range words {
		re, ok := wordREs.Load(w)
		if !ok {
			re, _ = wordREs.LoadOrStore(w, regexp.MustCompile(`\b`+regexp.QuoteMeta(w)+`\b`))
		}
		if re.(*regexp.Regexp).MatchString(s) {
			return true
		}
	}
	return false
}

func numbers(s string) []float64 {
	var out []float64
	for _, m := range numberRE.FindAllString(s, -1) {
		if v, err := strconv.ParseFloat(m, 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// answer checks that the last number written in out equals want (to the
// precision out gives it, at least 1e-6 relative).
func answer(out string, want float64) error {
	ms := numberRE.FindAllString(out, -1)
	if len(ms) == 0 {
		return fmt.Errorf("output %q holds no number, want %s", out, fmtNum(want))
	}
	last := ms[len(ms)-1]
	got, _ := strconv.ParseFloat(last, 64)
	tol := 1e-6 * math.Max(1, math.Abs(want))
	if i := strings.IndexByte(last, '.'); i >= 0 {
		tol = math.Max(tol, 0.5*math.Pow(10, -float64(len(last)-i-1))+1e-12)
	}
	if math.Abs(got-want) > tol {
		return fmt.Errorf("output says %s, want %s", last, fmtNum(want))
	}
	return nil
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// unquote trims spaces and one pair of surrounding quotes.
func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && strings.ContainsRune(`"'“`, rune(s[0])) {
		s = strings.Trim(s, `"'“”`)
	}
	return s
}

// listItems splits a list written with commas (or, lacking them, spaces).
func listItems(s string) []string {
	s = strings.TrimSuffix(strings.TrimSpace(s), ".")
	var items []string
	if strings.Contains(s, ",") {
		items = strings.Split(s, ",")
	} else {
		items = strings.Fields(s)
	}
	out := items[:0]
	for _, it := range items {
		it = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(it), "and "))
		if it != "" {
			out = append(out, it)
		}
	}
	return out
}

func checkSort(inst, in, out string) (bool, error) {
	if !has(inst, "sort", "arrange", "order") || !strings.Contains(in, ",") {
		return false, nil
	}
	items := listItems(in)
	if len(items) < 2 {
		return false, nil
	}
	desc := has(inst, "descending", "largest to smallest", "highest to lowest", "biggest to smallest", "decreasing", "reverse")
	nums := make([]float64, len(items))
	numeric := true
	for i, it := range items {
		v, err := strconv.ParseFloat(it, 64)
		numeric = numeric && err == nil
		nums[i] = v
	}
	want := slices.Clone(items)
	if numeric {
		slices.SortStableFunc(want, func(a, b string) int {
			x, _ := strconv.ParseFloat(a, 64)
			y, _ := strconv.ParseFloat(b, 64)
			return cmpFloat(x, y)
		})
	} else {
		slices.SortStableFunc(want, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	}
	if desc {
		slices.Reverse(want)
	}
	got := listItems(out)
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		if numeric {
			g, err := strconv.ParseFloat(got[i], 64)
			w, _ := strconv.ParseFloat(want[i], 64)
			same = err == nil && g == w
		} else {
			same = strings.EqualFold(got[i], want[i])
		}
	}
	if !same {
		return true, fmt.Errorf("sorted list %q, want %q", out, strings.Join(want, ", "))
	}
	return true, nil
}

func cmpFloat(x, y float64) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

func checkCase(inst, in, out string) (bool, error) {
	if in == "" {
		return false, nil
	}
	var want string
	switch {
	case has(inst, "uppercase", "upper case", "capital letters", "all caps"):
		want = strings.ToUpper(in)
	case has(inst, "lowercase", "lower case"):
		want = strings.ToLower(in)
	default:
		return false, nil
	}
	if unquote(out) != want {
		return true, fmt.Errorf("output %q, want %q", out, want)
	}
	return true, nil
}

func checkRemoveSpaces(inst, in, out string) (bool, error) {
	if in == "" || !has(inst, "remove", "delete") || !has(inst, "spaces", "whitespace") {
		return false, nil
	}
	want := strings.Join(strings.Fields(in), "")
	if unquote(out) != want {
		return true, fmt.Errorf("output %q, want %q", out, want)
	}
	return true, nil
}

var replaceRE = regexp.MustCompile(`(?i)replace\b.*?["“]([^"”]+)["”].*?\bwith\s+["“]([^"”]*)["”]`)

func checkReplace(inst, in, out string) (bool, error) {
	m := replaceRE.FindStringSubmatch(inst)
	if m == nil || in == "" {
		return false, nil
	}
	// inst is lowercased; match the word in the input case-insensitively.
	re := regexp.MustCompile(`(?i)\b` + regexp.QuoteMeta(m[1]) + `\b`)
	want := re.ReplaceAllLiteralString(in, m[2])
	if !strings.EqualFold(unquote(out), want) {
		return true, fmt.Errorf("output %q, want %q", out, want)
	}
	return true, nil
}

func checkReverse(inst, in, out string) (bool, error) {
	if in == "" || !has(inst, "reverse", "backwards") {
		return false, nil
	}
	r := []rune(in)
	slices.Reverse(r)
	if want := string(r); unquote(out) != want {
		return true, fmt.Errorf("output %q, want %q", out, want)
	}
	return true, nil
}

// singleInt is the input as one integer, if it is exactly that.
func singleInt(in string) (int64, bool) {
	v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(in), "."), 10, 64)
	return v, err == nil
}

func checkParity(inst, in, out string) (bool, error) {
	n, ok := singleInt(in)
	if !ok || !(strings.Contains(inst, "even or odd") || strings.Contains(inst, "odd or even")) {
		return false, nil
	}
	o := strings.ToLower(out)
	want, other := "odd", "even"
	if n%2 == 0 {
		want, other = other, want
	}
	if !has(o, want) || has(o, other) {
		return true, fmt.Errorf("output %q, want %s", out, want)
	}
	return true, nil
}

func isPrime(n int64) bool {
	if n < 2 {
		return false
	}
	for d := int64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

func checkPrime(inst, in, out string) (bool, error) {
	n, ok := singleInt(in)
	if !ok || !has(inst, "prime") || n > 1e12 {
		return false, nil
	}
	o := strings.ToLower(out)
	var says bool
	switch {
	case strings.HasPrefix(o, "yes"):
		says = true
	case strings.HasPrefix(o, "no"), strings.Contains(o, "not prime"), strings.Contains(o, "not a prime"), strings.Contains(o, "composite"):
		says = false
	case strings.Contains(o, "prime"):
		says = true
	default:
		return true, fmt.Errorf("output %q gives no verdict on primality", out)
	}
	if says != isPrime(n) {
		return true, fmt.Errorf("output %q, but %d is prime: %v", out, n, isPrime(n))
	}
	return true, nil
}

func checkVowels(inst, in, out string) (bool, error) {
	if in == "" || !has(inst, "vowel", "vowels") || !has(inst, "how many", "count", "number of") {
		return false, nil
	}
	n := 0
	for _, r := range strings.ToLower(in) {
		if strings.ContainsRune("aeiou", r) {
			n++
		}
	}
	return true, answer(out, float64(n))
}

func checkCountWords(inst, in, out string) (bool, error) {
	if in == "" || !has(inst, "word", "words") || !has(inst, "how many", "count", "number of") {
		return false, nil
	}
	return true, answer(out, float64(len(strings.Fields(in))))
}

func checkCountLetters(inst, in, out string) (bool, error) {
	if in == "" || !has(inst, "how many", "count", "number of") {
		return false, nil
	}
	switch {
	case has(inst, "letter", "letters"):
		n := 0
		for _, r := range in {
			if unicode.IsLetter(r) {
				n++
			}
		}
		return true, answer(out, float64(n))
	case has(inst, "character", "characters"):
		return true, answer(out, float64(utf8.RuneCountInString(in)))
	}
	return false, nil
}

func checkAverage(inst, in, out string) (bool, error) {
	xs := numbers(in)
	if len(xs) < 2 || !has(inst, "average", "mean") {
		return false, nil
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return true, answer(out, s/float64(len(xs)))
}

func checkExtreme(inst, in, out string) (bool, error) {
	xs := numbers(in)
	if len(xs) < 2 {
		return false, nil
	}
	switch {
	case has(inst, "largest", "greatest", "biggest", "larger", "greater", "bigger", "maximum", "highest"):
		return true, answer(out, slices.Max(xs))
	case has(inst, "smallest", "smaller", "minimum", "lowest", "least"):
		return true, answer(out, slices.Min(xs))
	}
	return false, nil
}

func checkBinary(inst, in, out string) (bool, error) {
	xs := numbers(in)
	if len(xs) < 2 || exprRE.MatchString(in) && strings.ContainsAny(in, "+*/×÷") {
		return false, nil
	}
	switch {
	case has(inst, "subtract") && len(xs) == 2:
		return true, answer(out, xs[0]-xs[1])
	case has(inst, "multiply", "product"):
		p := 1.0
		for _, x := range xs {
			p *= x
		}
		return true, answer(out, p)
	case has(inst, "add", "sum", "total"):
		var s float64
		for _, x := range xs {
			s += x
		}
		return true, answer(out, s)
	}
	return false, nil
}

// checkExpression evaluates the arithmetic expression of the input, or of
// the instruction when there is no input.
func checkExpression(inst, in, out string) (bool, error) {
	src := in
	if src == "" {
		src = inst
	}
	var expr string
	for _, m := range exprRE.FindAllString(src, -1) {
		if strings.ContainsAny(strings.TrimLeft(m, "-"), "+-*/×÷−") && len(m) > len(expr) {
			expr = m
		}
	}
	if expr == "" || in != "" && strings.TrimSpace(strings.TrimSuffix(in, "=")) != strings.TrimSpace(expr) {
		return false, nil
	}
	v, err := EvalExpression(expr)
	if err != nil {
		return false, nil
	}
	return true, answer(out, v)
}
