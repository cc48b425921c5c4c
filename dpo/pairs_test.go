package dpo

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/tokenizer"
)

func appendJSONL(b []byte, v any) []byte {
	js, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return append(append(b, js...), '\n')
}

// checkRow verifies the layout of an encoded row: its tokens decode to
// text (after BOS when bos is set, before EOS when eos is set), the mask is
// false on the prompt and true from the first token on, and the masked
// tokens decode to completion.
func checkRow(t testing.TB, enc *encoder, ex data.Example, text, completion string, bos, eos bool) {
	t.Helper()
	ids := ex.IDs
	if len(ids) != len(ex.Mask) {
		t.Fatalf("%d ids, %d mask entries", len(ids), len(ex.Mask))
	}
	if bos {
		if ids[0] != enc.tok.BOS() || ex.Mask[0] {
			t.Fatalf("row does not start with an unmasked BOS")
		}
		ids = ids[1:]
	}
	if eos {
		if ids[len(ids)-1] != enc.tok.EOS() || !ex.Mask[len(ex.Mask)-1] {
			t.Fatalf("row does not end with a masked EOS")
		}
		ids = ids[:len(ids)-1]
	}
	if got := enc.tok.Decode(ids, false); got != text {
		t.Fatalf("row decodes to %q, want %q", got, text)
	}
	first := slices.Index(ex.Mask, true)
	if first < 0 {
		t.Fatal("nothing masked")
	}
	var masked []int
	for i, m := range ex.Mask {
		if m {
			masked = append(masked, ex.IDs[i])
		}
	}
	if got := enc.tok.Decode(masked, false); got != completion {
		t.Fatalf("completion tokens decode to %q, want %q", got, completion)
	}
}

// TestEncodePlain encodes a plain row as the SFT stage encodes its Alpaca
// examples: prompt and completion as one text after BOS, EOS appended, the
// completion from the first token the prompt's own encoding lacks.
func TestEncodePlain(t *testing.T) {
	enc := &encoder{tok: microTokenizer(t)}
	p := data.Preference{Prompt: "### Instruction:\nWrite dragon in capitals.\n\n### Response:", Chosen: "DRAGON", Rejected: "Dragon"}
	c, r, err := enc.encode(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		ex   data.Example
		text string
	}{{c, p.Chosen}, {r, p.Rejected}} {
		// The prompt ends in ":" and the answer may share its first token.
		pids := enc.tok.Encode(p.Prompt, false)
		shared := 0
		for shared < len(pids) && pids[shared] == side.ex.IDs[1+shared] {
			shared++
		}
		want := enc.tok.Decode(side.ex.IDs[1+shared:len(side.ex.IDs)-1], false)
		if !strings.HasSuffix(want, side.text) {
			t.Fatalf("completion tokens %q do not end with the answer %q", want, side.text)
		}
		checkRow(t, enc, side.ex, p.Prompt+side.text, want+"<|eos|>", true, true)
		if slices.Index(side.ex.Mask, true) != 1+shared {
			t.Fatalf("completion starts at token %d, want %d", slices.Index(side.ex.Mask, true), 1+shared)
		}
	}
}

