package sft

import (
	"fmt"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/world"
)

// Templates render an instruction row into prompt and completion.
const (
	// TemplateAlpaca is Stanford Alpaca's prompt followed directly by the
	// output and EOS, the layout the built-in world's pretraining corpus
	// uses for solved tasks.
	TemplateAlpaca = "alpaca"
	// TemplateChatML is Qwen's <|im_start|>role … <|im_end|> turns.
	TemplateChatML = "chatml"
	// TemplateLlama3 is Llama-3's <|start_header_id|>role<|end_header_id|> turns.
	TemplateLlama3 = "llama3"
	// TemplateJinja is the chat_template of the tokenizer's
	// tokenizer_config.json.
	TemplateJinja = "jinja"
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
	switch template {
	case TemplateAlpaca:
	default:
		return nil, fmt.Errorf("unknown template %q (want one of %v)", template, Templates)
	}
	if tok.EOS() < 0 {
		return nil, fmt.Errorf("the tokenizer has no EOS token, which ends every completion")
	}
	return &encoder{tok: tok, template: template, trainOnInputs: trainOnInputs}, nil
}

// encode renders one row. With the Alpaca template the ids are those of
// the whole text prompt+output (with the tokenizer's special tokens, e.g.
// BOS) followed by EOS, exactly as a solved task is tokenized for
// pretraining. As in Stanford Alpaca's train.py the prompt is the part
// that the prompt encoded alone shares with it; where a token straddles
// the boundary (a pre-tokenizer that joins ":" to the letters after it),
// that token counts as completion, so every token holding part of the
// output is learned. A row's system prompt, which the Alpaca format has no
// place for, opens the text as its own paragraph.
func (e *encoder) encode(r data.Instruction) (data.Example, error) {
	if r.Output == "" {
		return data.Example{}, fmt.Errorf("empty output")
	}
	prompt := world.FormatAlpaca(r.Instruction, r.Input)
	if r.System != "" {
		prompt = r.System + "\n\n" + prompt
	}
	ids := e.tok.Encode(prompt+r.Output, true)
	ids = append(ids, e.tok.EOS())
	promptIDs := e.tok.Encode(prompt, true)
	promptLen := 0
	for promptLen < len(promptIDs) && promptLen < len(ids)-1 && promptIDs[promptLen] == ids[promptLen] {
		promptLen++
	}
	mask := make([]bool, len(ids))
	for i := range mask {
		mask[i] = e.trainOnInputs || i >= promptLen
	}
	return data.Example{IDs: ids, Mask: mask}, nil
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
