package sft

import (
	"context"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/tokenizer"
)

// conversations joins world tasks two or three at a time into multi-turn
// conversations, some with a system prompt.
func conversations(seed int64, n int) []data.Instruction {
	tasks := world.New(seed).Tasks(world.Train, 3*n)
	var rows []data.Instruction
	for i := 0; len(rows) < n; i++ {
		var msgs []data.Message
		if i%2 == 0 {
			msgs = append(msgs, data.Message{Role: data.RoleSystem, Content: "Answer with the result only."})
		}
		for _, task := range tasks[3*i : 3*i+2+i%2] {
			user := task.Instruction
			if task.Input != "" {
				user += "\n\n" + task.Input
			}
			msgs = append(msgs, data.Message{Role: data.RoleUser, Content: user}, data.Message{Role: data.RoleAssistant, Content: task.Answer})
		}
		rows = append(rows, data.Instruction{Messages: msgs})
	}
	return rows
}

// TestConversationMask checks that a conversational row is rendered whole
// by the tokenizer's chat template (what auto picks when there is one) and
// that the loss covers every assistant turn with its end-of-turn token and
// nothing else; without a chat_template, auto is Alpaca.
func TestConversationMask(t *testing.T) {
	specials := append(slices.Clone(pretrain.Specials), "<|im_start|>", "<|im_end|>")
	tk, err := tokenizer.Train(world.New(7).Corpus(200), 400, specials)
	if err != nil {
		t.Fatal(err)
	}
	tk.ChatTemplate = chatML
	if got := finetune.ResolveTemplate(tk, TemplateAuto); got != TemplateJinja {
		t.Fatalf("auto with a chat_template is %q, want %q", got, TemplateJinja)
	}
	enc, err := finetune.NewInstructionEncoder(tk, TemplateAuto, false)
	if err != nil {
		t.Fatal(err)
	}
	row := conversations(4, 2)[1] // no system prompt, three exchanges
	ex, err := enc.Encode(row)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	var replies []string
	for _, m := range row.Messages {
		text.WriteString("<|im_start|>" + m.Role + "\n" + m.Content + "<|im_end|>\n")
		if m.Role == data.RoleAssistant {
			replies = append(replies, m.Content+"<|im_end|>")
		}
	}
	if got := tk.Decode(ex.IDs, false); got != text.String() {
		t.Fatalf("renders\n%q\nwant\n%q", got, text.String())
	}
	if turns := tk.Turns(tokenizer.Encoded{IDs: ex.IDs, Mask: ex.Mask}); !slices.Equal(turns, replies) {
		t.Fatalf("loss on %q, want every assistant turn %q", turns, replies)
	}
	bad := data.Instruction{Messages: []data.Message{{Role: "user", Content: "hi"}}}
	if _, err := enc.EncodeAll([]data.Instruction{row, bad}, "chat.arrow"); err == nil || !strings.Contains(err.Error(), `chat.arrow: row 1: column "messages"`) {
		t.Errorf("a conversation without a reply: %v", err)
	}
	tk.ChatTemplate = ""
	if got := finetune.ResolveTemplate(tk, TemplateAuto); got != TemplateAlpaca {
		t.Errorf("auto without a chat_template is %q, want %q", got, TemplateAlpaca)
	}
}

// TestPackedConversations trains on a conversational dataset file with
// packing: the run goes through and the held-out loss falls.
func TestPackedConversations(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "base")
	writeBase(t, base)
	trainPath, evalPath := filepath.Join(root, "train.arrow"), filepath.Join(root, "eval.arrow")
	if err := data.WriteInstructions(trainPath, conversations(3, 96)); err != nil {
		t.Fatal(err)
	}
	if err := data.WriteInstructions(evalPath, conversations(9, 16)); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(base, filepath.Join(root, "packed"))
	cfg.Rows, cfg.EvalRows, cfg.Data, cfg.EvalData = nil, nil, trainPath, evalPath
	cfg.Template, cfg.Packing, cfg.MaxLen, cfg.BatchSize = TemplateChatML, true, 128, 2
	cfg.Train.Steps = 15
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Shapes[len(res.Shapes)-1:], []int{128}) || res.TrainRows != 96 {
		t.Errorf("shapes %v, %d rows", res.Shapes, res.TrainRows)
	}
	if math.IsNaN(res.EvalLoss) || res.EvalLoss >= res.BaseEvalLoss {
		t.Errorf("held-out loss %g → %g", res.BaseEvalLoss, res.EvalLoss)
	}
}
