package finetune

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// TemplateAuto names the tokenizer's own chat_template (TemplateJinja)
// when it has one, else Stanford Alpaca's prompt: what TRL's SFTTrainer
// does with a model that has a chat template.
const TemplateAuto = "auto"

// InstructionTemplates are the layouts an instruction row can be rendered
// in: Stanford Alpaca's prompt followed directly by the output and EOS,
// or a chat template (ChatML, Llama-3, or the tokenizer's own Jinja
// chat_template), or TemplateAuto.
var InstructionTemplates = []string{TemplateAuto, tokenizer.TemplateAlpaca, tokenizer.TemplateChatML, tokenizer.TemplateLlama3, tokenizer.TemplateJinja}

// ResolveTemplate returns the template that name stands for with tok:
// TemplateAuto becomes TemplateJinja when tok has a chat_template, else
// TemplateAlpaca; other names are returned as they are.
func ResolveTemplate(tok *tokenizer.Tokenizer, name string) string {
	if name != TemplateAuto {
		return name
	}
	if tok.ChatTemplate != "" {
		return tokenizer.TemplateJinja
	}
	return tokenizer.TemplateAlpaca
}

// InstructionEncoder turns instruction rows into token ids with a
// completion mask: how SFT trains on them and how eval scores them.
type InstructionEncoder struct {
	tok           *tokenizer.Tokenizer
	template      string
	trainOnInputs bool
}

// NewInstructionEncoder checks that the tokenizer can render the template
// (one of InstructionTemplates; TemplateAuto is resolved here, see
// ResolveTemplate). With trainOnInputs every token is marked as
// completion.
func NewInstructionEncoder(tok *tokenizer.Tokenizer, template string, trainOnInputs bool) (*InstructionEncoder, error) {
	if !slices.Contains(InstructionTemplates, template) {
		return nil, fmt.Errorf("unknown template %q (want one of %s)", template, strings.Join(InstructionTemplates, ", "))
	}
	template = ResolveTemplate(tok, template)
	if template == tokenizer.TemplateAlpaca && tok.EOS() < 0 {
		return nil, fmt.Errorf("the tokenizer has no EOS token, which ends every Alpaca completion")
	}
	if template == tokenizer.TemplateJinja && tok.ChatTemplate == "" {
		return nil, fmt.Errorf("template %q: the tokenizer has no chat_template in its tokenizer_config.json", template)
	}
	return &InstructionEncoder{tok: tok, template: template, trainOnInputs: trainOnInputs}, nil
}

// Template is the template the encoder renders with (TemplateAuto
// resolved).
func (e *InstructionEncoder) Template() string { return e.template }

