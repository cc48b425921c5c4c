package jinja

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// goldenCase is one rendering made by Jinja2 (testdata/gen_jinja_golden.py).
type goldenCase struct {
	Name     string          `json:"name"`
	Fixture  string          `json:"fixture"`
	Template string          `json:"template"`
	Vars     json.RawMessage `json:"vars"`
	Output   *string         `json:"output"`
	Error    string          `json:"error"`
}

func readGolden(t *testing.T) []goldenCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "jinja_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []goldenCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) < 50 {
		t.Fatalf("only %d golden cases", len(g.Cases))
	}
	return g.Cases
}

func fixtureTemplate(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "testdata", name, "tokenizer_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.ChatTemplate
}

// TestGolden renders every case as Jinja2 did: the fixture chat templates
// over several conversations, and one template per supported feature;
// where Jinja2 raised an error, the renderer must fail too.
func TestGolden(t *testing.T) {
	for _, c := range readGolden(t) {
		t.Run(c.Name, func(t *testing.T) {
			src := c.Template
			if c.Fixture != "" {
				src = fixtureTemplate(t, c.Fixture)
			}
			v, err := DecodeJSON(c.Vars)
			if err != nil {
				t.Fatal(err)
			}
			vars := map[string]any{}
			d := v.(*Dict)
			for _, k := range d.Keys() {
				vars[k], _ = d.Get(k)
			}
			tmpl, err := Parse(src)
			var out string
			if err == nil {
				out, err = tmpl.Render(vars)
			}
			if c.Output == nil {
				if err == nil {
					t.Fatalf("rendered %q; Jinja2 failed with %s", out, c.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("error %v; want %q", err, *c.Output)
			}
			if out != *c.Output {
				t.Errorf("got\n%q\nwant\n%q", out, *c.Output)
			}
		})
	}
}

func TestGenerationSpans(t *testing.T) {
	tmpl, err := Parse("{% for m in messages %}<{{ m.role }}>{% if m.role == 'assistant' %}{% generation %}{{ m.content }}</s>{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []any{
		map[string]any{"role": "user", "content": "q1"},
		map[string]any{"role": "assistant", "content": "a1"},
		map[string]any{"role": "user", "content": "q2"},
		map[string]any{"role": "assistant", "content": "a2"},
	}
	out, spans, err := tmpl.RenderSpans(map[string]any{"messages": msgs})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range spans {
		got = append(got, out[s.Start:s.End])
	}
	if strings.Join(got, "|") != "a1</s>|a2</s>" {
		t.Errorf("generation spans %q in %q", got, out)
	}
}

func TestErrors(t *testing.T) {
	for _, src := range []string{
		"{% if x %}never closed",
		"{% for x in %}{% endfor %}",
		"{% macro m() %}{% endmacro %}",
		"{{ 'unterminated }}",
		"{{ 1 + }}",
		"{% endfor %}",
		"{{ x | }}",
		"{% set %}",
		"{% raw %}no end",
		"{{ a[] }}",
	} {
		if _, err := Parse(src); err == nil {
			t.Errorf("Parse(%q): no error", src)
		}
	}
	defer func(n int) { maxSteps = n }(maxSteps)
	maxSteps = 100_000
	for _, src := range []string{
		"{{ x.y }}",
		"{{ [1,2].append(3) }}",
		"{{ 1 / 0 }}",
		"{% break %}",
		"{{ 'x' * 100000000 }}",
		"{% for a, b in [1, 2] %}{% endfor %}",
		"{{ nofunc() }}",
		"{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
	} {
		tmpl, err := Parse(src)
		if err != nil {
			t.Errorf("Parse(%q): %v", src, err)
			continue
		}
		if out, err := tmpl.Render(nil); err == nil {
			t.Errorf("Render(%q) = %q, want an error", src, out)
		}
	}
}

// FuzzTemplate checks that parsing and rendering arbitrary templates never
// panics.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{
		"{% for m in messages %}{{ m.role }}{% endfor %}",
		"{{ x[::-1]|join(',') }}{% if a is defined and a.b %}y{% endif %}",
		"{%- set ns = namespace(a=1) -%}{{ ns.a ~ 'x' }}",
		"{{ '\\u00e9'|tojson(indent=2) }}{# c #}",
		"{% raw %}{{{% endraw %}",
	} {
		f.Add(s)
	}
	msgs := []any{map[string]any{"role": "user", "content": "hi"}}
	f.Fuzz(func(t *testing.T, src string) {
		tmpl, err := Parse(src)
		if err != nil {
			return
		}
		_, _ = tmpl.Render(map[string]any{"messages": msgs, "x": []any{1, "a"}, "a": map[string]any{"b": 2}})
	})
}
