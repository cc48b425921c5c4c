package gguf

import (
	"fmt"
	"strings"

	"github.com/gotune/gotune/tokenizer"
)

// ModelfileName is the name of the Ollama Modelfile written beside a GGUF
// export.
const ModelfileName = "Modelfile"

// Ollama prompt templates (Go text/template over .Messages or .Prompt) of
// the chat formats recognised in a Jinja chat template.
const (
	chatMLTemplate = `{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
`
	llama3Template = `{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>

`
	instTemplate = `{{- range .Messages }}{{ if eq .Role "user" }}[INST] {{ .Content }} [/INST]{{ else if eq .Role "assistant" }}{{ .Content }}</s>{{ end }}{{ end }}`
	// alpacaTemplate is the prompt of tokenizer.FormatAlpaca, the format
	// gotune's instruction tuning uses when the model has no chat template.
	alpacaTemplate = `Below is an instruction that describes a task. Write a response that appropriately completes the request.

### Instruction:
{{ .Prompt }}

### Response:`
)

// Modelfile returns an Ollama Modelfile for the GGUF file at ggufPath
// (written as given, e.g. "./model.gguf"): FROM, a TEMPLATE for the chat
// format of the tokenizer's chat template (ChatML, Llama 3 or [INST];
// without a chat template, the Alpaca prompt gotune's instruction tuning
// uses), and a stop parameter for the end-of-sequence token and the
// format's end-of-turn token. A chat template of another form gets no
// TEMPLATE: Ollama then reads the file's tokenizer.chat_template.
func Modelfile(ggufPath string, tok *tokenizer.Tokenizer) string {
	var tmpl string
	var stops []string
	ct := tok.ChatTemplate
	switch {
	case ct == "":
		tmpl = alpacaTemplate
	case strings.Contains(ct, "<|im_start|>"):
		tmpl, stops = chatMLTemplate, []string{"<|im_end|>"}
	case strings.Contains(ct, "<|start_header_id|>"):
		tmpl, stops = llama3Template, []string{"<|eot_id|>"}
	case strings.Contains(ct, "[INST]"):
		tmpl = instTemplate
	default:
		// Another chat format: no TEMPLATE, so that Ollama derives one from
		// the file's tokenizer.chat_template as it does for any GGUF.
	}
	if eos, ok := tok.Token(tok.EOS()); ok && !contains(stops, eos) {
		stops = append(stops, eos)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n\n", ggufPath)
	if tmpl != "" {
		fmt.Fprintf(&b, "TEMPLATE \"\"\"%s\"\"\"\n\n", tmpl)
	}
	for _, s := range stops {
		fmt.Fprintf(&b, "PARAMETER stop %q\n", s)
	}
	return b.String()
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
