package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// chatReferenceCase is one case of testdata/chat/chat_reference.json,
// made by transformers.js (testdata/chat/gen_chat_reference.mjs).
type chatReferenceCase struct {
	Template     string    `json:"template"`
	Tokenizer    string    `json:"tokenizer"`
	ChatTemplate string    `json:"chat_template"` // "" = the fixture's own
	Messages     []Message `json:"messages"`
	Text         string    `json:"text"`
	IDs          []int     `json:"ids"`
	Mask         []int     `json:"mask"`
	Error        string    `json:"error"`
}

// TestChatReference renders conversations with the Qwen3 and Llama-3
// fixtures' own chat templates, Llama-3-Instruct's, a ChatML template and
// Mistral's, and checks the text, the ids and the assistant mask (every
// assistant turn with its end-of-turn token) against transformers.js, and
// that a template's own refusal (Mistral's role alternation) is an error
// here too. gotune's built-in chatml and llama3 templates must match the
// reference's ChatML and Llama-3-Instruct templates wherever those add no
// default system prompt.
func TestChatReference(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "chat", "chat_reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ref struct{ Cases []chatReferenceCase }
	if err := json.Unmarshal(raw, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Cases) < 25 {
		t.Fatalf("%d reference cases", len(ref.Cases))
	}
	toks := map[string]*Tokenizer{}
	masked, errs := 0, 0
	for i, c := range ref.Cases {
		tk := toks[c.Tokenizer]
		if tk == nil {
			if tk, err = Load(filepath.Join("testdata", c.Tokenizer)); err != nil {
				t.Fatal(err)
			}
			toks[c.Tokenizer] = tk
		}
		own := tk.ChatTemplate
		if c.ChatTemplate != "" {
			tk.ChatTemplate = c.ChatTemplate
		}
		text, rerr := tk.RenderChat(TemplateJinja, c.Messages, false)
		enc, eerr := tk.EncodeChat(TemplateJinja, c.Messages)
		tk.ChatTemplate = own
		if c.Error != "" {
			if rerr == nil || eerr == nil {
				t.Errorf("case %d (%s): transformers.js refuses (%s); gotune renders %q", i, c.Template, c.Error, text)
			}
			errs++
			continue
		}
		if rerr != nil || eerr != nil {
			t.Errorf("case %d (%s): %v / %v", i, c.Template, rerr, eerr)
			continue
		}
		if text != c.Text {
			t.Errorf("case %d (%s): renders\n%q\nwant\n%q", i, c.Template, text, c.Text)
			continue
		}
		if !slices.Equal(enc.IDs, c.IDs) {
			t.Errorf("case %d (%s): ids\n%v\nwant\n%v", i, c.Template, enc.IDs, c.IDs)
			continue
		}
		mask := make([]int, len(enc.Mask))
		for k, m := range enc.Mask {
			if m {
				mask[k] = 1
				masked++
			}
		}
		if !slices.Equal(mask, c.Mask) {
			t.Errorf("case %d (%s): mask\n%v\nwant\n%v\nturns %q", i, c.Template, mask, c.Mask, tk.Turns(enc))
		}
		builtin := map[string]string{"chatml": TemplateChatML, "llama3-instruct": TemplateLlama3}[c.Template]
		if builtin == "" || (c.Template == "chatml" && c.Messages[0].Role != "system") {
			continue
		}
		b, err := tk.EncodeChat(builtin, c.Messages)
		if err != nil {
			t.Errorf("case %d: built-in %s: %v", i, builtin, err)
		} else if !slices.Equal(b.IDs, c.IDs) || !slices.Equal(b.Mask, enc.Mask) {
			t.Errorf("case %d: built-in %s differs from the %s template:\n%q", i, builtin, c.Template, tk.Decode(b.IDs, false))
		}
	}
	if masked == 0 || errs == 0 {
		t.Fatalf("%d masked tokens, %d refusals: the fixture does not exercise both", masked, errs)
	}
}
