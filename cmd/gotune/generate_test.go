package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/eval"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/internal/q8"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// tinyModelDir writes a small random model with a byte-level tokenizer.
func tinyModelDir(t *testing.T) (string, *generate.Engine) {
	t.Helper()
	dir := t.TempDir()
	w, tok := tinymodel.Weights(t, 5, 2048, "<s>", "</s>", "<|im_start|>", "<|im_end|>")
	tinymodel.Save(t, dir, w, tok)
	loaded, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, err := generate.New(w, loaded)
	if err != nil {
		t.Fatal(err)
	}
	return dir, e
}

func TestGenerateAndChatCommands(t *testing.T) {
	dir, e := tinyModelDir(t)
	out, err := runGotune(t, "generate", "--model", dir, "--prompt", "Hello", "--prompt", "Bye", "--max-tokens", "9",
		"--temperature", "0.8", "--seed", "4", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("output %q", out)
	}
	tok := e.Tokenizer()
	for i, p := range []string{"Hello", "Bye"} {
		var got struct {
			Text             string `json:"text"`
			CompletionTokens int    `json:"completion_tokens"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &got); err != nil {
			t.Fatal(err)
		}
		want, err := e.Generate(context.Background(), []generate.Request{{Prompt: tok.Encode(p, true),
			Options: generate.Options{MaxTokens: 9, Temperature: 0.8, Seed: 4 + uint64(i), TopP: 1, RepetitionPenalty: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if got.Text != want[0].Text || got.CompletionTokens != len(want[0].Tokens) {
			t.Errorf("prompt %q: %+v, engine %q", p, got, want[0].Text)
		}
	}

	// The default, auto, is the template SFT trains with by default: the
	// model's chat_template, else (here) Alpaca's prompt.
	rootCmd.SetIn(strings.NewReader("hi\n/exit\n"))
	defer rootCmd.SetIn(nil)
	out, err = runGotune(t, "chat", "--model", dir, "--max-tokens", "5", "--temperature", "0", "--system", "Be kind.")
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.Generate(context.Background(), []generate.Request{{Prompt: tok.Encode("Be kind.\n\n"+tokenizer.FormatAlpaca("hi", ""), true),
		Options: generate.Options{MaxTokens: 5, StopTokens: []int{mustID(t, tok.(*tokenizer.Tokenizer), "<|im_end|>")}, TopP: 1, RepetitionPenalty: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "> "+first[0].Text+"\n") {
		t.Fatalf("chat reply %q with the alpaca prompt, want it to start with %q", out, first[0].Text)
	}

	// Chat: two turns, the second sees the first in a ChatML prompt.
	rootCmd.SetIn(strings.NewReader("hi\nagain\n/exit\n"))
	out, err = runGotune(t, "chat", "--model", dir, "--max-tokens", "5", "--temperature", "0", "--system", "Be kind.", "--chat-template", "chatml")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(out, "> ") < 3 {
		t.Fatalf("chat transcript %q", out)
	}
	first, err = e.Generate(context.Background(), []generate.Request{{Prompt: tok.Encode(
		"<|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", false),
		Options: generate.Options{MaxTokens: 5, StopTokens: []int{mustID(t, tok.(*tokenizer.Tokenizer), "<|im_end|>")}, TopP: 1, RepetitionPenalty: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "> "+first[0].Text+"\n") {
		t.Fatalf("chat reply %q, want it to start with %q", out, first[0].Text)
	}
}

func mustID(t *testing.T, tok *tokenizer.Tokenizer, s string) int {
	id, ok := tok.TokenID(s)
	if !ok {
		t.Fatalf("no token %q", s)
	}
	return id
}

func TestSelfInstructCommandWithLocalTeacher(t *testing.T) {
	dir, _ := tinyModelDir(t)
	outPath := filepath.Join(t.TempDir(), "gen.arrow")
	_, err := runGotune(t, "self-instruct", "--model", dir, "--output", outPath, "--max-batches", "1",
		"--request-batch-size", "2", "--max-tokens", "8", "--verify")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := data.ReadGeneratedInstructions(outPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 0 {
		t.Fatalf("a random model wrote %d usable tasks", len(rows))
	}
	if _, err := runGotune(t, "self-instruct", "--output", filepath.Join(t.TempDir(), "x.arrow"), "--model", ""); err == nil {
		t.Fatal("self-instruct without a teacher accepted")
	}
}

// TestPairsCommand: the rejected answer of each written row is the model's
// greedy answer where that differs from the chosen one; a row whose chosen
// answer is the greedy answer keeps its own rejected answer.
func TestPairsCommand(t *testing.T) {
	dir, e := tinyModelDir(t)
	tok := e.Tokenizer().(*tokenizer.Tokenizer)
	greedy := func(prompt string) string {
		res, err := e.Generate(context.Background(), []generate.Request{{
			Prompt: tok.EncodePromptCompletion(prompt, "", true, false).IDs, Options: generate.Options{MaxTokens: 5}}})
		if err != nil {
			t.Fatal(err)
		}
		return res[0].Text
	}
	g := greedy("Q: two")
	if strings.TrimSpace(g) == "" || strings.TrimSpace(greedy("Q: one")) == "" {
		t.Skip("the random model's greedy answer is blank")
	}
	in := filepath.Join(t.TempDir(), "in.arrow")
	rows := []data.Preference{
		{Prompt: "Q: one", Chosen: "right answer", Rejected: "old one"},
		{Prompt: "Q: two", Chosen: g, Rejected: "old two"}, // the model answers it right
	}
	if err := data.WritePreferences(in, rows); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.arrow")
	if _, err := runGotune(t, "pairs", "--model", dir, "--data", in, "--out", out, "--samples", "1",
		"--temperature", "0", "--max-tokens", "5"); err != nil {
		t.Fatal(err)
	}
	got, err := data.ReadPreferences(out)
	if err != nil {
		t.Fatal(err)
	}
	want := []data.Preference{
		{Prompt: "Q: one", Chosen: "right answer", Rejected: strings.TrimSpace(greedy("Q: one"))},
		rows[1],
	}
	if len(got) != 2 || got[0].Rejected != want[0].Rejected || got[0].Chosen != want[0].Chosen || got[1].Rejected != "old two" {
		t.Fatalf("pairs wrote %+v, want %+v", got, want)
	}
}

// TestEvalCommandOnDataset: `gotune eval --data` prints what eval.Run
// computes, and the command refuses --text with --data.
func TestEvalCommandOnDataset(t *testing.T) {
	t.Cleanup(func() {
		for _, name := range []string{"data", "text", "adapter"} {
			f := evalCmd.Flags().Lookup(name)
			f.Value.Set("")
			f.Changed = false
		}
	})
	dir, _ := tinyModelDir(t)
	path := filepath.Join(t.TempDir(), "rows.arrow")
	rows := []data.Instruction{{Instruction: "Say hi.", Output: "hi"}, {Instruction: "Add 1 and 2.", Output: "3"}}
	if err := data.WriteInstructions(path, rows); err != nil {
		t.Fatal(err)
	}
	out, err := runGotune(t, "eval", "--model", dir, "--data", path, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got eval.LossResult
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	cfg := eval.DefaultConfig()
	cfg.Model, cfg.Data = dir, path
	want, err := eval.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rows != 2 || got.Tokens != want.Tokens || got.Loss != want.Loss || got.Tokens == 0 {
		t.Errorf("eval --data printed %+v, want %+v", got, want)
	}
	if _, err := runGotune(t, "eval", "--model", dir, "--data", path, "--text", path); err == nil {
		t.Error("eval with both --text and --data: no error")
	}
}

// TestGenerateBFloat16 decodes with --base-dtype bfloat16 (testBaseDtype).
func TestGenerateBFloat16(t *testing.T) {
	testBaseDtype(t, finetune.BaseBFloat16, mgguf.F32, func(w *model.Weights) { w.StoreBF16(nil) },
		func(m any) bool { _, ok := m.([]uint16); return ok })
}

// TestGenerateQ8 decodes with --base-dtype q8_0 (testBaseDtype); its GGUF
// file is a Q8_0 export, whose blocks must come back as the float32
// model's own quantization.
func TestGenerateQ8(t *testing.T) {
	testBaseDtype(t, finetune.BaseQ8_0, mgguf.Q8_0, func(w *model.Weights) { w.StoreQ8() },
		func(m any) bool { _, ok := m.([]q8.Block); return ok })
}

// testBaseDtype decodes with --base-dtype dtype — the model read and then
// stored as dtype (store; a Hugging Face directory is read straight into
// bfloat16), with a live adapter, and with the adapter merged in float32
// first. The command's text must be the engine's on those weights built in
// the test, and the engine the command loads must hold its matrices as
// dtype (held) and give those weights' logits bit for bit; so must a GGUF
// export of the model (of type ggufType), read in float32 first.
func testBaseDtype(t *testing.T, dtype string, ggufType mgguf.Dtype, store func(*model.Weights), held func(any) bool) {
	dir, e := tinyModelDir(t)
	tok := e.Tokenizer()
	adapterDir := t.TempDir()
	ad, err := lora.New(e.Weights(), lora.Config{R: 4, Alpha: 8, Targets: []string{"q_proj", "up_proj"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	for mi, m := range ad.Modules {
		b := model.F32(m.B)
		for i := range b {
			b[i] = float32(math.Sin(float64(13*mi+i))) * 0.5
		}
	}
	if err := ad.Save(adapterDir, dir, "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	// reference is the engine on the saved model held as dtype, the
	// adapter live or merged first (in float32).
	reference := func(adapter, merge bool) *generate.Engine {
		w, err := hf.LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		a, _, _, err := lora.Load(adapterDir, w)
		if err != nil {
			t.Fatal(err)
		}
		if merge {
			if err := a.Merge(w); err != nil {
				t.Fatal(err)
			}
		}
		store(w)
		e, err := generate.New(w, tok)
		if err != nil {
			t.Fatal(err)
		}
		if adapter && !merge {
			e.SetAdapter(a)
		}
		return e
	}
	prompt := tok.Encode("Hello", true)
	logits := func(e *generate.Engine) []float32 {
		out, err := e.Forward([]*generate.State{e.NewState()}, [][]int{prompt})
		if err != nil {
			t.Fatal(err)
		}
		return out[0]
	}
	for _, c := range []struct {
		name           string
		adapter, merge bool
	}{{"base", false, false}, {"live adapter", true, false}, {"merged adapter", true, true}} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"generate", "--model", dir, "--prompt", "Hello", "--max-tokens", "12", "--temperature", "0", "--json", "--base-dtype", dtype}
			if c.adapter {
				args = append(args, "--adapter", adapterDir, fmt.Sprintf("--merge=%v", c.merge))
			}
			resetFlags(t, generateCmd) // earlier tests' --prompt values
			t.Cleanup(func() { resetFlags(t, generateCmd) })
			out, err := runGotune(t, args...)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Text string `json:"text"`
			}
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &got); err != nil {
				t.Fatalf("output %q: %v", out, err)
			}
			ref := reference(c.adapter, c.merge)
			want, err := ref.Generate(context.Background(), []generate.Request{{Prompt: prompt,
				Options: generate.Options{MaxTokens: 12, TopP: 1, RepetitionPenalty: 1}}})
			if err != nil {
				t.Fatal(err)
			}
			if got.Text != want[0].Text {
				t.Errorf("text %q, the engine on %s weights %q", got.Text, dtype, want[0].Text)
			}
			// The engine the command loads, from the flags it ran with.
			loaded, _, err := loadEngine(sectionGenerate)
			if err != nil {
				t.Fatal(err)
			}
			w := loaded.Weights()
			for name, m := range map[string]any{"embed_tokens": w.Embed.Data(), "q_proj": w.Layers[0].Wq.Data(), "down_proj": w.Layers[1].Down.Data()} {
				if !held(m) {
					t.Errorf("%s is held as %T, not %s", name, m, dtype)
				}
			}
			if g, r := logits(loaded), logits(ref); !slices.Equal(g, r) {
				t.Errorf("logits differ from the %s reference's", dtype)
			}
		})
	}

	// A GGUF file is read in float32 and then stored as dtype.
	t.Run("gguf", func(t *testing.T) {
		w, err := hf.LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "m.gguf")
		if err := mgguf.Save(path, w, tok.(*tokenizer.Tokenizer), mgguf.Options{Dtype: ggufType}); err != nil {
			t.Fatal(err)
		}
		resetFlags(t, generateCmd)
		t.Cleanup(func() { resetFlags(t, generateCmd) })
		if _, err := runGotune(t, "generate", "--model", path, "--prompt", "Hello", "--max-tokens", "3", "--base-dtype", dtype); err != nil {
			t.Fatal(err)
		}
		loaded, _, err := loadEngine(sectionGenerate)
		if err != nil {
			t.Fatal(err)
		}
		if m := loaded.Weights().Layers[0].Gate.Data(); !held(m) {
			t.Fatalf("gate_proj of the GGUF model is held as %T, not %s", m, dtype)
		}
		if g, r := logits(loaded), logits(reference(false, false)); !slices.Equal(g, r) {
			t.Errorf("logits differ from the %s reference's", dtype)
		}
	})
}
