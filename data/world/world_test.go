package world

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
)

func TestDeterminism(t *testing.T) {
	a, b := New(7), New(7)
	for _, s := range []Split{Train, Valid, Test} {
		if !reflect.DeepEqual(a.Tasks(s, 120), b.Tasks(s, 120)) {
			t.Fatalf("%v: same seed, different tasks", s)
		}
	}
	if !reflect.DeepEqual(a.Corpus(200), b.Corpus(200)) {
		t.Fatal("same seed, different corpus")
	}
	if !reflect.DeepEqual(a.Preferences(Train, 50), b.Preferences(Train, 50)) ||
		!reflect.DeepEqual(a.Prompts(Train, 50), b.Prompts(Train, 50)) ||
		!reflect.DeepEqual(a.Instructions(Train, 50), b.Instructions(Train, 50)) ||
		!reflect.DeepEqual(a.SeedTasks(), b.SeedTasks()) {
		t.Fatal("same seed, different derived data")
	}
	// Results do not depend on the order of calls.
	c := New(7)
	c.Corpus(10)
	c.Prompts(Test, 10)
	if !reflect.DeepEqual(c.Tasks(Train, 120), a.Tasks(Train, 120)) {
		t.Fatal("earlier calls changed later results")
	}
	if reflect.DeepEqual(New(8).Tasks(Train, 120), a.Tasks(Train, 120)) {
		t.Fatal("different seeds gave the same tasks")
	}
}

// TestGolden pins the data of seed 1: cached pipeline outputs are keyed by
// the seed, so generation must never change silently (a deliberate change
// updates this hash and Version).
func TestGolden(t *testing.T) {
	w := New(1)
	h := sha256.New()
	for _, x := range w.Tasks(Train, 60) {
		fmt.Fprintf(h, "%+v\n", x)
	}
	for _, d := range w.Corpus(30) {
		fmt.Fprintf(h, "%q\n", d)
	}
	const want = "8821443b95b1f3e37ef490e34deafe0da296473f0309dbe9b722caf9767954dd"
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("seed 1 data hash %s, want %s", got, want)
	}
}

func TestSplitsDisjoint(t *testing.T) {
	w := New(3)
	owner := map[string]Split{}
	for _, s := range []Split{Train, Valid, Test} {
		for _, x := range w.Tasks(s, 1200) {
			if x.Split() != s {
				t.Fatalf("%v task %q has split %v", s, x.Key, x.Split())
			}
			if o, ok := owner[x.Key]; ok && o != s {
				t.Fatalf("item %q in both %v and %v", x.Key, o, s)
			}
			owner[x.Key] = s
		}
	}
	// The phrasing never changes the split: the key is canonical.
	for _, x := range w.Tasks(Test, 300) {
		for _, tpl := range familyOf(x.Family).templates {
			got, ok := Solve(x.Instruction, x.Input)
			if !ok || got.Key != x.Key {
				t.Fatalf("Solve(%q, %q) = %+v, %v", x.Instruction, x.Input, got, ok)
			}
			it := parseKeyItem(t, x.Key)
			if k := it.task(tpl, nil).Key; k != x.Key {
				t.Fatalf("rephrased key %q != %q", k, x.Key)
			}
		}
	}
	// Swapped operands are the same item.
	if (item{fam: Add, nums: []int{3, 9}}).key() != (item{fam: Add, nums: []int{9, 3}}).key() {
		t.Fatal("3+9 and 9+3 have different keys")
	}
}

// parseKeyItem rebuilds an item from its key (test helper).
func parseKeyItem(t *testing.T, key string) item {
	f, rest, _ := strings.Cut(key, "|")
	it := item{fam: Family(f)}
	switch it.fam {
	case Add, Compare, Sort:
		for _, s := range strings.Split(rest, ",") {
			n, err := strconv.Atoi(s)
			if err != nil {
				t.Fatalf("key %q: %v", key, err)
			}
			it.nums = append(it.nums, n)
		}
	case Count:
		wd, l, _ := strings.Cut(rest, "|")
		it.word, it.letter = wd, l[0]
	default:
		it.word = rest
	}
	return it
}

