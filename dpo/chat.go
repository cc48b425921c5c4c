package dpo

import (
	"errors"
	"fmt"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/tokenizer/jinja"
)

// chatTemplate renders conversations with a tokenizer's Jinja chat template,
// with the variables transformers' apply_chat_template passes (messages,
// add_generation_prompt, bos_token, eos_token).
type chatTemplate struct {
	t        *jinja.Template
	bos, eos string
}

func newChatTemplate(tok *tokenizer.Tokenizer) (*chatTemplate, error) {
	if tok.ChatTemplate == "" {
		return nil, errors.New("conversational rows need a chat template, and the tokenizer has none (tokenizer_config.json chat_template)")
	}
	t, err := jinja.Parse(tok.ChatTemplate)
	if err != nil {
		return nil, fmt.Errorf("chat template: %w", err)
	}
	c := &chatTemplate{t: t}
	if id := tok.BOS(); id >= 0 {
		c.bos, _ = tok.Token(id)
	}
	if id := tok.EOS(); id >= 0 {
		c.eos, _ = tok.Token(id)
	}
	return c, nil
}

// render returns the conversation as text.
func (c *chatTemplate) render(msgs []data.Message, addGenerationPrompt bool) (string, error) {
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	s, err := c.t.Render(map[string]any{
		"messages": list, "add_generation_prompt": addGenerationPrompt,
		"bos_token": c.bos, "eos_token": c.eos,
	})
	if err != nil {
		return "", fmt.Errorf("chat template: %w", err)
	}
	return s, nil
}