// Encode renders one row.
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
//
// A conversational row (Messages) is rendered whole by the template, and
// every assistant turn's text and end-of-turn token are the completion
// (tokenizer.EncodeChat), as TRL's assistant_only_loss takes them; the
// Alpaca template takes one user turn and its reply only.
func (e *InstructionEncoder) Encode(r data.Instruction) (data.Example, error) {
	if r.Conversational() {
		return e.encodeConversation(r.Messages)
	}
	if r.Output == "" {
		return data.Example{}, fmt.Errorf("empty output")
	}
	var enc tokenizer.Encoded
	if e.template == tokenizer.TemplateAlpaca {
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

func (e *InstructionEncoder) encodeConversation(msgs []data.Message) (data.Example, error) {
	if len(msgs) == 0 || msgs[len(msgs)-1].Role != data.RoleAssistant {
		return data.Example{}, fmt.Errorf("column %q: the conversation does not end with an assistant turn", data.ColMessages)
	}
	conv := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		conv[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	enc, err := e.tok.EncodeChat(e.template, conv)
	if err != nil {
		return data.Example{}, fmt.Errorf("column %q: %w", data.ColMessages, err)
	}
	if e.trainOnInputs {
		for i := range enc.Mask {
			enc.Mask[i] = true
		}
	}
	return data.Example{IDs: enc.IDs, Mask: enc.Mask}, nil
}

// EncodeAll renders every row; an error names the source (a dataset path,
// or "rows" when "") and the row.
func (e *InstructionEncoder) EncodeAll(rows []data.Instruction, source string) ([]data.Example, error) {
	if source == "" {
		source = "rows"
	}
	out := make([]data.Example, len(rows))
	for i, r := range rows {
		ex, err := e.Encode(r)
		if err != nil {
			return nil, fmt.Errorf("%s: row %d: %w", source, i, err)
		}
		ex.Row = i
		out[i] = ex
	}
	return out, nil
}

// DefaultMaxLen is the longest instruction row, in tokens, when none is
// given: 512, or the model's positions when fewer.
func DefaultMaxLen(mc model.Config) int { return min(512, mc.MaxPositionEmbeddings) }

// LengthBuckets are the batch lengths T of rows of at most maxLen tokens:
// 64, 128, 256 and 512 where below maxLen, and maxLen. A few fixed shapes
// keep the number of compiled programs small while short rows are not
// padded to maxLen.
func LengthBuckets(maxLen int) []int {
	var buckets []int
	for _, b := range []int{64, 128, 256, 512} {
		if b < maxLen {
			buckets = append(buckets, b)
		}
	}
	return append(buckets, maxLen)
}

// ScoringBatchOptions are the batches in which instruction rows are scored:
// batchSize rows each, in dataset order, each row cut to maxLen tokens
// (0: DefaultMaxLen) by truncation (data.TruncateKeepStart or
// data.TruncateKeepEnd), lengths bucketed by LengthBuckets, padded with
// pad.
func ScoringBatchOptions(batchSize, maxLen int, truncation string, mc model.Config, pad int) (data.BatchOptions, error) {
	if maxLen == 0 {
		maxLen = DefaultMaxLen(mc)
	}
	if mc.MaxPositionEmbeddings > 0 && maxLen > mc.MaxPositionEmbeddings {
		return data.BatchOptions{}, fmt.Errorf("max length %d exceeds the model's %d positions", maxLen, mc.MaxPositionEmbeddings)
	}
	opts := data.BatchOptions{
		BatchSize: batchSize, MaxLen: maxLen, PadID: pad, Truncation: truncation,
		Buckets: LengthBuckets(maxLen),
	}
	return opts, opts.Validate()
}

// LoadBatch copies a batch into the inputs of a program built with
// TokenLoss and returns the weight of the tokens it scores. A packed
// program (PackedProgram) also takes the batch's positions and segments;
// an unpacked batch loads into it as one document per row. It panics when
// a packed batch is loaded into an unpacked program, which would let its
// documents attend to each other.
func LoadBatch(p *Program, b data.Batch) float64 {
	g := p.Graph
	copy(g.In.Tokens, b.Inputs)
	copy(g.In.Targets, b.Targets)
	switch {
	case g.In.Segments != nil && b.Segments != nil:
		copy(g.In.Positions, b.Positions)
		copy(g.In.Segments, b.Segments)
	case g.In.Segments != nil:
		for i := range g.In.Positions {
			g.In.Positions[i], g.In.Segments[i] = int32(i%b.T), 1
		}
	case b.Segments != nil:
		panic(fmt.Sprintf("finetune: packed batch loaded into the unpacked program %s", p.Name))
	}
	copy(g.Vector(WeightsInput), b.Weights)
	var n float64
	for _, v := range b.Weights {
		n += float64(v)
	}
	return n
}

// MeanLoss is the mean token loss over every weighted token of the
// batches (each batch's loss weighted by its token weight), from the
// forward programs named name, one per batch length, built with TokenLoss
// the first time. The adapter's dropout is switched off. NaN when no token
// has weight.
func (m *Model) MeanLoss(ctx context.Context, name string, batches []data.Batch) (float64, error) {
	if m.Adapter != nil {
		m.Adapter.SetDropoutActive(false)
	}
	// Under mpirun the ranks share the batches and sum the gathered losses
	// in batch order, as one process does.
	parts, err := train.ShareWork(ctx, nil, len(batches), func(lo, hi int) ([]lossSum, error) {
		out := make([]lossSum, 0, hi-lo)
		for _, b := range batches[lo:hi] {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			p, err := m.Program(name, b.B, b.T, false, TokenLoss)
			if err != nil {
				return nil, err
			}
			n := LoadBatch(p, b)
			if err := p.Run(); err != nil {
				return nil, err
			}
			out = append(out, lossSum{Sum: float64(model.Value32(p.Loss)[0]) * n, N: n})
		}
		return out, nil
	})
	if err != nil {
		return 0, err
	}
	var sum, count float64
	for _, p := range parts {
		sum += p.Sum
		count += p.N
	}
	if count == 0 {
		return math.NaN(), nil
	}
	return sum / count, nil
}

// lossSum is one forward pass's summed token loss and its weight (tokens),
// what a rank sends the others.
type lossSum struct{ Sum, N float64 }