func TestAnswersAndWrongs(t *testing.T) {
	w := New(11)
	for _, s := range []Split{Train, Valid, Test} {
		for _, x := range w.Tasks(s, 600) {
			if !Check(x, x.Answer) {
				t.Fatalf("answer fails: %+v", x)
			}
			if x.Wrong == "" || Check(x, x.Wrong) {
				t.Fatalf("wrong answer missing or passes: %+v", x)
			}
			for _, wr := range parseKeyItem(t, x.Key).wrongs() {
				if Check(x, wr) {
					t.Fatalf("candidate wrong %q passes: %+v", wr, x)
				}
			}
			got, ok := Solve(x.Instruction, x.Input)
			if !ok || got.Answer != x.Answer || got.Family != x.Family || got.Key != x.Key {
				t.Fatalf("Solve(%q, %q) = %+v, %v; want %+v", x.Instruction, x.Input, got, ok, x)
			}
		}
	}
}

func TestAnswersByHand(t *testing.T) {
	for _, c := range []struct {
		instr, input, answer, wrong string
		misconceived                bool
	}{
		{"What is 17 + 25?", "", "42", "32", true}, // the carry forgotten
		{"What is 12 + 25?", "", "37", "38", false},
		{"Add the two numbers.", "49 and 0", "49", "50", false},
		{"Which number is larger: 14 or 41?", "", "41", "14", false},
		{"Which number is larger: 9 or 12?", "", "12", "9", true},                           // compared as strings
		{"How many times does the letter a appear in the word banana?", "", "3", "1", true}, // only the first counted
		{"How many times does the letter b appear in the word banana?", "", "1", "2", false},
		{"Count how many times the letter z appears in the word.", "apple", "0", "1", false},
		{"Reverse the letters of the word.", "apple", "elppa", "apple", false},
		{"Write the word bee backwards.", "", "eeb", "bee", false},
		{"Sort the numbers from smallest to largest.", "9, 2, 5", "2, 5, 9", "9, 5, 2", false},
		{"Sort the numbers from smallest to largest.", "9, 12, 5", "5, 9, 12", "12, 5, 9", true}, // sorted as strings
		{"Write the word in capital letters.", "apple", "APPLE", "Apple", true},                  // only the first letter
	} {
		x, ok := Solve(c.instr, c.input)
		if !ok || x.Answer != c.answer || x.Wrong != c.wrong || x.Misconceived != c.misconceived {
			t.Errorf("Solve(%q, %q) = %+v, %v; want answer %q wrong %q misconceived %v", c.instr, c.input, x, ok, c.answer, c.wrong, c.misconceived)
		}
	}
	for _, c := range [][2]string{
		{"What is 17 + 25", ""},                       // no question mark
		{"What is 017 + 25?", ""},                     // non-canonical number
		{"Which number is larger: 4 or 4?", ""},       // no larger number
		{"Reverse the letters of the word.", "Apple"}, // not a lowercase word
		{"Tell me a story.", ""},
	} {
		if x, ok := Solve(c[0], c[1]); ok {
			t.Errorf("Solve(%q, %q) accepted: %+v", c[0], c[1], x)
		}
	}
}

func TestCheckNormalizesWhitespace(t *testing.T) {
	x, _ := Solve("Sort the numbers from smallest to largest.", "9, 2, 5")
	for ans, want := range map[string]bool{
		"2, 5, 9": true, " 2,  5,\n9 \n": true, "2,5,9": false, "2, 5, 9.": false, "": false,
	} {
		if Check(x, ans) != want {
			t.Errorf("Check(%q) = %v, want %v", ans, !want, want)
		}
	}
	u, _ := Solve("Write the word in capital letters.", "cat")
	if Check(u, "cat") || Check(u, "Cat") || !Check(u, "CAT") {
		t.Error("Check must be case-sensitive")
	}
}

func TestBalanceAndNoRepeats(t *testing.T) {
	w := New(5)
	tasks := w.Tasks(Test, 100)
	per := map[Family]int{}
	keys := map[string]bool{}
	for _, x := range tasks {
		per[x.Family]++
		if keys[x.Key] {
			t.Errorf("item %q repeated while the split has unused items", x.Key)
		}
		keys[x.Key] = true
	}
	for _, f := range Families() {
		if n := per[f]; n < 100/6 || n > 100/6+1 {
			t.Errorf("family %s: %d of 100 tasks", f, n)
		}
	}
	w.Families = []Family{Add, Sort}
	for _, x := range w.Tasks(Train, 40) {
		if x.Family != Add && x.Family != Sort {
			t.Fatalf("family %s not selected", x.Family)
		}
	}
	// A word family's split holds a few dozen items; asking for more repeats
	// items rather than failing.
	w.Families = []Family{Upper}
	if n := len(w.Tasks(Test, 500)); n != 500 {
		t.Fatalf("got %d tasks, want 500", n)
	}
}

