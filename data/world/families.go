package world

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gotune/gotune/data/verify"
)

// Family names one skill of the world.
type Family string

// The task families. Answers are a few tokens long so that a tiny model can
// learn them, and each has a plausible wrong answer of the kind a model makes.
const (
	// Add: "What is 17 + 25?" → "42" (operands 0–49); wrong: off by 1 or 10.
	Add Family = "add"
	// Compare: "Which number is larger: 14 or 41?" → "41" (0–99); wrong: the smaller.
	Compare Family = "compare"
	// Count: letters in a word → "2"; wrong: off by one.
	Count Family = "count"
	// Reverse: "apple" → "elppa"; wrong: the word unreversed, or two letters swapped.
	Reverse Family = "reverse"
	// Sort: "9, 2, 5" → "2, 5, 9" (three distinct numbers 0–49); wrong: descending, unsorted, or one swap.
	Sort Family = "sort"
	// Upper: "apple" → "APPLE"; wrong: "Apple" or "apple".
	Upper Family = "upper"
)

// Families returns every family, in a fixed order.
func Families() []Family { return []Family{Add, Compare, Count, Reverse, Sort, Upper} }

// Ranges of the numeric families.
const (
	addMax     = 50 // operands in [0, addMax)
	compareMax = 100
	sortMax    = 50
	sortLen    = 3
)

// item is one family member before phrasing: numbers in display order, or a
// word and a letter.
type item struct {
	fam    Family
	nums   []int
	word   string
	letter byte
}

// key is the canonical form that decides the split: the same for every
// phrasing and every display order of the same question.
func (it item) key() string {
	switch it.fam {
	case Add, Compare, Sort:
		s := slices.Clone(it.nums)
		slices.Sort(s)
		return string(it.fam) + "|" + joinInts(s, ",")
	case Count:
		return string(it.fam) + "|" + it.word + "|" + string(it.letter)
	default:
		return string(it.fam) + "|" + it.word
	}
}

// answer is the exact correct answer.
func (it item) answer() string {
	switch it.fam {
	case Add:
		return strconv.Itoa(it.nums[0] + it.nums[1])
	case Compare:
		return strconv.Itoa(max(it.nums[0], it.nums[1]))
	case Count:
		return strconv.Itoa(strings.Count(it.word, string(it.letter)))
	case Reverse:
		return reverseString(it.word)
	case Sort:
		s := slices.Clone(it.nums)
		slices.Sort(s)
		return joinInts(s, ", ")
	case Upper:
		return strings.ToUpper(it.word)
	}
	panic("world: unknown family " + string(it.fam))
}

// misconception returns the answer of a classic mistake when the mistake
// changes the answer of this item: the carry forgotten (add), numbers
// compared and sorted as strings (compare: 9 "beats" 12; sort: 12, 5, 9),
// only the first occurrence of a letter counted (count), only the first
// letter capitalised (upper). Reverse has none.
func (it item) misconception() (string, bool) {
	ans := it.answer()
	var m string
	switch it.fam {
	case Add:
		if it.nums[0]%10+it.nums[1]%10 >= 10 {
			m = strconv.Itoa(it.nums[0] + it.nums[1] - 10)
		}
	case Compare:
		a, b := strconv.Itoa(it.nums[0]), strconv.Itoa(it.nums[1])
		m = max(a, b)
	case Sort:
		s := make([]string, len(it.nums))
		for i, n := range it.nums {
			s[i] = strconv.Itoa(n)
		}
		slices.Sort(s)
		m = strings.Join(s, ", ")
	case Count:
		if strings.Count(it.word, string(it.letter)) >= 2 {
			m = "1"
		}
	case Upper:
		if it.word != "" {
			m = strings.ToUpper(it.word[:1]) + it.word[1:]
		}
	}
	if m == "" || verify.Normalize(m) == verify.Normalize(ans) {
		return "", false
	}
	return m, true
}

