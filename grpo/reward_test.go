package grpo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHTTPReward posts the samples to a test endpoint and reads its
// scores; a wrong status, count, body or a null score, and a timeout, are
// errors naming the row, prompt and completion.
func TestHTTPReward(t *testing.T) {
	ss := []Sample{{Row: 0, Prompt: "p0", Completion: "m"}, {Row: 2, Prompt: "p2", Completion: "q"}}
	var mode string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in []CommandInput
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.Method != http.MethodPost {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		switch mode {
		case "ok":
			out := make([]float64, len(in))
			for i, x := range in {
				out[i] = float64(x.Row) + float64(len(x.Completion))
			}
			json.NewEncoder(w).Encode(out)
		case "status":
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
		case "count":
			fmt.Fprint(w, "[1]")
		case "body":
			fmt.Fprint(w, `{"scores": [1, 2]}`)
		case "null":
			fmt.Fprint(w, "[1, null]")
		case "slow":
			time.Sleep(time.Second)
		}
	}))
	defer srv.Close()
	run := func(m string, timeout time.Duration) ([]float64, error) {
		mode = m
		return httpReward(srv.URL, timeout).score(context.Background(), ss)
	}
	got, err := run("ok", 10*time.Second)
	if err != nil || !slices.Equal(got, []float64{2, 4}) {
		t.Fatalf("scores %v (%v), want 2 (row 1 + 1 byte) and 4 (row 3 + 1 byte)", got, err)
	}
	for _, c := range []struct {
		mode string
		want []string
	}{
		{"status", []string{"503", "overloaded", "row 1", `prompt "p0"`}},
		{"count", []string{"1 scores for 2 completions", "row 1"}},
		{"body", []string{"not a JSON array"}},
		{"null", []string{"no score", "row 3", `completion "q"`}},
		{"slow", []string{"deadline", "row 1"}},
	} {
		_, err := run(c.mode, 300*time.Millisecond)
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %v, want it to hold %s", c.mode, err, w)
			}
		}
	}
}
