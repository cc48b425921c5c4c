package sft

import (
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/tokenizer"
)

// Templates render an instruction row into prompt and completion
// (finetune.InstructionEncoder).
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
var Templates = finetune.InstructionTemplates

// encoder renders SFT rows with finetune's instruction encoder.
type encoder struct{ *finetune.InstructionEncoder }

func newEncoder(tok *tokenizer.Tokenizer, template string, trainOnInputs bool) (*encoder, error) {
	e, err := finetune.NewInstructionEncoder(tok, template, trainOnInputs)
	if err != nil {
		return nil, err
	}
	return &encoder{e}, nil
}

// encode renders one row (finetune.InstructionEncoder.Encode).
func (e *encoder) encode(r data.Instruction) (data.Example, error) { return e.Encode(r) }

// encodeAll renders every row; an error names the dataset and row.
func (e *encoder) encodeAll(rows []data.Instruction, source string) ([]data.Example, error) {
	return e.EncodeAll(rows, source)
}
