package sft

import (
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/tokenizer"
)

// Templates render an instruction row into prompt and completion
// (finetune.InstructionEncoder).
const (
	// TemplateAuto is the tokenizer's chat_template (TemplateJinja) when
	// it has one, else TemplateAlpaca.
	TemplateAuto = finetune.TemplateAuto
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