// alpacaDoc parses a document written by Task.Text back into instruction,
// input and response.
var alpacaDoc = regexp.MustCompile(`(?s)^Below is an instruction that describes a task(?:, paired with an input that provides further context)?\. ` +
	`Write a response that appropriately completes the request\.\n\n### Instruction:\n(.*?)\n\n(?:### Input:\n(.*?)\n\n)?### Response:(.*)$`)

// TestTaskPrompt pins a task's prompt to PROMPT_DICT of Stanford Alpaca's
// train.py, filled as format_map does, with and without an input, and its
// training text to the prompt followed directly by the answer.
func TestTaskPrompt(t *testing.T) {
	const withInput = "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
	const noInput = "Below is an instruction that describes a task. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n{instruction}\n\n### Response:"
	fill := func(tpl, instr, in string) string {
		return strings.NewReplacer("{instruction}", instr, "{input}", in).Replace(tpl)
	}
	x, ok := Solve("Reverse the letters of the word.", "cat")
	if !ok {
		t.Fatal("Solve does not recognise a reverse task")
	}
	if got, want := x.Prompt(), fill(withInput, x.Instruction, "cat"); got != want {
		t.Errorf("with input:\n%q\nwant\n%q", got, want)
	}
	if x.Text() != x.Prompt()+"tac" {
		t.Errorf("Text = %q", x.Text())
	}
	x, ok = Solve("What is 17 + 25?", "")
	if !ok {
		t.Fatal("Solve does not recognise an addition")
	}
	if got, want := x.Prompt(), fill(noInput, "What is 17 + 25?", ""); got != want {
		t.Errorf("no input:\n%q\nwant\n%q", got, want)
	}
}

// proseFacts parse every fact sentence of Corpus prose into an item key.
var proseFacts = []struct {
	re  *regexp.Regexp
	key func(m []string) string
}{
	{regexp.MustCompile(`^(\d+) plus (\d+) is \d+$`), numKey(Add)},
	{regexp.MustCompile(`^The sum of (\d+) and (\d+) is \d+$`), numKey(Add)},
	{regexp.MustCompile(`^If you add (\d+) and (\d+), you get \d+$`), numKey(Add)},
	{regexp.MustCompile(`^(\d+) is larger than (\d+)$`), numKey(Compare)},
	{regexp.MustCompile(`^Of (\d+) and (\d+), the larger number is \d+$`), numKey(Compare)},
	{regexp.MustCompile(`^(\d+) is smaller than (\d+)$`), numKey(Compare)},
	{regexp.MustCompile(`^The word ([a-z]+) has no letter ([a-z])$`), wordLetterKey(1, 2)},
	{regexp.MustCompile(`^The letter ([a-z]) appears (?:once|\d+ times) in the word ([a-z]+)$`), wordLetterKey(2, 1)},
	{regexp.MustCompile(`^In the word ([a-z]+), the letter ([a-z]) appears \d+ times?$`), wordLetterKey(1, 2)},
	{regexp.MustCompile(`^The word ([a-z]+) written backwards is [a-z]+$`), wordKey(Reverse)},
	{regexp.MustCompile(`^Spelled backwards, ([a-z]+) becomes [a-z]+$`), wordKey(Reverse)},
	{regexp.MustCompile(`^Sorted from smallest to largest, the numbers ([\d, ]+) become [\d, ]+$`), numKey(Sort)},
	{regexp.MustCompile(`^In increasing order, ([\d, ]+) is [\d, ]+$`), numKey(Sort)},
	{regexp.MustCompile(`^In capital letters, ([a-z]+) is [A-Z]+$`), wordKey(Upper)},
	{regexp.MustCompile(`^The word ([a-z]+) in uppercase is [A-Z]+$`), wordKey(Upper)},
}

