package serve

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestRequestFieldParsing(t *testing.T) {
	prompts := map[string]struct {
		texts []string
		ids   [][]int
		ok    bool
	}{
		`"hi"`:          {[]string{"hi"}, nil, true},
		`["a", "b"]`:    {[]string{"a", "b"}, nil, true},
		`[1, 2, 3]`:     {nil, [][]int{{1, 2, 3}}, true},
		`[[1], [2, 3]]`: {nil, [][]int{{1}, {2, 3}}, true},
		`[]`:            {nil, nil, false},
		`null`:          {nil, nil, false},
		`{"text": "x"}`: {nil, nil, false},
		`[1, "a"]`:      {nil, nil, false},
	}
	for raw, want := range prompts {
		r := completionRequest{Prompt: json.RawMessage(raw)}
		texts, ids, err := r.prompts()
		if (err == nil) != want.ok || !slices.Equal(texts, want.texts) || len(ids) != len(want.ids) {
			t.Errorf("prompt %s: %q %v %v", raw, texts, ids, err)
		}
	}
	stops := map[string][]string{`null`: nil, `"\n"`: {"\n"}, `""`: nil, `["a", "", "b"]`: {"a", "b"}}
	for raw, want := range stops {
		f := samplingFields{Stop: json.RawMessage(raw)}
		got, err := f.stops()
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("stop %s: %q %v", raw, got, err)
		}
	}
	for _, raw := range []string{`3`, `["a","b","c","d","e"]`, `[1]`} {
		f := samplingFields{Stop: json.RawMessage(raw)}
		if _, err := f.stops(); err == nil {
			t.Errorf("stop %s accepted", raw)
		}
	}
	contents := map[string]string{`"x"`: "x", `[{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]`: "ab", `null`: ""}
	for raw, want := range contents {
		got, err := messageIn{Content: json.RawMessage(raw)}.text()
		if err != nil || got != want {
			t.Errorf("content %s: %q %v", raw, got, err)
		}
	}
}

// FuzzRequestParsing feeds arbitrary bodies to the request decoders.
func FuzzRequestParsing(f *testing.F) {
	f.Add([]byte(`{"prompt": ["a", "b"], "stop": ["x"], "max_tokens": 3}`))
	f.Add([]byte(`{"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}], "stop": "\n"}`))
	f.Add([]byte(`{"prompt": [[1, 2], [3]], "n": 2}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var c completionRequest
		if json.Unmarshal(body, &c) == nil {
			texts, ids, err := c.prompts()
			if err == nil && len(texts) == 0 && len(ids) == 0 {
				t.Fatal("no prompt and no error")
			}
			if s, err := c.stops(); err == nil && len(s) > 4 {
				t.Fatalf("%d stop strings", len(s))
			}
		}
		var ch chatRequest
		if json.Unmarshal(body, &ch) == nil {
			for _, m := range ch.Messages {
				m.text()
			}
		}
	})
}
