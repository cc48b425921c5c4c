package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestFormatAlpaca(t *testing.T) {
	withInput := "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n### Instruction:\nSum these.\n\n### Input:\n1, 2\n\n### Response:"
	if got := FormatAlpaca("Sum these.", "1, 2"); got != withInput {
		t.Errorf("with input:\n%q\nwant\n%q", got, withInput)
	}
	noInput := "Below is an instruction that describes a task. " +
		"Write a response that appropriately completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:"
	if got := FormatAlpaca("Say hi.", ""); got != noInput {
		t.Errorf("without input:\n%q\nwant\n%q", got, noInput)
	}
	// PROMPT_DICT of Stanford Alpaca's train.py, filled as format_map does:
	// the texts go in verbatim, braces and percent signs included.
	const dictWithInput = "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
	const dictNoInput = "Below is an instruction that describes a task. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n{instruction}\n\n### Response:"
	fill := func(tpl, instr, in string) string {
		return strings.NewReplacer("{instruction}", instr, "{input}", in).Replace(tpl)
	}
	for _, c := range [][2]string{
		{"Reverse {x}.", "cat"}, {"Give 100% of %s and %d%%.", "%v {input}"}, {"{instruction}", ""},
		{"Two\n\nparagraphs.", "a\tb"}, {"", "input only"},
	} {
		want := fill(dictWithInput, c[0], c[1])
		if c[1] == "" {
			want = fill(dictNoInput, c[0], "")
		}
		if got := FormatAlpaca(c[0], c[1]); got != want {
			t.Errorf("FormatAlpaca(%q, %q):\n%q\nwant\n%q", c[0], c[1], got, want)
		}
	}
}

func TestEncodePromptCompletion(t *testing.T) {
	prompt := FormatAlpaca("Name a prime.", "")
	completion := "Seven is prime."
	for _, name := range fixtures {
		tok := loadFixture(t, name)
		for _, addBOS := range []bool{false, true} {
			e := tok.EncodePromptCompletion(prompt, completion, addBOS, true)
			if len(e.IDs) != len(e.Mask) {
				t.Fatalf("%s: %d ids, %d mask entries", name, len(e.IDs), len(e.Mask))
			}
			body := e.IDs
			if addBOS && tok.BOS() >= 0 {
				if e.IDs[0] != tok.BOS() || e.Mask[0] {
					t.Errorf("%s: first token %d (mask %v), want unmasked BOS", name, e.IDs[0], e.Mask[0])
				}
				body = e.IDs[1:]
			}
			if !slices.Equal(body[:len(body)-1], tok.Encode(prompt+completion, false)) {
				t.Errorf("%s: ids are not the encoding of prompt+completion", name)
			}
			if last := len(e.IDs) - 1; e.IDs[last] != tok.EOS() || !e.Mask[last] {
				t.Errorf("%s: last token %d (mask %v), want EOS in the loss", name, e.IDs[last], e.Mask[last])
			}
			// Prompt tokens are out of the loss, and the completion's
			// tokens (with EOS) decode to the completion.
			n := len(tok.Encode(prompt, false))
			off := len(e.IDs) - len(body)
			for i := 0; i < off+n; i++ {
				if e.Mask[i] {
					t.Fatalf("%s: prompt token %d in the loss", name, i)
				}
			}
			eos, _ := tok.Token(tok.EOS())
			if got := tok.Turns(e); len(got) != 1 || strings.TrimSpace(got[0]) != completion+eos {
				t.Errorf("%s: completion tokens decode to %q", name, got)
			}
		}
	}
}

// TestEncodePromptCompletionStraddle checks a boundary inside a token: the
// token holding completion text is in the loss.
func TestEncodePromptCompletionStraddle(t *testing.T) {
	tok := loadFixture(t, "qwen3")
	e := tok.EncodePromptCompletion("Hel", "lo", false, false)
	if !slices.Equal(e.IDs, tok.Encode("Hello", false)) {
		t.Fatalf("ids %v", e.IDs)
	}
	if !e.Mask[len(e.Mask)-1] {
		t.Errorf("the token holding the completion is not in the loss: %v", e.Mask)
	}
}

type chatCase struct {
	Name    string `json:"name"`
	Fixture string `json:"fixture"`
	Vars    struct {
		Messages            []Message `json:"messages"`
		AddGenerationPrompt bool      `json:"add_generation_prompt"`
		EnableThinking      *bool     `json:"enable_thinking"`
	} `json:"vars"`
	Output *string `json:"output"`
}

