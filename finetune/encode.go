package finetune

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/tokenizer/jinja"
)

// SequenceEncoder turns dataset rows into the token sequences a sequence scorer (a
// reward model, a PPO policy's rollouts) reads:
// prompt ids (with the tokenizer's BOS), then completion ids, then EOS. The
// prompt and the completion are encoded separately, so a sequence built
// from generated completion ids (PPO rollouts) is laid out exactly like one
// built from text. Conversational rows are rendered with the tokenizer's
// chat template, as transformers' apply_chat_template does, or, when it
// has none, with the Alpaca template (TemplateAuto, as SFT renders them).
type SequenceEncoder struct {
	Tok  *tokenizer.Tokenizer
	tmpl *jinja.Template
}

// NewSequenceEncoder returns an encoder for tok; its chat template, if any, is
// parsed here.
func NewSequenceEncoder(tok *tokenizer.Tokenizer) (*SequenceEncoder, error) {
	e := &SequenceEncoder{Tok: tok}
	if tok.ChatTemplate != "" {
		t, err := jinja.Parse(tok.ChatTemplate)
		if err != nil {
			return nil, fmt.Errorf("chat template: %w", err)
		}
		e.tmpl = t
	}
	return e, nil
}

// Prompt returns the ids of a plain prompt (text) or of a conversation
// (msgs, when not empty) followed by the generation prompt.
func (e *SequenceEncoder) Prompt(text string, msgs []data.Message) ([]int, error) {
	if len(msgs) == 0 {
		return e.Tok.Encode(text, true), nil
	}
	s, err := e.render(msgs, true)
	if err != nil {
		return nil, err
	}
	// A chat template writes its BOS itself; Alpaca's starts after BOS.
	return e.Tok.Encode(s, e.tmpl == nil), nil
}

// Completion returns the ids of a completion of a prompt, ended with EOS:
// plain text (msgs empty), or the answer turns of a conversation whose
// prompt turns are promptMsgs.
func (e *SequenceEncoder) Completion(text string, promptMsgs, msgs []data.Message) ([]int, error) {
	var ids []int
	if len(msgs) == 0 {
		ids = e.Tok.Encode(text, false)
	} else {
		head, err := e.render(promptMsgs, true)
		if err != nil {
			return nil, err
		}
		full, err := e.render(append(append([]data.Message(nil), promptMsgs...), msgs...), false)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(full, head) {
			return nil, errors.New("the chat template renders the prompt differently once the answer follows; cannot split prompt and completion")
		}
		ids = e.Tok.Encode(full[len(head):], false)
	}
	if eos := e.Tok.EOS(); eos >= 0 && (len(ids) == 0 || ids[len(ids)-1] != eos) {
		ids = append(ids, eos)
	}
	return ids, nil
}

// render applies the chat template (else the Alpaca template) to msgs.
func (e *SequenceEncoder) render(msgs []data.Message, generationPrompt bool) (string, error) {
	if e.tmpl == nil {
		conv := make([]tokenizer.Message, len(msgs))
		for i, m := range msgs {
			conv[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
		}
		return e.Tok.RenderChat(tokenizer.TemplateAlpaca, conv, generationPrompt)
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	tokenText := func(id int) string {
		if id < 0 {
			return ""
		}
		s, _ := e.Tok.Token(id)
		return s
	}
	s, err := e.tmpl.Render(map[string]any{
		"messages": list, "add_generation_prompt": generationPrompt,
		"bos_token": tokenText(e.Tok.BOS()), "eos_token": tokenText(e.Tok.EOS()),
	})
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return s, nil
}