func numKey(f Family) func(m []string) string {
	return func(m []string) string {
		var nums []int
		for _, g := range m[1:] {
			for _, s := range strings.Split(g, ", ") {
				n, _ := strconv.Atoi(s)
				nums = append(nums, n)
			}
		}
		return item{fam: f, nums: nums}.key()
	}
}

func wordKey(f Family) func(m []string) string {
	return func(m []string) string { return item{fam: f, word: m[1]}.key() }
}

func wordLetterKey(wi, li int) func(m []string) string {
	return func(m []string) string { return item{fam: Count, word: m[wi], letter: m[li][0]}.key() }
}

func isIntro(s string) bool {
	for _, in := range proseIntros {
		for _, x := range in {
			if x == s+"." {
				return true
			}
		}
	}
	return false
}

// TestCorpusUsesTrainOnly parses every document back: solved tasks through
// Solve, prose sentence by sentence, and checks that each item is Train.
func TestCorpusUsesTrainOnly(t *testing.T) {
	w := New(2)
	const n = 3000
	var tasks, noisy, facts, misconceived, mistaken int
	for i, d := range w.Corpus(n) {
		if m := alpacaDoc.FindStringSubmatch(d); m != nil {
			x, ok := Solve(m[1], m[2])
			if !ok {
				t.Fatalf("doc %d: unparsable task %q", i, d)
			}
			if x.Split() != Train {
				t.Fatalf("doc %d: %v item %q in the corpus", i, x.Split(), x.Key)
			}
			tasks++
			switch {
			case x.Misconceived:
				misconceived++
				if m[3] == x.Wrong {
					mistaken++
				} else if !Check(x, m[3]) {
					t.Fatalf("doc %d: a misconceived task answered neither right nor with the misconception: %q", i, d)
				}
			case !Check(x, m[3]):
				noisy++
			}
			continue
		}
		if !strings.HasSuffix(d, ".") {
			t.Fatalf("doc %d: prose does not end with a full stop: %q", i, d)
		}
		sentences := strings.Split(strings.TrimSuffix(d, "."), ". ")
		if !isIntro(sentences[0]) {
			t.Fatalf("doc %d: no introduction: %q", i, d)
		}
		for _, s := range sentences[1:] {
			matched := false
			for _, p := range proseFacts {
				if m := p.re.FindStringSubmatch(s); m != nil {
					if k := p.key(m); SplitOf(k) != Train {
						t.Fatalf("doc %d: %v item %q stated in %q", i, SplitOf(k), k, s)
					}
					matched = true
					facts++
					break
				}
			}
			if !matched {
				t.Fatalf("doc %d: unrecognised sentence %q", i, s)
			}
		}
	}
	share := float64(tasks) / n
	if math.Abs(share-DefaultCorpusTaskShare) > 0.05 {
		t.Errorf("task share %.3f, want %.2f", share, DefaultCorpusTaskShare)
	}
	noise := float64(noisy) / float64(tasks-misconceived)
	if math.Abs(noise-DefaultCorpusNoise) > 0.03 {
		t.Errorf("noise %.3f, want %.2f", noise, DefaultCorpusNoise)
	}
	if misconceived < tasks/5 {
		t.Errorf("%d of %d task documents misconceived, want at least a fifth", misconceived, tasks)
	}
	if rate := float64(mistaken) / float64(misconceived); math.Abs(rate-DefaultCorpusMisconception) > 0.05 {
		t.Errorf("misconception rate %.3f, want %.2f", rate, DefaultCorpusMisconception)
	}
	if facts < 3*(n-tasks) {
		t.Errorf("%d facts in %d prose documents, want ≥ 3 each", facts, n-tasks)
	}

	w.CorpusNoise, w.CorpusMisconception = 0, 0
	w.CorpusTaskShare = 1
	for _, d := range w.Corpus(300) {
		m := alpacaDoc.FindStringSubmatch(d)
		if m == nil {
			t.Fatalf("not a task document: %q", d)
		}
		if x, _ := Solve(m[1], m[2]); !Check(x, m[3]) {
			t.Fatalf("wrong answer with CorpusNoise and CorpusMisconception 0: %q", d)
		}
	}
}

