package reward

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/tokenizer/jinja"
)

// Encoder turns dataset rows into the token sequences a reward model reads:
// prompt ids (with the tokenizer's BOS), then completion ids, then EOS. The
// prompt and the completion are encoded separately, so a sequence built
// from generated completion ids (PPO rollouts) is laid out exactly like one
// built from text. Conversational rows are rendered with the tokenizer's
// chat template, as transformers' apply_chat_template does.
type Encoder struct {
	Tok  *tokenizer.Tokenizer
	tmpl *jinja.Template
}

// NewEncoder returns an encoder for tok; its chat template, if any, is
// parsed here.
func NewEncoder(tok *tokenizer.Tokenizer) (*Encoder, error) {
	e := &Encoder{Tok: tok}
	if tok.ChatTemplate != "" {
		t, err := jinja.Parse(tok.ChatTemplate)
		if err != nil {
			return nil, fmt.Errorf("reward: chat template: %w", err)
		}
		e.tmpl = t
	}
	return e, nil
}

// Prompt returns the ids of a plain prompt (text) or of a conversation
// (msgs, when not empty) followed by the generation prompt.
func (e *Encoder) Prompt(text string, msgs []data.Message) ([]int, error) {
	if len(msgs) == 0 {
		return e.Tok.Encode(text, true), nil
	}
	s, err := e.render(msgs, true)
	if err != nil {
		return nil, err
	}
	return e.Tok.Encode(s, false), nil
}

// Completion returns the ids of a completion of a prompt, ended with EOS:
// plain text (msgs empty), or the answer turns of a conversation whose
// prompt turns are promptMsgs.
func (e *Encoder) Completion(text string, promptMsgs, msgs []data.Message) ([]int, error) {
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
			return nil, errors.New("reward: the chat template renders the prompt differently once the answer follows; cannot split prompt and completion")
		}
		ids = e.Tok.Encode(full[len(head):], false)
	}
	if eos := e.Tok.EOS(); eos >= 0 && (len(ids) == 0 || ids[len(ids)-1] != eos) {
		ids = append(ids, eos)
	}
	return ids, nil
}

// render applies the chat template to msgs.
func (e *Encoder) render(msgs []data.Message, generationPrompt bool) (string, error) {
	if e.tmpl == nil {
		return "", errors.New("reward: conversational rows need a tokenizer with a chat template")
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
		return "", fmt.Errorf("reward: chat template: %w", err)
	}
	return s, nil
}

// Pair is one encoded preference pair.
type Pair struct {
	Chosen, Rejected []int   // prompt + completion + EOS
	Margin           float64 // the row's margin (0 without one)
	Row              int     // dataset row
}

// EncodePair encodes one preference row.
func (e *Encoder) EncodePair(p data.Preference, row int) (Pair, error) {
	prompt, err := e.Prompt(p.Prompt, p.PromptMessages)
	if err != nil {
		return Pair{}, err
	}
	c, err := e.Completion(p.Chosen, p.PromptMessages, p.ChosenMessages)
	if err != nil {
		return Pair{}, err
	}
	r, err := e.Completion(p.Rejected, p.PromptMessages, p.RejectedMessages)
	if err != nil {
		return Pair{}, err
	}
	out := Pair{Chosen: concat(prompt, c), Rejected: concat(prompt, r), Row: row}
	if p.Margin != nil {
		out.Margin = *p.Margin
	}
	return out, nil
}

func concat(a, b []int) []int {
	return append(append(make([]int, 0, len(a)+len(b)), a...), b...)
}
