package selfinstruct

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestTokenizeLikeRougeScore(t *testing.T) {
	cases := map[string][]string{
		"Hello, WORLD!":          {"hello", "world"},
		"don't stop-believing":   {"don", "t", "stop", "believing"},
		"café au lait":           {"caf", "au", "lait"}, // é is not in [a-z0-9]
		"  3.14 is π ":           {"3", "14", "is"},
		"":                       nil,
		"!!!":                    nil,
		"Step1: mix_2 cups":      {"step1", "mix", "2", "cups"},
		"KELVIN \u212a and ÀB c": {"kelvin", "k", "and", "b", "c"}, // K (U+212A) lowercases to k
	}
	for in, want := range cases {
		if got := Tokenize(in); !slices.Equal(got, want) {
			t.Errorf("Tokenize(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRougeLHandComputed(t *testing.T) {
	cases := []struct {
		a, b string
		want float64
	}{
		// LCS "the cat on the mat" = 5 of 6 and 6: F = 2·5/(6+6).
		{"the cat sat on the mat", "the cat lay on the mat", 10.0 / 12},
		// LCS give·three·tips·healthy = 4 of 6 and 7: F = 2·4/13.
		{"Give three tips for staying healthy.", "Give me three tips to stay healthy", 8.0 / 13},
		// Reversed order: LCS 1 of 4 and 4.
		{"a b c d", "d c b a", 2.0 / 8},
		{"Hello, WORLD!", "hello world", 1},
		{"completely different", "nothing shared", 0},
		{"", "something", 0},
		{"", "", 0},
		// P = 2/2, R = 2/5: F = 2·1·0.4/1.4.
		{"sort numbers", "sort these five numbers please", 0.8 / 1.4},
	}
	for _, c := range cases {
		got := RougeL(Tokenize(c.a), Tokenize(c.b))
		if math.Abs(got-c.want) > 1e-12 {
			t.Errorf("RougeL(%q, %q) = %.6f, want %.6f", c.a, c.b, got, c.want)
		}
		if back := RougeL(Tokenize(c.b), Tokenize(c.a)); math.Abs(back-got) > 1e-12 {
			t.Errorf("RougeL is not symmetric on %q, %q", c.a, c.b)
		}
	}
}

func TestEncodePrompt(t *testing.T) {
	got := EncodePrompt("HEADER", []GeneratedTask{
		{Instruction: "  Add   the\tnumbers:", Input: "2 and 3", Output: "5"},
		{Instruction: "Name a prime.", Output: "7"},
	})
	want := "HEADER\n" +
		"###\n1. Instruction: Add the numbers\n1. Input:\n2 and 3\n1. Output:\n5\n" +
		"###\n2. Instruction: Name a prime.\n2. Input:\n<noinput>\n2. Output:\n7\n" +
		"###\n3. Instruction:"
	if got != want {
		t.Fatalf("prompt:\n%s\nwant:\n%s", got, want)
	}
}

func TestParseResponse(t *testing.T) {
	good := " Sort the words in alphabetical order please.\n4. Input:\nkiwi, fig\n4. Output:\nfig, kiwi\n" +
		"###\n5. Instruction: Name the largest planet of the solar system.\n5. Input:\n<NoInput>\n5. Output:\nJupiter.\n" +
		"###\n6. Instruction: Count the words in this short sentence.\n6. Input:\nOne two three\n6. Output:\n"
	cases := []struct {
		name      string
		reply     string
		truncated bool
		want      []GeneratedTask
		rejected  map[string]int
	}{
		{"three blocks", good, false, []GeneratedTask{
			{"Sort the words in alphabetical order please.", "kiwi, fig", "fig, kiwi"},
			{"Name the largest planet of the solar system.", "", "Jupiter."},
			{"Count the words in this short sentence.", "One two three", ""},
		}, map[string]int{}},
		{"last block truncated", good, true, []GeneratedTask{
			{"Sort the words in alphabetical order please.", "kiwi, fig", "fig, kiwi"},
			{"Name the largest planet of the solar system.", "", "Jupiter."},
		}, map[string]int{ReasonTruncated: 1}},
		{"wrong number", " A.\n4. Input:\nx\n4. Output:\ny\n###\n7. Instruction: B\n7. Input:\nx\n7. Output:\ny\n", false,
			[]GeneratedTask{{"A.", "x", "y"}}, map[string]int{ReasonMalformed: 1}},
		{"missing output", " A.\n4. Input:\nx\n", false, nil, map[string]int{ReasonMalformed: 1}},
		{"field twice", " A.\n4. Input:\nx\n4. Input:\nz\n4. Output:\ny", false, nil, map[string]int{ReasonMalformed: 1}},
		{"empty reply", "", false, nil, map[string]int{ReasonMalformed: 1}},
		{"trailing separator", " A b c d.\n4. Input:\n<noinput>\n4. Output:\nok\n###\n", false,
			[]GeneratedTask{{"A b c d.", "", "ok"}}, map[string]int{}},
		// Like Alpaca's unanchored pattern, "14." also splits block 4.
		{"unanchored number", " A.\n14. Input:\nx\n4. Output:\ny", false, []GeneratedTask{{"A.\n1", "x", "y"}}, map[string]int{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rej := map[string]int{}
			got := ParseResponse(3, c.reply, c.truncated, rej)
			if !slices.Equal(got, c.want) {
				t.Fatalf("tasks\n%q\nwant\n%q", got, c.want)
			}
			if len(rej) != len(c.rejected) {
				t.Fatalf("rejected %v, want %v", rej, c.rejected)
			}
			for k, v := range c.rejected {
				if rej[k] != v {
					t.Fatalf("rejected %v, want %v", rej, c.rejected)
				}
			}
		})
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add(3, " Sort.\n4. Input:\nx\n4. Output:\ny\n###\n5. Instruction: B", true)
	f.Add(0, "###", false)
	f.Add(1, "2. Instruction:2. Input:2. Output:", false)
	f.Fuzz(func(t *testing.T, n int, reply string, truncated bool) {
		if n < 0 || n > 1000 {
			return
		}
		rej := map[string]int{}
		for _, task := range ParseResponse(n, reply, truncated, rej) {
			for _, s := range []string{task.Instruction, task.Input, task.Output} {
				if s != strings.TrimSpace(s) {
					t.Fatalf("field %q not trimmed", s)
				}
			}
		}
	})
}

func TestFilter(t *testing.T) {
	f := NewFilter(DefaultBlocklist)
	cases := []struct {
		inst, want string
	}{
		{"Sort these numbers in ascending order.", ""},
		{"Add two numbers.", ReasonTooShort},
		{"Add two numbers now", ""}, // exactly 4 words
		{strings.Repeat("word ", 150), ""},
		{strings.Repeat("word ", 151), ReasonTooLong},
		{"Describe the image in one sentence.", ReasonBlocklist},
		{"Summarise the following FILE contents briefly.", ReasonBlocklist},
		{"Explain how to go to the station.", ReasonBlocklist},
		{"Describe the imagery of this poem briefly.", ""}, // whole words only
		{"Write a program that adds two numbers.", ReasonProgram},
		{"write a program that adds two numbers.", ""}, // case-sensitive, as in Alpaca
		{"\"Quote\" this sentence back to me.", ReasonPunct},
		{"(Optional) Sort these numbers from low to high.", ReasonPunct},
		{"Étudiez cette phrase et traduisez-la maintenant.", ReasonNonASCII},
		{"¿Qué hora es ahora mismo?", ReasonNonASCII},
	}
	for _, c := range cases {
		if got := f.Check(GeneratedTask{Instruction: c.inst}); got != c.want {
			t.Errorf("Check(%.40q) = %q, want %q", c.inst, got, c.want)
		}
	}
	if got := NewFilter(nil).Check(GeneratedTask{Instruction: "Describe the image in one sentence."}); got != "" {
		t.Errorf("empty blocklist still blocks: %q", got)
	}
}