// wrongs lists plausible wrong answers, most typical first (the
// misconception, when the item has one); none equals the
// answer (after verify.Normalize) and none repeats. It may be empty for degenerate
// parsed items (for example sorting three equal numbers).
func (it item) wrongs() []string {
	var c []string
	switch it.fam {
	case Add:
		s := it.nums[0] + it.nums[1]
		for _, d := range []int{1, -1, 10, -10} {
			if s+d >= 0 {
				c = append(c, strconv.Itoa(s+d))
			}
		}
	case Compare:
		c = append(c, strconv.Itoa(min(it.nums[0], it.nums[1])))
	case Count:
		n := strings.Count(it.word, string(it.letter))
		c = append(c, strconv.Itoa(n+1))
		if n > 0 {
			c = append(c, strconv.Itoa(n-1))
		}
	case Reverse:
		r := []byte(reverseString(it.word))
		c = append(c, it.word)
		if len(r) >= 2 {
			r[0], r[1] = r[1], r[0] // reversed, but the first two letters swapped
			c = append(c, string(r))
		}
	case Sort:
		s := slices.Clone(it.nums)
		slices.Sort(s)
		desc := slices.Clone(s)
		slices.Reverse(desc)
		c = append(c, joinInts(desc, ", "), joinInts(it.nums, ", "))
		if len(s) >= 2 {
			s[0], s[1] = s[1], s[0] // sorted but for one swap
			c = append(c, joinInts(s, ", "))
		}
	case Upper:
		w := it.word
		if w != "" {
			c = append(c, strings.ToUpper(w[:1])+w[1:])
		}
		c = append(c, w)
	}
	if m, ok := it.misconception(); ok {
		c = append([]string{m}, c...)
	}
	ans := verify.Normalize(it.answer())
	var out []string
	for _, s := range c {
		if verify.Normalize(s) != ans && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// task renders the item with a template; r picks the wrong answer (nil: the
// most typical one), except that an item with a misconception always has
// the misconception as its wrong answer.
func (it item) task(tpl template, r *rng) Task {
	t := Task{Family: it.fam, Key: it.key(), Answer: it.answer()}
	t.Instruction, t.Input = tpl.render(it)
	_, t.Misconceived = it.misconception()
	if ws := it.wrongs(); len(ws) > 0 {
		if r != nil && !t.Misconceived {
			t.Wrong = ws[r.intn(len(ws))]
		} else {
			t.Wrong = ws[0]
		}
	}
	return t
}

// template is one phrasing of a family: instruction and input with the
// placeholders {a} {b} (numbers), {list} (numbers), {w} (word), {l} (letter).
type template struct {
	instruction, input string
	reInstr, reInput   *regexp.Regexp // anchored parsers of the rendered texts
	groupsInstr        []string       // placeholder names of reInstr's groups
	groupsInput        []string
}

// render fills the placeholders.
func (tpl template) render(it item) (instruction, input string) {
	var pairs []string
	if len(it.nums) >= 2 {
		pairs = append(pairs, "{a}", strconv.Itoa(it.nums[0]), "{b}", strconv.Itoa(it.nums[1]))
	}
	pairs = append(pairs, "{list}", joinInts(it.nums, ", "), "{w}", it.word, "{l}", string(it.letter))
	rep := strings.NewReplacer(pairs...)
	return rep.Replace(tpl.instruction), rep.Replace(tpl.input)
}

// familySpec is everything the world knows about a family.
type familySpec struct {
	name      Family
	seedName  string // stem of the self-instruct seed task names
	draw      func(r *rng) item
	templates []template
}

var specs = []familySpec{
	{
		name: Add, seedName: "add_numbers",
		draw: func(r *rng) item { return item{fam: Add, nums: []int{r.intn(addMax), r.intn(addMax)}} },
		templates: templates(
			"What is {a} + {b}?", "",
			"Add {a} and {b}.", "",
			"Add the two numbers.", "{a} and {b}",
		),
	},
	{
		name: Compare, seedName: "larger_number",
		draw: func(r *rng) item {
			a := r.intn(compareMax)
			b := r.intn(compareMax - 1)
			if b >= a {
				b++ // distinct
			}
			return item{fam: Compare, nums: []int{a, b}}
		},
		templates: templates(
			"Which number is larger: {a} or {b}?", "",
			"Which of the two numbers is larger?", "{a} or {b}",
		),
	},
	{
		name: Count, seedName: "count_letter",
		draw: func(r *rng) item {
			w := words[r.intn(len(words))]
			var l byte
			if r.float() < 0.75 {
				l = w[r.intn(len(w))] // a letter of the word
			} else {
				for l = 'a' + byte(r.intn(26)); strings.IndexByte(w, l) >= 0; l = 'a' + byte(r.intn(26)) {
				}
			}
			return item{fam: Count, word: w, letter: l}
		},
		templates: templates(
			"How many times does the letter {l} appear in the word {w}?", "",
			"Count how many times the letter {l} appears in the word.", "{w}",
		),
	},
	{
		name: Reverse, seedName: "reverse_word",
		draw: func(r *rng) item { return item{fam: Reverse, word: words[r.intn(len(words))]} },
		templates: templates(
			"Reverse the letters of the word.", "{w}",
			"Write the word {w} backwards.", "",
		),
	},
	{
		name: Sort, seedName: "sort_numbers",
		draw: func(r *rng) item {
			nums := make([]int, 0, sortLen)
			for len(nums) < sortLen {
				if v := r.intn(sortMax); !slices.Contains(nums, v) {
					nums = append(nums, v)
				}
			}
			return item{fam: Sort, nums: nums}
		},
		templates: templates(
			"Sort the numbers from smallest to largest.", "{list}",
			"Put these numbers in increasing order.", "{list}",
		),
	},
	{
		name: Upper, seedName: "uppercase_word",
		draw: func(r *rng) item { return item{fam: Upper, word: words[r.intn(len(words))]} },
		templates: templates(
			"Write the word in capital letters.", "{w}",
			"Write {w} in uppercase letters.", "",
		),
	},
}

// familyOf returns a family's spec; an unknown family is a programmer error.
func familyOf(f Family) *familySpec {
	for i := range specs {
		if specs[i].name == f {
			return &specs[i]
		}
	}
	panic(fmt.Sprintf("world: unknown family %q", f))
}

// ParseFamily checks a family name.
func ParseFamily(name string) (Family, error) {
	for _, s := range specs {
		if string(s.name) == name {
			return s.name, nil
		}
	}
	return "", fmt.Errorf("world: unknown family %q (want one of %v)", name, Families())
}

// templates builds templates from (instruction, input) pairs.
func templates(pairs ...string) []template {
	var out []template
	for i := 0; i+1 < len(pairs); i += 2 {
		t := template{instruction: pairs[i], input: pairs[i+1]}
		t.reInstr, t.groupsInstr = compileTemplate(t.instruction)
		t.reInput, t.groupsInput = compileTemplate(t.input)
		out = append(out, t)
	}
	return out
}

var placeholder = regexp.MustCompile(`\{(a|b|list|w|l)\}`)

// Patterns of the placeholders when parsing: bounded lengths, canonical
// numbers (no leading zeros), lowercase words.
var placeholderPattern = map[string]string{
	"a":    `(0|[1-9][0-9]{0,2})`,
	"b":    `(0|[1-9][0-9]{0,2})`,
	"list": `((?:0|[1-9][0-9]{0,2})(?:, (?:0|[1-9][0-9]{0,2})){1,7})`,
	"w":    `([a-z]{1,24})`,
	"l":    `([a-z])`,
}

// compileTemplate turns a template into an anchored regular expression and
// the placeholder name of each of its groups.
func compileTemplate(s string) (*regexp.Regexp, []string) {
	var b strings.Builder
	var groups []string
	b.WriteString("^")
	last := 0
	for _, m := range placeholder.FindAllStringSubmatchIndex(s, -1) {
		b.WriteString(regexp.QuoteMeta(s[last:m[0]]))
		name := s[m[2]:m[3]]
		b.WriteString(placeholderPattern[name])
		groups = append(groups, name)
		last = m[1]
	}
	b.WriteString(regexp.QuoteMeta(s[last:]))
	b.WriteString("$")
	return regexp.MustCompile(b.String()), groups
}

// Solve recognises an instruction and input written in one of the world's
// phrasings (white space is normalised) and returns the task with its answer
// and most typical wrong answer; ok is false for any other text. It lets
// generated instructions (self-instruct's verifier hook) and dataset rows be
// checked exactly.
func Solve(instruction, input string) (t Task, ok bool) {
	instruction, input = verify.Normalize(instruction), verify.Normalize(input)
	if len(instruction) > 256 || len(input) > 256 {
		return Task{}, false // far longer than any phrasing
	}
	for _, spec := range specs {
		for _, tpl := range spec.templates {
			mi := tpl.reInstr.FindStringSubmatch(instruction)
			if mi == nil {
				continue
			}
			mn := tpl.reInput.FindStringSubmatch(input)
			if mn == nil {
				continue
			}
			it := item{fam: spec.name}
			vals := map[string]string{}
			for i, g := range tpl.groupsInstr {
				vals[g] = mi[i+1]
			}
			for i, g := range tpl.groupsInput {
				vals[g] = mn[i+1]
			}
			if !it.fill(vals) {
				continue
			}
			return it.task(tpl, nil), true
		}
	}
	return Task{}, false
}

// fill sets the item's fields from parsed placeholder values; false when they
// do not make a well-formed item of the family.
func (it *item) fill(vals map[string]string) bool {
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n } // the patterns admit only 1–3 digits
	switch it.fam {
	case Add, Compare:
		a, okA := vals["a"]
		b, okB := vals["b"]
		if !okA || !okB {
			return false
		}
		it.nums = []int{atoi(a), atoi(b)}
		if it.fam == Compare && it.nums[0] == it.nums[1] {
			return false // no larger number
		}
	case Sort:
		l, ok := vals["list"]
		if !ok {
			return false
		}
		for _, f := range strings.Split(l, ", ") {
			it.nums = append(it.nums, atoi(f))
		}
	case Count:
		w, okW := vals["w"]
		l, okL := vals["l"]
		if !okW || !okL {
			return false
		}
		it.word, it.letter = w, l[0]
	case Reverse, Upper:
		w, ok := vals["w"]
		if !ok {
			return false
		}
		it.word = w
	}
	return true
}

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, sep)
}

// reverseString reverses an ASCII word byte by byte.
func reverseString(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}
