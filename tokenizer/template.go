package tokenizer

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/tokenizer/jinja"
)

// Encoded is a token sequence with its loss mask: Mask[i] is true when
// token i is a completion token, counted in the loss.
type Encoded struct {
	IDs  []int
	Mask []bool
}

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// The prompts of Stanford Alpaca (Taori et al. 2023, train.py PROMPT_DICT),
// with and without an input; the completion is the output, followed by
// the EOS token.
const (
	alpacaWithInput = "Below is an instruction that describes a task, paired with an input that provides further context. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n%s\n\n### Input:\n%s\n\n### Response:"
	alpacaNoInput = "Below is an instruction that describes a task. " +
		"Write a response that appropriately completes the request.\n\n" +
		"### Instruction:\n%s\n\n### Response:"
)

// FormatAlpaca returns the Alpaca prompt for an instruction and an
// optional input: PROMPT_DICT of Stanford Alpaca's train.py byte for byte,
// the no-input variant when input is empty, as train.py chooses. A solved
// example is this prompt followed directly by the output, as train.py
// concatenates source and target. The texts are inserted verbatim: braces
// and percent signs in them are not placeholders.
func FormatAlpaca(instruction, input string) string {
	if input != "" {
		return fmt.Sprintf(alpacaWithInput, instruction, input)
	}
	return fmt.Sprintf(alpacaNoInput, instruction)
}

// EncodePromptCompletion encodes prompt+completion as one text, as
// Stanford Alpaca does, and marks as completion every token from the first
// one that the prompt's own encoding does not share (so a token straddling
// the boundary counts as completion). addBOS prepends BOS (not in the
// loss); addEOS appends EOS (in the loss), when the tokenizer has them.
func (t *Tokenizer) EncodePromptCompletion(prompt, completion string, addBOS, addEOS bool) Encoded {
	full := prompt + completion
	enc := t.encodeMasked(full, []span{{len(prompt), len(full)}}, addBOS)
	if addEOS && t.eos >= 0 {
		enc.IDs = append(enc.IDs, t.eos)
		enc.Mask = append(enc.Mask, true)
	}
	return enc
}

// encodeMasked encodes text (recognising special tokens written in it, and
// adding none) and marks as completion the tokens of the given byte spans.
// A span's boundary b falls after the tokens that text[:b] encodes to
// alike; a token straddling a boundary belongs to the span.
func (t *Tokenizer) encodeMasked(text string, spans []span, addBOS bool) Encoded {
	ids := t.Encode(text, false)
	mask := make([]bool, len(ids))
	boundary := func(b int) (int, bool) {
		switch {
		case b <= 0:
			return 0, true
		case b >= len(text):
			return len(ids), true
		}
		pre := t.Encode(text[:b], false)
		n := 0
		for n < len(pre) && n < len(ids) && pre[n] == ids[n] {
			n++
		}
		return n, n == len(pre)
	}
	for _, s := range spans {
		from, _ := boundary(s.start)
		to, exact := boundary(s.end)
		if !exact && to < len(ids) {
			to++ // the straddling token holds completion text
		}
		for i := from; i < to; i++ {
			mask[i] = true
		}
	}
	if addBOS && t.bos >= 0 {
		ids = append([]int{t.bos}, ids...)
		mask = append([]bool{false}, mask...)
	}
	return Encoded{IDs: ids, Mask: mask}
}

// Chat template names for RenderChat and EncodeChat.
const (
	TemplateAlpaca = "alpaca" // Stanford Alpaca's prompt and reply, one document per exchange
	TemplateChatML = "chatml" // <|im_start|>role\n...<|im_end|>\n (Qwen)
	TemplateLlama3 = "llama3" // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
	TemplateJinja  = "jinja"  // the chat_template of tokenizer_config.json
)

// RenderChat renders a conversation with a named template; with
// addGenerationPrompt the text ends where the assistant's reply begins.
func (t *Tokenizer) RenderChat(template string, messages []Message, addGenerationPrompt bool) (string, error) {
	text, _, err := t.renderChat(template, messages, addGenerationPrompt)
	return text, err
}

// EncodeChat encodes a conversation with a named template, marking the
// assistant turns (their text and end-of-turn token) as completion. For a
// Jinja template the turns are the template's {% generation %} blocks
// when it has them; otherwise each assistant turn runs from the end of
// the generation prompt (the conversation up to it rendered with
// add_generation_prompt) to the first special token after it, which must
// therefore be the template's end-of-turn marker.
func (t *Tokenizer) EncodeChat(template string, messages []Message) (Encoded, error) {
	text, spans, err := t.renderChat(template, messages, false)
	if err != nil {
		return Encoded{}, err
	}
	if template == TemplateJinja && spans == nil {
		if spans, err = t.deriveTurns(text, messages); err != nil {
			return Encoded{}, err
		}
	}
	return t.encodeMasked(text, spans, template == TemplateAlpaca), nil
}

