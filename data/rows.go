package data

import "strings"

// Kind names what a dataset holds; it decides the schema.
type Kind string

// The dataset kinds of the pipeline.
const (
	KindInstructions          Kind = "instructions"
	KindGeneratedInstructions Kind = "generated_instructions"
	KindPreferences           Kind = "preferences"
	KindPrompts               Kind = "prompts"
)

// Kinds lists every kind, in pipeline order.
var Kinds = []Kind{KindInstructions, KindGeneratedInstructions, KindPreferences, KindPrompts}

// ParseKind checks that s names a kind ("" is returned as "").
func ParseKind(s string) (Kind, error) {
	if s == "" {
		return "", nil
	}
	for _, k := range Kinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", &unknownNameError{what: "kind", name: s, known: kindNames()}
}

func kindNames() []string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = string(k)
	}
	return names
}

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Instruction is one supervised fine-tuning row: Alpaca-shaped
// (Instruction, Input, Output, System), or a whole conversation in
// Messages (system, user and assistant turns ending with an assistant
// turn; the other text fields empty). A file holds one form.
type Instruction struct {
	Instruction string
	Input       string // may be empty
	Output      string
	System      string // optional system prompt
	Source      string // optional provenance

	Messages []Message // a conversational row
}

// Conversational reports whether r is a conversation (Messages).
func (r *Instruction) Conversational() bool { return r.Messages != nil }

// Message roles of conversational instruction rows.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Similar is one neighbour of a generated instruction with its ROUGE-L score.
type Similar struct {
	Text  string
	Score float64
}

// GeneratedInstruction is an instruction produced by self-instruct, with the
// most similar instructions already kept and the mean similarity to them.
type GeneratedInstruction struct {
	Instruction
	MostSimilar   []Similar
	AvgSimilarity float64
}

// Preference is one preference pair. A row is either plain (Prompt, Chosen,
// Rejected) or conversational (the *Messages fields); a file holds one form.
// Conversational rows keep the prompt turns apart from the completions:
// ChosenMessages and RejectedMessages hold only the answers.
type Preference struct {
	Prompt, Chosen, Rejected                         string
	PromptMessages, ChosenMessages, RejectedMessages []Message

	// Optional scores; nil when absent.
	Margin, ScoreChosen, ScoreRejected *float64
	// Log-probabilities of chosen and rejected under the reference model,
	// stored once so DPO need not recompute them every epoch.
	RefChosenLogp, RefRejectedLogp *float64
}

// Conversational reports whether p uses the message-list form.
func (p *Preference) Conversational() bool {
	return p.ChosenMessages != nil || p.RejectedMessages != nil || p.PromptMessages != nil
}

// Prompt is one prompt for rollouts (PPO): plain text or messages.
type Prompt struct {
	Prompt   string
	Messages []Message
}

// Conversational reports whether p uses the message-list form.
func (p *Prompt) Conversational() bool { return p.Messages != nil }

// JoinContents concatenates the contents of msgs, one per line; useful for
// length statistics and logs where no chat template applies.
func JoinContents(msgs []Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(m.Content)
	}
	return b.String()
}

// Float returns a pointer to v, for the optional fields of Preference.
func Float(v float64) *float64 { return &v }