func TestDerivedData(t *testing.T) {
	w := New(4)
	for _, p := range w.Preferences(Valid, 120) {
		x := p.Task
		if p.Prompt != x.Prompt() || p.Chosen != x.Answer || p.Rejected != x.Wrong || x.Split() != Valid {
			t.Fatalf("bad preference %+v", p)
		}
		if !Check(x, p.Chosen) || Check(x, p.Rejected) || p.Chosen == p.Rejected {
			t.Fatalf("preference not decided by Check: %+v", p)
		}
	}
	for _, p := range w.Prompts(Test, 60) {
		if p.Prompt != p.Task.Prompt() || p.Task.Split() != Test {
			t.Fatalf("bad prompt %+v", p)
		}
	}
	for _, in := range w.Instructions(Train, 120) {
		x, ok := Solve(in.Instruction, in.Input)
		if !ok || !Check(x, in.Output) || x.Split() != Train {
			t.Fatalf("bad instruction %+v", in)
		}
	}
	// Each kind of data draws its own items.
	if reflect.DeepEqual(w.Tasks(Train, 30), w.draw("preferences", Train, 30)) {
		t.Fatal("preferences repeat the tasks stream")
	}
}

// TestRows: the world's rows become dataset rows field by field, in order.
func TestRows(t *testing.T) {
	w := New(4)
	ins := w.Instructions(Train, 5)
	prefs := w.Preferences(Train, 5)
	prompts := w.Prompts(Train, 5)
	insRows, prefRows, promptRows := ins.Rows(), prefs.Rows(), prompts.Rows()
	if len(insRows) != 5 || len(prefRows) != 5 || len(promptRows) != 5 {
		t.Fatalf("%d, %d and %d rows, want 5 of each", len(insRows), len(prefRows), len(promptRows))
	}
	for i := range 5 {
		if r := insRows[i]; !reflect.DeepEqual(r, data.Instruction{Instruction: ins[i].Instruction, Input: ins[i].Input, Output: ins[i].Output}) {
			t.Errorf("instruction %d: row %+v of %+v", i, r, ins[i])
		}
		if r := prefRows[i]; !reflect.DeepEqual(r, data.Preference{Prompt: prefs[i].Prompt, Chosen: prefs[i].Chosen, Rejected: prefs[i].Rejected}) {
			t.Errorf("pair %d: row %+v of %+v", i, r, prefs[i])
		}
		if r := promptRows[i]; !reflect.DeepEqual(r, data.Prompt{Prompt: prompts[i].Prompt}) {
			t.Errorf("prompt %d: row %+v of %+v", i, r, prompts[i])
		}
	}
}

func TestSeedTasks(t *testing.T) {
	w := New(9)
	seeds := w.SeedTasks()
	want := 0
	for _, f := range Families() {
		want += len(familyOf(f).templates)
	}
	if len(seeds) != want {
		t.Fatalf("%d seed tasks, want %d (one per phrasing)", len(seeds), want)
	}
	var buf bytes.Buffer
	if err := WriteSeedTasks(&buf, seeds); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	ids := map[string]bool{}
	i := 0
	for sc.Scan() {
		var raw map[string]any
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for _, k := range []string{"id", "name", "instruction", "instances", "is_classification"} {
			if _, ok := raw[k]; !ok {
				t.Fatalf("line %d lacks %q: %s", i+1, k, sc.Text())
			}
		}
		var s SeedTask
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(s, seeds[i]) {
			t.Fatalf("line %d round trip: %+v != %+v", i+1, s, seeds[i])
		}
		if ids[s.ID] || s.ID != fmt.Sprintf("seed_task_%d", i) {
			t.Fatalf("bad id %q", s.ID)
		}
		ids[s.ID] = true
		for _, in := range s.Instances {
			x, ok := Solve(s.Instruction, in.Input)
			if !ok || !Check(x, in.Output) || x.Split() != Train {
				t.Fatalf("seed %s: instance %+v not a correct Train task", s.ID, in)
			}
		}
		i++
	}
	if i != len(seeds) {
		t.Fatalf("%d lines for %d seeds", i, len(seeds))
	}
}

func TestWords(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range words {
		if seen[w] {
			t.Errorf("duplicate word %q", w)
		}
		seen[w] = true
		if !regexp.MustCompile(`^[a-z]{3,8}$`).MatchString(w) {
			t.Errorf("word %q is not 3–8 lowercase letters", w)
		}
		if reverseString(w) == w {
			t.Errorf("palindrome %q", w)
		}
	}
}

