package data

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestComputeStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sft.arrow")
	var rows []Instruction
	for i := 1; i <= 100; i++ {
		rows = append(rows, Instruction{Instruction: strings.Repeat("w ", i), Output: strings.Repeat("o", i%10+1)})
	}
	if err := WriteInstructions(path, rows); err != nil {
		t.Fatal(err)
	}
	// Count words, as a stand-in tokenizer.
	st, err := ComputeStats(path, StatsOptions{Count: func(s string) int { return len(strings.Fields(s)) }, Unit: "words"})
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind != KindInstructions || st.Rows != 100 || st.Unit != "words" {
		t.Fatalf("stats %+v", st)
	}
	p := st.Prompt
	if p.Count != 100 || p.Min != 1 || p.Max != 100 || p.Mean != 50.5 || p.P50 != 50 || p.P90 != 90 || p.P99 != 99 {
		t.Fatalf("prompt stats %+v", p)
	}
	wantHist := []HistogramBin{{1, 2, 1}, {2, 4, 2}, {4, 8, 4}, {8, 16, 8}, {16, 32, 16}, {32, 64, 32}, {64, 128, 37}}
	if !reflect.DeepEqual(p.Histogram, wantHist) {
		t.Fatalf("histogram %+v", p.Histogram)
	}
	if st.Completion.Min != 1 || st.Completion.Max != 1 {
		t.Fatalf("completion stats %+v", st.Completion)
	}
	var out bytes.Buffer
	if err := st.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"instructions, 100 rows", "prompt length (words): min 1, mean 50.5, p50 50, p90 90, p99 99, max 100",
		"[    64,    128)       37 ########################################"} {
		if !strings.Contains(text, want) {
			t.Fatalf("text lacks %q:\n%s", want, text)
		}
	}
}

func TestComputeStatsPreferencesBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prefs.arrow")
	if err := WritePreferences(path, sampleConversational()); err != nil {
		t.Fatal(err)
	}
	st, err := ComputeStats(path, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Without a tokenizer lengths are bytes of the joined message contents.
	if st.Unit != "bytes" || st.Kind != KindPreferences || st.Prompt.Min != len("Be kind.\nHi") || st.Prompt.Max != len("Name a colour") || st.Rejected.Max != len("Go away.") || st.Rejected.Min != 0 {
		t.Fatalf("stats %+v, rejected %+v", st, st.Rejected)
	}
}

// TestComputeStatsConversations measures a conversational instructions
// dataset: the assistant turns are the completion, the rest the prompt;
// a file holds one form.
func TestComputeStatsConversations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "chat.arrow")
	rows := []Instruction{
		{Messages: []Message{{"system", "Be kind."}, {"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}, {"assistant", "Bye!"}}},
		{Messages: []Message{{"user", "2+2?"}, {"assistant", "4"}}},
	}
	if err := WriteInstructions(path, rows); err != nil {
		t.Fatal(err)
	}
	back, err := ReadInstructions(path)
	if err != nil || !reflect.DeepEqual(back, rows) {
		t.Fatalf("read back %+v, %v", back, err)
	}
	st, err := ComputeStats(path, StatsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Kind != KindInstructions || st.Rows != 2 || st.Prompt.Max != len("Be kind.\nHi\nBye") || st.Completion.Max != len("Hello\nBye!") || st.Completion.Min != 1 {
		t.Fatalf("stats %+v", st)
	}
	mixed := append(rows, Instruction{Instruction: "i", Output: "o"})
	if err := WriteInstructions(path, mixed); err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("mixed forms: %v", err)
	}
}

func TestHead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prefs.arrow")
	if err := WritePreferences(path, samplePreferences()); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := Head(path, 1, &out); err != nil {
		t.Fatal(err)
	}
	want := `{"prompt":"Sky colour?","chosen":"Blue.","rejected":"Green.","margin":null,"score_chosen":8,"score_rejected":2.5,"ref_chosen_logps":null,"ref_rejected_logps":null}` + "\n"
	if out.String() != want {
		t.Fatalf("head\n got %s\nwant %s", out.String(), want)
	}
	out.Reset()
	if err := Head(path, -1, &out); err == nil || out.Len() != 0 {
		t.Fatalf("head of -1 rows: error %v, wrote %q", err, out.String())
	}
	conv := filepath.Join(t.TempDir(), "conv.arrow")
	WritePreferences(conv, sampleConversational())
	if err := Head(conv, 10, &out); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	if !strings.HasPrefix(lines[0], `{"prompt":[{"role":"system","content":"Be kind."},{"role":"user","content":"Hi"}],`) {
		t.Fatalf("struct fields out of schema order: %s", lines[0])
	}
	var row struct {
		Prompt []Message `json:"prompt"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &row); err != nil || !reflect.DeepEqual(row.Prompt, sampleConversational()[0].PromptMessages) {
		t.Fatalf("line %s: %v", lines[0], err)
	}
}
