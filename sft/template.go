package sft

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/tokenizer"
)

// Templates render an instruction row into prompt and completion.
const (
	// TemplateAlpaca is Stanford Alpaca's prompt followed directly by the
	// output and EOS, the layout the built-in world's pretraining corpus
	// uses for solved tasks.
	TemplateAlpaca = tokenizer.TemplateAlpaca
	// TemplateChatML is Qwen's <|im_start|>role … <|im_end|> turns.
	TemplateChatML = tokenizer.TemplateChatML
	// TemplateLlama3 is Llama-3's <|start_header_id|>role<|end_header_id|> turns.
	TemplateLlama3 = tokenizer.TemplateLlama3
	// TemplateJinja is the chat_template of the tokenizer's
	// tokenizer_config.json.
	TemplateJinja = tokenizer.TemplateJinja
)

// Templates lists the template names.
var Templates = []string{TemplateAlpaca, TemplateChatML, TemplateLlama3, TemplateJinja}

// encoder turns instruction rows into token ids with a completion mask.
type encoder struct {
	tok           *tokenizer.Tokenizer
	template      string
	trainOnInputs bool
}

func newEncoder(tok *tokenizer.Tokenizer, template string, trainOnInputs bool) (*encoder, error) {
	if !slices.Contains(Templates, template) {
		return nil, fmt.Errorf("unknown template %q (want one of %s)", template, strings.Join(Templates, ", "))
	}
	if template == TemplateAlpaca && tok.EOS() < 0 {
		return nil, fmt.Errorf("the tokenizer has no EOS token, which ends every Alpaca completion")
	}
	if template == TemplateJinja && tok.ChatTemplate == "" {
		return nil, fmt.Errorf("template %q: the tokenizer has no chat_template in its tokenizer_config.json", template)
	}
	return &encoder{tok: tok, template: template, trainOnInputs: trainOnInputs}, nil
}

// encode renders one row.
//
// With the Alpaca template the ids are those of the whole text
// prompt+output, after BOS, followed by EOS: exactly how a solved task of
// the pretraining corpus is tokenized. The completion starts at the first
// token that the prompt's own encoding does not share, as Stanford
// Alpaca's train.py masks (a token straddling the boundary holds output
// text and counts as completion). A row's system prompt, which the Alpaca
// format has no place for, opens the text as its own paragraph.
//
// With a chat template the row is a conversation: the system prompt (if
// any) as a system message, the instruction (and input, after a blank
// line) as the user message, the output as the assistant's reply, whose
// text and end-of-turn token are the completion.
func (e *encoder) encode(r data.Instruction) (data.Example, error) {
	if r.Output == "" {
		return data.Example{}, fmt.Errorf("empty output")
	}
	var enc tokenizer.Encoded
	if e.template == TemplateAlpaca {
		prompt := tokenizer.FormatAlpaca(r.Instruction, r.Input)
		if r.System != "" {
			prompt = r.System + "\n\n" + prompt
		}
		enc = e.tok.EncodePromptCompletion(prompt, r.Output, true, true)
	} else {
		var msgs []tokenizer.Message
		if r.System != "" {
			msgs = append(msgs, tokenizer.Message{Role: "system", Content: r.System})
		}
		user := r.Instruction
		if r.Input != "" {
			user += "\n\n" + r.Input
		}
		msgs = append(msgs, tokenizer.Message{Role: "user", Content: user}, tokenizer.Message{Role: "assistant", Content: r.Output})
		var err error
		if enc, err = e.tok.EncodeChat(e.template, msgs); err != nil {
			return data.Example{}, err
		}
	}
	if e.trainOnInputs {
		for i := range enc.Mask {
			enc.Mask[i] = true
		}
	}
	return data.Example{IDs: enc.IDs, Mask: enc.Mask}, nil
}

// encodeAll renders every row; an error names the dataset and row.
func (e *encoder) encodeAll(rows []data.Instruction, source string) ([]data.Example, error) {
	if source == "" {
		source = "rows"
	}
	out := make([]data.Example, len(rows))
	for i, r := range rows {
		ex, err := e.encode(r)
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", source, i, err)
		}
		ex.Row = i
		out[i] = ex
	}
	return out, nil
}