func readChatGolden(t *testing.T) []chatCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "jinja_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g struct {
		Cases []chatCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	var out []chatCase
	for _, c := range g.Cases {
		if c.Fixture != "" && c.Output != nil && c.Vars.EnableThinking == nil {
			out = append(out, c)
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d chat cases", len(out))
	}
	return out
}

// TestRenderChatJinja renders the fixtures' chat templates through the
// tokenizer (its config supplying bos_token and the rest) as Jinja2 did.
func TestRenderChatJinja(t *testing.T) {
	for _, c := range readChatGolden(t) {
		tok := loadFixture(t, c.Fixture)
		got, err := tok.RenderChat(TemplateJinja, c.Vars.Messages, c.Vars.AddGenerationPrompt)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		if got != *c.Output {
			t.Errorf("%s:\n got  %q\n want %q", c.Name, got, *c.Output)
		}
	}
}

// TestBuiltinTemplates checks the built-in ChatML and Llama-3 templates
// against the fixtures' own templates where those agree with them: the
// Llama-3 fixture template always ends with the assistant header, and
// Qwen3's adds an empty think block to a final assistant turn.
func TestBuiltinTemplates(t *testing.T) {
	for _, c := range readChatGolden(t) {
		tok := loadFixture(t, c.Fixture)
		msgs := c.Vars.Messages
		switch {
		case c.Fixture == "llama3" && c.Vars.AddGenerationPrompt:
			got, err := tok.RenderChat(TemplateLlama3, msgs, true)
			if err != nil || got != *c.Output {
				t.Errorf("%s: llama3 built-in:\n got  %q (%v)\n want %q", c.Name, got, err, *c.Output)
			}
		case c.Fixture == "qwen3" && msgs[len(msgs)-1].Role != "assistant" && !slices.ContainsFunc(msgs, func(m Message) bool { return m.Role == "tool" }):
			got, err := tok.RenderChat(TemplateChatML, msgs, c.Vars.AddGenerationPrompt)
			if err != nil || got != *c.Output {
				t.Errorf("%s: chatml built-in:\n got  %q (%v)\n want %q", c.Name, got, err, *c.Output)
			}
		}
	}
}

var conversation = []Message{
	{"system", "Be brief."},
	{"user", "Hi!"},
	{"assistant", "Hello. How can I help?"},
	{"user", "Summarize: the cat sat on the mat."},
	{"assistant", "A cat sat on a mat."},
}

func TestEncodeChat(t *testing.T) {
	cases := []struct {
		fixture, template string
		turns             []string
	}{
		{"qwen3", TemplateJinja, []string{"Hello. How can I help?<|im_end|>", "<think>\n\n</think>\n\nA cat sat on a mat.<|im_end|>"}},
		{"qwen3", TemplateChatML, []string{"Hello. How can I help?<|im_end|>", "A cat sat on a mat.<|im_end|>"}},
		{"llama3", TemplateJinja, []string{"Hello. How can I help?<|eot_id|>", "A cat sat on a mat.<|eot_id|>"}},
		{"llama3", TemplateLlama3, []string{"Hello. How can I help?<|eot_id|>", "A cat sat on a mat.<|eot_id|>"}},
	}
	for _, c := range cases {
		tok := loadFixture(t, c.fixture)
		e, err := tok.EncodeChat(c.template, conversation)
		if err != nil {
			t.Errorf("%s %s: %v", c.fixture, c.template, err)
			continue
		}
		text, err := tok.RenderChat(c.template, conversation, false)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(e.IDs, tok.Encode(text, false)) {
			t.Errorf("%s %s: ids are not the encoding of the rendered text", c.fixture, c.template)
		}
		if got := tok.Turns(e); !slices.Equal(got, c.turns) {
			t.Errorf("%s %s: completion turns %q, want %q", c.fixture, c.template, got, c.turns)
		}
	}
}