// chatML is a ChatML chat template (as Qwen's, without tools).
const chatML = `{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// TestEncodeConversational renders conversational rows with the chat
// template: the completion is the answer's turn and its end-of-turn token,
// not the assistant turns of the prompt.
func TestEncodeConversational(t *testing.T) {
	tok := *microTokenizer(t)
	tok.ChatTemplate = chatML
	p := data.Preference{
		PromptMessages: []data.Message{{Role: "system", Content: "Be exact."}, {Role: "user", Content: "Add 4 and 37."},
			{Role: "assistant", Content: "Sure?"}, {Role: "user", Content: "Yes."}},
		ChosenMessages:   []data.Message{{Role: "assistant", Content: "41"}},
		RejectedMessages: []data.Message{{Role: "assistant", Content: "40"}},
	}
	ptext := "<|im_start|>system\nBe exact.<|im_end|>\n<|im_start|>user\nAdd 4 and 37.<|im_end|>\n" +
		"<|im_start|>assistant\nSure?<|im_end|>\n<|im_start|>user\nYes.<|im_end|>\n<|im_start|>assistant\n"
	for _, tmpl := range []string{"", tokenizer.TemplateChatML} { // the tokenizer's Jinja template, and the built-in one
		enc := &encoder{tok: &tok, template: tmpl}
		c, r, err := enc.encode(p)
		if err != nil {
			t.Fatalf("template %q: %v", tmpl, err)
		}
		checkRow(t, enc, c, ptext+"41<|im_end|>\n", "41<|im_end|>", false, false)
		checkRow(t, enc, r, ptext+"40<|im_end|>\n", "40<|im_end|>", false, false)
	}

	// Without a chat_template, auto renders as SFT does: Alpaca, one
	// document per exchange, the loss on the answer only.
	plain := *microTokenizer(t)
	plain.ChatTemplate = ""
	enc := &encoder{tok: &plain}
	c, _, err := enc.encode(p)
	if err != nil {
		t.Fatalf("conversational rows without a chat template: %v", err)
	}
	want, err := plain.EncodeChat(tokenizer.TemplateAlpaca, messages(append(slices.Clone(p.PromptMessages), p.ChosenMessages...)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.IDs, want.IDs) {
		t.Errorf("auto without a chat_template: %v, want the alpaca rendering %v", c.IDs, want.IDs)
	}
	if got := plain.Turns(tokenizer.Encoded{IDs: c.IDs, Mask: c.Mask}); len(got) != 1 || !strings.HasPrefix(got[0], "41") {
		t.Errorf("auto without a chat_template: loss on %q, want the answer only", got)
	}
	// A template that does not extend the prompt with the answer is refused.
	odd := *microTokenizer(t)
	odd.ChatTemplate = `{% if add_generation_prompt %}A:{% endif %}{% for m in messages %}{{ m['content'] }}<|im_end|>{% endfor %}`
	if _, _, err := (&encoder{tok: &odd}).encode(p); err == nil {
		t.Error("a prompt that is not a prefix of the conversation was accepted")
	}
}

// TestConversationalRun trains on a conversational JSONL file (TRL's
// conversational shape) with a chat template.
func TestConversationalRun(t *testing.T) {
	base := microBase(t, 6)
	tok := *microTokenizer(t)
	tok.ChatTemplate = chatML
	if err := tok.Save(base); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "chat.jsonl")
	var lines []byte
	for i, a := range []string{"41", "12", "APPLE", "elppa", "3", "98", "2, 5, 9", "7"} {
		lines = appendJSONL(lines, map[string]any{
			"prompt":   []map[string]string{{"role": "user", "content": "Question " + strings.Repeat("?", i+1)}},
			"chosen":   []map[string]string{{"role": "assistant", "content": a}},
			"rejected": []map[string]string{{"role": "assistant", "content": a + "0"}},
		})
	}
	if err := os.WriteFile(src, lines, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(base, filepath.Join(t.TempDir(), "dpo"))
	cfg.Rows, cfg.EvalRows, cfg.Data, cfg.HeldOut, cfg.Train.Steps = nil, nil, src, 0.25, 2
	cfg.Buckets, cfg.MaxLen = []int{96}, 96
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.TrainPairs != 6 || res.EvalPairs != 2 {
		t.Errorf("%d train, %d eval pairs", res.TrainPairs, res.EvalPairs)
	}
	rows, err := data.ReadPreferences(filepath.Join(DataDir(cfg.Out), "train.arrow"))
	if err != nil || len(rows) != 8 || !rows[0].Conversational() {
		t.Fatalf("imported rows: %d, %v", len(rows), err)
	}
}

// TestTruncation fits long pairs to MaxLen: keep_start cuts the end of the
// completions and a pair whose prompt fills MaxLen is dropped.
func TestTruncation(t *testing.T) {
	enc := &encoder{tok: microTokenizer(t)}
	long := strings.Repeat("word ", 40)
	rows := []data.Preference{
		{Prompt: "Say it.", Chosen: long, Rejected: "no"},
		{Prompt: long + long, Chosen: "a", Rejected: "b"},
		{Prompt: "Say it.", Chosen: "yes", Rejected: "no"},
	}
	var rep data.TruncationReport
	ps, err := encodePairs(0, rows, enc, data.BatchOptions{MaxLen: 24, PadID: enc.tok.PAD(), Truncation: data.TruncateKeepStart}, &rep)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2 || ps[0].row != 0 || ps[1].row != 2 {
		t.Fatalf("kept %d pairs (%+v)", len(ps), rep)
	}
	if len(ps[0].chosen.IDs) != 24 || rep.Truncated != 1 {
		t.Errorf("long chosen has %d tokens; report %+v", len(ps[0].chosen.IDs), rep)
	}
}

func FuzzEncode(f *testing.F) {
	f.Add("### Instruction:\nAdd 4 and 37.\n\n### Response:", "41", "40")
	f.Add("", "x", "")
	f.Add("\xff\xfe", "<|eos|>", "<|bos|>a")
	enc := &encoder{tok: microTokenizer(f)}
	f.Fuzz(func(t *testing.T, prompt, chosen, rejected string) {
		p := data.Preference{Prompt: prompt, Chosen: chosen, Rejected: rejected}
		c, r, err := enc.encode(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, ex := range []data.Example{c, r} {
			if len(ex.IDs) != len(ex.Mask) || len(ex.IDs) < 2 || ex.IDs[0] != enc.tok.BOS() || ex.IDs[len(ex.IDs)-1] != enc.tok.EOS() {
				t.Fatalf("bad row %v %v", ex.IDs, ex.Mask)
			}
			first := slices.Index(ex.Mask, true)
			if first < 1 {
				t.Fatalf("mask %v", ex.Mask)
			}
			for i := first; i < len(ex.Mask); i++ {
				if !ex.Mask[i] {
					t.Fatalf("unmasked token %d inside the completion", i)
				}
			}
		}
		var rep data.TruncationReport
		ps, err := encodePairs(0, []data.Preference{p}, enc, data.BatchOptions{MaxLen: 16, PadID: enc.tok.PAD()}, &rep)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range ps {
			if q.maxLen() > 16 {
				t.Fatalf("fitted pair of %d tokens", q.maxLen())
			}
			b := collate([]*pair{&q}, 16, enc.tok.PAD())
			if len(b.Inputs) != 32 {
				t.Fatalf("batch of %d tokens", len(b.Inputs))
			}
		}
	})
}

func TestOrder(t *testing.T) {
	o := &order{Seed: 3, N: 5}
	first := o.take(5)
	s := slices.Clone(first)
	slices.Sort(s)
	if !slices.Equal(s, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("epoch 0 is not a permutation: %v", first)
	}
	next := o.take(3) // epoch 1
	st, err := o.state()
	if err != nil {
		t.Fatal(err)
	}
	rest := o.take(4)
	o2 := &order{Seed: 3, N: 5}
	if err := o2.restore(st); err != nil {
		t.Fatal(err)
	}
	if got := o2.take(4); !slices.Equal(got, rest) {
		t.Errorf("restored order gives %v, want %v", got, rest)
	}
	if o2.epoch() != 12.0/5 {
		t.Errorf("epoch %v", o2.epoch())
	}
	if slices.Equal(first[:3], next) && slices.Equal(first[3:], rest[:2]) {
		t.Error("epochs repeat the same order")
	}
	if err := (&order{Seed: 3, N: 6}).restore(st); err == nil {
		t.Error("restoring over a different number of pairs was accepted")
	}
}