func TestScoreAndParse(t *testing.T) {
	tasks := New(1).Tasks(Test, 12)
	answers := make([]string, len(tasks))
	for i, x := range tasks {
		answers[i] = x.Wrong
		if i%3 == 0 {
			answers[i] = x.Answer
		}
	}
	acc, err := Score(tasks, answers)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Correct != 4 || acc.Total != 12 || acc.Rate() != 4.0/12 {
		t.Errorf("accuracy %+v", acc)
	}
	sum := 0
	for _, c := range acc.PerFamily {
		sum += c[1]
	}
	if sum != 12 {
		t.Errorf("per-family totals %v", acc.PerFamily)
	}
	if _, err := Score(tasks, answers[:3]); err == nil {
		t.Error("length mismatch accepted")
	}
	for _, s := range []Split{Train, Valid, Test} {
		if p, err := ParseSplit(s.String()); err != nil || p != s {
			t.Errorf("ParseSplit(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := ParseSplit("dev"); err == nil {
		t.Error("unknown split accepted")
	}
	if f, err := ParseFamily("sort"); err != nil || f != Sort {
		t.Errorf("ParseFamily: %v %v", f, err)
	}
	if _, err := ParseFamily("divide"); err == nil {
		t.Error("unknown family accepted")
	}
}

func FuzzSolve(f *testing.F) {
	for _, x := range New(1).Tasks(Train, 24) {
		f.Add(x.Instruction, x.Input)
	}
	f.Add("Sort the numbers from smallest to largest.", "1, 1, 1")
	f.Add("What is 999 + 999?", "")
	f.Fuzz(func(t *testing.T, instr, input string) {
		x, ok := Solve(instr, input)
		if !ok {
			return
		}
		if !Check(x, x.Answer) {
			t.Fatalf("answer fails Check: %+v", x)
		}
		if x.Wrong != "" && Check(x, x.Wrong) {
			t.Fatalf("wrong answer passes Check: %+v", x)
		}
		if x.Split() != SplitOf(x.Key) {
			t.Fatal("split mismatch")
		}
		y, ok := Solve(x.Instruction, x.Input)
		if !ok || !reflect.DeepEqual(x, y) {
			t.Fatalf("re-solving the rendering: %+v, %v != %+v", y, ok, x)
		}
	})
}

func BenchmarkCorpus(b *testing.B) {
	w := New(1)
	var bytes int
	for b.Loop() {
		bytes = 0
		for _, d := range w.Corpus(1000) {
			bytes += len(d)
		}
	}
	b.SetBytes(int64(bytes))
}

func BenchmarkTasksTest(b *testing.B) {
	w := New(1)
	for b.Loop() {
		w.Tasks(Test, 600)
	}
}

// Conversations are two or three exchanges of Train tasks without input,
// each answered right, deterministic for a seed.
func TestConversations(t *testing.T) {
	w := New(4)
	convs := w.Conversations(Train, 300)
	if !reflect.DeepEqual(convs, New(4).Conversations(Train, 300)) {
		t.Fatal("same seed, different conversations")
	}
	fams := map[Family]int{}
	turns := map[int]int{}
	for i, c := range convs {
		if !c.Conversational() || c.Instruction != "" || c.Output != "" {
			t.Fatalf("conversation %d: %+v", i, c)
		}
		n := len(c.Messages) / 2
		turns[n]++
		if len(c.Messages)%2 != 0 || n < 2 || n > 3 {
			t.Fatalf("conversation %d: %d messages", i, len(c.Messages))
		}
		for k := 0; k < len(c.Messages); k += 2 {
			u, a := c.Messages[k], c.Messages[k+1]
			if u.Role != data.RoleUser || a.Role != data.RoleAssistant {
				t.Fatalf("conversation %d: roles %q, %q", i, u.Role, a.Role)
			}
			task, ok := Solve(u.Content, "")
			if !ok || task.Split() != Train || !Check(task, a.Content) {
				t.Fatalf("conversation %d turn %d: %q → %q is not a right answer to a Train task", i, k/2, u.Content, a.Content)
			}
			fams[task.Family]++
		}
	}
	if fams[Sort] != 0 || len(fams) != len(Families())-1 || turns[2] == 0 || turns[3] == 0 {
		t.Errorf("families %v, turns %v", fams, turns)
	}
}
