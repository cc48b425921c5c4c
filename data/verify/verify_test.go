package verify

import "testing"

func TestExactMatch(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"42", "42", true}, {" 42\n", "42", true}, {"2,  5, 9", "2, 5, 9", true},
		{"a\tb\r\nc", "a b c", true},
		{"42", "43", false}, {"", "0", false}, {"Apple", "APPLE", false}, {"2,5", "2, 5", false},
	} {
		if got := ExactMatch(c.a, c.b); got != c.want {
			t.Errorf("ExactMatch(%q, %q) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"  ":               "",
		" two  words\n":    "two words",
		"a\t\tb\u00a0c":    "a b c", // U+00A0 is white space to unicode.IsSpace
		"already clean":    "already clean",
		"\nAPPLE, Banana ": "APPLE, Banana",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}