func TestEncodeChatAlpaca(t *testing.T) {
	tok := loadFixture(t, "llama2")
	e, err := tok.EncodeChat(TemplateAlpaca, []Message{{"user", "Say hi."}, {"assistant", "Hi there"}})
	if err != nil {
		t.Fatal(err)
	}
	want := tok.EncodePromptCompletion(FormatAlpaca("Say hi.", ""), "Hi there", true, true)
	if !slices.Equal(e.IDs, want.IDs) || !slices.Equal(e.Mask, want.Mask) {
		t.Errorf("EncodeChat(alpaca) = %v %v\nEncodePromptCompletion = %v %v", e.IDs, e.Mask, want.IDs, want.Mask)
	}
	// Several exchanges are one Alpaca document each, BOS…EOS, as the
	// pretraining corpus packs documents; a system message opens the
	// first prompt; the loss covers every reply and its EOS.
	conv := []Message{{"system", "Be kind."}, {"user", "Say hi."}, {"assistant", "Hi there"}, {"user", "Say bye."}, {"assistant", "Bye"}}
	e, err = tok.EncodeChat(TemplateAlpaca, conv)
	if err != nil {
		t.Fatal(err)
	}
	first := tok.EncodePromptCompletion("Be kind.\n\n"+FormatAlpaca("Say hi.", ""), "Hi there", true, true)
	second := tok.EncodePromptCompletion(FormatAlpaca("Say bye.", ""), "Bye", true, true)
	if ids := append(slices.Clone(first.IDs), second.IDs...); !slices.Equal(e.IDs, ids) {
		t.Errorf("two exchanges: %v, want the two documents %v", e.IDs, ids)
	}
	if got := tok.Turns(e); !slices.Equal(got, []string{"Hi there</s>", "Bye</s>"}) {
		t.Errorf("two exchanges: loss on %q", got)
	}
	gen, err := tok.RenderChat(TemplateAlpaca, conv[:4], true)
	if err != nil || !strings.HasSuffix(gen, "</s><s>"+FormatAlpaca("Say bye.", "")) {
		t.Errorf("generation prompt %q, %v", gen, err)
	}
	for _, bad := range [][]Message{
		{{"user", "a"}, {"user", "b"}},
		{{"assistant", "a"}},
		{{"user", "a"}, {"system", "s"}, {"assistant", "b"}},
		{{"system", "s"}},
	} {
		if _, err := tok.EncodeChat(TemplateAlpaca, bad); err == nil {
			t.Errorf("alpaca accepted %v", bad)
		}
	}
}

// TestEncodeChatGenerationTags uses {% generation %} blocks when the
// template has them.
func TestEncodeChatGenerationTags(t *testing.T) {
	base := NewByteLevel([]string{"<|bos|>", "<|eos|>", "<|end|>"})
	tok := *base
	tok.ChatTemplate = "{% for m in messages %}[{{ m.role }}] {% if m.role == 'assistant' %}{% generation %}{{ m.content }}<|end|>{% endgeneration %}{% else %}{{ m.content }}<|end|>{% endif %}\n{% endfor %}"
	e, err := tok.EncodeChat(TemplateJinja, conversation)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Hello. How can I help?<|end|>", "A cat sat on a mat.<|end|>"}
	if got := tok.Turns(e); !slices.Equal(got, want) {
		t.Errorf("turns %q, want %q", got, want)
	}
}

func TestChatErrors(t *testing.T) {
	tok := NewByteLevel([]string{"<|eos|>"})
	if _, err := tok.RenderChat("vicuna", conversation, false); err == nil || !strings.Contains(err.Error(), "unknown chat template") {
		t.Errorf("unknown template: %v", err)
	}
	if _, err := tok.RenderChat(TemplateJinja, conversation, false); err == nil || !strings.Contains(err.Error(), "no chat_template") {
		t.Errorf("missing chat_template: %v", err)
	}
	c := *tok
	c.ChatTemplate = "{% if messages[0].role != 'user' %}{{ raise_exception('must start with user') }}{% endif %}"
	if _, err := c.RenderChat(TemplateJinja, conversation, false); err == nil || !strings.Contains(err.Error(), "must start with user") {
		t.Errorf("raise_exception: %v", err)
	}
	c.ChatTemplate = "{% macro f() %}{% endmacro %}"
	if _, err := c.RenderChat(TemplateJinja, conversation, false); err == nil || !strings.Contains(err.Error(), "unsupported tag") {
		t.Errorf("unsupported construct: %v", err)
	}
	// A template with no special token ending the assistant turn cannot
	// be masked without generation blocks.
	c.ChatTemplate = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
	if _, err := c.EncodeChat(TemplateJinja, conversation); err == nil {
		t.Error("no end-of-turn token: no error")
	}
}
