package verify

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// taskCases are outputs Task must accept (ok) or refuse.
var taskCases = []struct {
	inst, in, out string
	ok            bool
}{
	{"Evaluate the expression.", "10 / 4", "2.5", true},
	{"Evaluate the expression.", "10 / 3", "About 3.33", true},
	{"Evaluate the expression.", "10 / 3", "3.4", false},
	{"What is the value of (2 + 3) × 4?", "", "(2 + 3) × 4 = 20", true},
	{"What is the value of (2 + 3) × 4?", "", "25", false},
	{"Find the sum of the numbers.", "1, 2, 3.5", "6.5", true},
	{"Find the sum of the numbers.", "1, 2, 3.5", "7", false},
	{"Put the words in reverse alphabetical order.", "b, c, a", "c, b, a", true},
	{"Put the words in reverse alphabetical order.", "b, c, a", "a, b, c", false},
	{"Sort the numbers in ascending order.", "3, -1, 2", "-1, 2, 3.", true},
	{"Spell the word backwards.", "gotune", "\"enutog\"", true},
	{"Which number is the greatest?", "3, 9, 4", "The greatest is 9.", true},
	{"Which number is the greatest?", "3, 9, 4", "4", false},
	{"Is the number even or odd?", "12", "It is even.", true},
	{"Is the number even or odd?", "12", "Odd, not even", false},
	{"Is this number prime?", "97", "Yes, 97 is prime.", true},
	{"Is this number prime?", "97", "No.", false},
	{"Is this number prime?", "1", "No, 1 is not prime.", true},
	{"How many characters are in the string?", "a b", "3", true},
	{"Replace the word \"red\" with \"blue\".", "Red roses, red wine, bored.", "blue roses, blue wine, bored.", true},
	{"Replace the word \"red\" with \"blue\".", "Red roses, red wine, bored.", "blue roses, blue wine,boblue.", false},
	{"Convert the text to uppercase.", "go tune", "\"GO TUNE\"", true},
	{"Convert the text to uppercase.", "go tune", "Go Tune", false},
	{"Remove all spaces from the sentence.", "a b  c", "abc", true},
	{"Count the vowels in the word.", "education", "There are 5 vowels.", true},
	{"Count the vowels in the word.", "education", "4", false},
	{"How many words are in the sentence?", "one two three", "3", true},
	{"What is the average of the numbers?", "2, 4, 9", "5", true},
	{"Subtract the second number from the first.", "10, 4", "6", true},
	{"Subtract the second number from the first.", "10, 4", "14", false},
}

func TestTask(t *testing.T) {
	for _, c := range taskCases {
		err := Task(c.inst, c.in, c.out)
		if (err == nil) != c.ok || errors.Is(err, ErrUnknownTask) {
			t.Errorf("%q / %q → %q: error %v, want ok=%v", c.inst, c.in, c.out, err, c.ok)
		}
	}
}

// A task of no known family gets no verdict, whatever its output.
func TestTaskUnknown(t *testing.T) {
	for _, c := range [][3]string{
		{"Write a haiku about autumn leaves.", "", "Leaves drift and settle"},
		{"Name the capital of France.", "", "Paris"},
		{"Name the capital of France.", "", "Berlin"},
		{"Sort the numbers.", "7", "7"}, // one item: nothing to sort
	} {
		if err := Task(c[0], c[1], c[2]); !errors.Is(err, ErrUnknownTask) {
			t.Errorf("%q / %q → %q: error %v, want ErrUnknownTask", c[0], c[1], c[2], err)
		}
	}
}

func TestEvalExpression(t *testing.T) {
	good := map[string]float64{
		"1 + 2 * 3":       7,
		"(1 + 2) * 3":     9,
		"10 - 4 - 3":      3,
		"64 / 4 / 2":      8,
		"-3 * -(2 + 1)":   9,
		"2.5 × 4 ÷ 5":     2,
		"7 − 10":          -3,
		" 12*(7+5)-9 ":    135,
		"((((1))))":       1,
		".5 + .25":        0.75,
		"1 / 8 * 16 + -2": 0,
	}
	for s, want := range good {
		got, err := EvalExpression(s)
		if err != nil || math.Abs(got-want) > 1e-12 {
			t.Errorf("EvalExpression(%q) = %g, %v; want %g", s, got, err, want)
		}
	}
	for _, s := range []string{"", "1 +", "(1 + 2", "1 + 2)", "3 / 0", "2 ** 3", "1..2 + 1", "abc", strings.Repeat("(", 40) + "1" + strings.Repeat(")", 40), strings.Repeat("1+", 200) + "1"} {
		if _, err := EvalExpression(s); err == nil {
			t.Errorf("EvalExpression(%.30q) accepted", s)
		}
	}
}

func FuzzEvalExpression(f *testing.F) {
	for _, s := range []string{"1 + 2 * 3", "(1+2)*-3", "10 / 3", "((", "2 × 4 ÷ 0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := EvalExpression(s)
		if err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Fatalf("EvalExpression(%q) = %g without error", s, v)
		}
	})
}

func FuzzTask(f *testing.F) {
	for _, c := range taskCases {
		f.Add(c.inst, c.in, c.out)
	}
	f.Fuzz(func(t *testing.T, inst, in, out string) {
		if len(inst)+len(in)+len(out) > 4096 {
			return
		}
		Task(inst, in, out) // must not panic
	})
}