// renderChat renders a conversation and returns the spans of the
// assistant turns when the template knows them.
func (t *Tokenizer) renderChat(template string, messages []Message, gen bool) (string, []span, error) {
	var b strings.Builder
	var spans []span
	switch template {
	case TemplateAlpaca:
		// Each exchange is one Alpaca document (prompt, reply, EOS);
		// the documents follow each other as the pretraining corpus
		// packs them, every one after the first opened by BOS (the
		// first's BOS is added outside the text). A system message
		// opens the first prompt as its own paragraph.
		system, turns := "", messages
		if len(turns) > 0 && turns[0].Role == "system" {
			system, turns = turns[0].Content, turns[1:]
		}
		if len(turns) == 0 {
			return "", nil, fmt.Errorf("alpaca template: no user message")
		}
		for i, m := range turns {
			want := "user"
			if i%2 == 1 {
				want = "assistant"
			}
			if m.Role != want {
				return "", nil, fmt.Errorf("alpaca template: message %d: role %q, want %s (an optional system message, then user and assistant alternating)", i+len(messages)-len(turns), m.Role, want)
			}
			if want == "user" {
				if i > 0 {
					if bos, ok := t.Token(t.bos); ok {
						b.WriteString(bos)
					}
				}
				prompt := FormatAlpaca(m.Content, "")
				if i == 0 && system != "" {
					prompt = system + "\n\n" + prompt
				}
				b.WriteString(prompt)
				continue
			}
			start := b.Len()
			b.WriteString(m.Content)
			if eos, ok := t.Token(t.eos); ok {
				b.WriteString(eos)
			}
			spans = append(spans, span{start, b.Len()})
		}
	case TemplateChatML:
		for _, m := range messages {
			b.WriteString("<|im_start|>" + m.Role + "\n")
			start := b.Len()
			b.WriteString(m.Content + "<|im_end|>")
			if m.Role == "assistant" {
				spans = append(spans, span{start, b.Len()})
			}
			b.WriteString("\n")
		}
		if gen {
			b.WriteString("<|im_start|>assistant\n")
		}
	case TemplateLlama3:
		if bos, ok := t.Token(t.bos); ok {
			b.WriteString(bos)
		}
		for _, m := range messages {
			b.WriteString("<|start_header_id|>" + m.Role + "<|end_header_id|>\n\n")
			start := b.Len()
			b.WriteString(strings.TrimFunc(m.Content, isPySpace) + "<|eot_id|>")
			if m.Role == "assistant" {
				spans = append(spans, span{start, b.Len()})
			}
		}
		if gen {
			b.WriteString("<|start_header_id|>assistant<|end_header_id|>\n\n")
		}
	case TemplateJinja:
		text, js, err := t.renderJinja(messages, gen)
		if err != nil {
			return "", nil, err
		}
		for _, s := range js {
			spans = append(spans, span{s.Start, s.End})
		}
		return text, spans, nil
	default:
		return "", nil, fmt.Errorf("unknown chat template %q (want %s, %s, %s or %s)",
			template, TemplateAlpaca, TemplateChatML, TemplateLlama3, TemplateJinja)
	}
	return b.String(), spans, nil
}

// isPySpace is Python's str.isspace, which Jinja's trim uses.
func isPySpace(r rune) bool {
	return r == ' ' || (r >= '\t' && r <= '\r') || (r >= 0x1c && r <= 0x1f) || r == 0x85 || r == 0xA0 ||
		r == 0x1680 || (r >= 0x2000 && r <= 0x200A) || r == 0x2028 || r == 0x2029 || r == 0x202F ||
		r == 0x205F || r == 0x3000
}

// renderJinja renders the tokenizer's chat template as transformers'
// apply_chat_template does.
func (t *Tokenizer) renderJinja(messages []Message, gen bool) (string, []jinja.Span, error) {
	if t.ChatTemplate == "" {
		return "", nil, fmt.Errorf("chat template: the tokenizer has no chat_template")
	}
	tmpl, err := jinja.Parse(t.ChatTemplate)
	if err != nil {
		return "", nil, fmt.Errorf("chat template: %w", err)
	}
	msgs := make([]any, len(messages))
	for i, m := range messages {
		d := jinja.NewDict()
		d.Set("role", m.Role)
		d.Set("content", m.Content)
		msgs[i] = d
	}
	vars := map[string]any{
		"messages": msgs, "add_generation_prompt": gen, "tools": nil, "documents": nil,
	}
	for _, key := range []string{"bos_token", "eos_token", "pad_token", "unk_token"} {
		if s, _ := configToken(t.config, key); s != "" {
			vars[key] = s
		}
	}
	out, spans, err := tmpl.RenderSpans(vars)
	if err != nil {
		return "", nil, fmt.Errorf("chat template: %w", err)
	}
	return out, spans, nil
}

// deriveTurns finds the assistant turns of a rendered conversation for a
// template without generation blocks (see EncodeChat).
func (t *Tokenizer) deriveTurns(text string, messages []Message) ([]span, error) {
	var spans []span
	for i, m := range messages {
		if m.Role != "assistant" {
			continue
		}
		prefix, _, err := t.renderJinja(messages[:i], true)
		if err != nil {
			return nil, fmt.Errorf("message %d: rendering the conversation before it: %w", i, err)
		}
		if !strings.HasPrefix(text, prefix) {
			return nil, fmt.Errorf("message %d: the chat template renders the conversation before it differently when it is followed by more turns; cannot locate the assistant turn (use %q or a template with {%% generation %%} blocks)", i, TemplateChatML)
		}
		end := t.firstSpecialEnd(text, len(prefix))
		if end < 0 {
			return nil, fmt.Errorf("message %d: no special token ends the assistant turn", i)
		}
		spans = append(spans, span{len(prefix), end})
	}
	return spans, nil
}

// firstSpecialEnd returns the end of the first special added token in
// text[from:], or -1.
func (t *Tokenizer) firstSpecialEnd(text string, from int) int {
	var splits []addedSplit
	splits = t.added.find(splits, text[from:], t.added.raw)
	for _, s := range splits {
		if s.token >= 0 && t.added.tokens[s.token].Special {
			return from + s.end
		}
	}
	return -1
}

// Turns returns the text of each completion span of e, for inspection.
func (t *Tokenizer) Turns(e Encoded) []string {
	var out []string
	for i := 0; i < len(e.IDs); {
		if !e.Mask[i] {
			i++
			continue
		}
		j := i
		for j < len(e.IDs) && e.Mask[j] {
			j++
		}
		out = append(out, t.Decode(e.IDs[i:j], false))
		i = j
	}
	return out
}
