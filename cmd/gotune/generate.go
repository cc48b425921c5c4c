package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	mgguf "github.com/gotune/gotune/model/gguf"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// Sections of the decoding commands in a --config file, and the keys of
// their CLI-only flags (the sampling keys are generate's constants).
const (
	sectionGenerate = "generate"
	sectionChat     = "chat"

	// The flags of modelFlags.
	engineKeyModel     = "model"
	engineKeyTokenizer = "tokenizer"
	engineKeyAdapter   = "adapter"
	engineKeyMerge     = "merge"

	chatKeyTemplate       = "chat-template"
	chatKeySystem         = "system"
	generateKeyPrompt     = "prompt"
	generateKeyPromptFile = "prompt-file"
	generateKeyJSON       = "json"
)

// modelFlags are the flags of every command that loads a model to decode.
func modelFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String(engineKeyModel, "", "model directory (config.json, model.safetensors, tokenizer.json)")
	f.String(engineKeyTokenizer, "", "tokenizer file or directory (default: the model directory)")
	f.String(engineKeyAdapter, "", "PEFT LoRA adapter directory to apply")
	f.Bool(engineKeyMerge, false, "fold the adapter into a copy of the weights instead of applying it live")
	f.String(finetune.KeyBaseDtype, finetune.BaseFloat32, "how the model's embeddings and linear weights are held: float32; bfloat16 (half the memory and half the bytes a decoding step reads); or q8_0 (blocks of 32 int8s with one scale, as llama.cpp's Q8_0: 9/32 of the bytes; matrices whose rows are not whole blocks stay float32); products in float32")
}

// samplingFlags are the decoding options shared by generate and chat, with
// the defaults d.
func samplingFlags(cmd *cobra.Command, d generate.Options, template string) {
	f := cmd.Flags()
	f.Int(generate.KeyMaxTokens, d.MaxTokens, "new tokens at most")
	f.Float64(generate.KeyTemperature, d.Temperature, "sampling temperature (0: greedy)")
	f.Int(generate.KeyTopK, d.TopK, "sample among the k most likely tokens (0: all)")
	f.Float64(generate.KeyTopP, d.TopP, "nucleus sampling mass")
	f.Float64(generate.KeyRepetitionPenalty, d.RepetitionPenalty, "CTRL repetition penalty (1: off)")
	f.StringSlice(generate.KeyStop, d.Stop, "stop strings (repeatable)")
	f.Uint64(generate.KeySeed, d.Seed, "sampling seed")
	f.String(chatKeyTemplate, template, "prompt format: none, auto (the tokenizer's chat_template, else alpaca: as sft's default), alpaca, chatml, llama3 or jinja (the tokenizer's chat_template)")
}

// samplingOptions reads section s's sampling flags, every one of which
// must be valid as given.
func samplingOptions(s string) (generate.Options, error) {
	var o generate.Options
	o.MaxTokens, o.Temperature = cfgInt(s, generate.KeyMaxTokens), cfgFloat(s, generate.KeyTemperature)
	o.TopK, o.TopP = cfgInt(s, generate.KeyTopK), cfgFloat(s, generate.KeyTopP)
	o.RepetitionPenalty = cfgFloat(s, generate.KeyRepetitionPenalty)
	o.Stop, o.Seed = cfgStringSlice(s, generate.KeyStop), cfg.GetUint64(configKey(s, generate.KeySeed))
	if err := o.ValidateExplicit(); err != nil {
		return o, fmt.Errorf("%s: %w", s, err)
	}
	return o, nil
}

// chatTemplate reads section s's --chat-template: "none" or a template
// name, never empty.
func chatTemplate(s string) (string, error) {
	t := cfgString(s, chatKeyTemplate)
	if t == "" {
		return "", fmt.Errorf("%s: --%s must not be empty (none: no template)", s, chatKeyTemplate)
	}
	return t, nil
}

// decoding is what generate and chat read before they decode.
type decoding struct {
	opt      generate.Options
	template string
	engine   *generate.Engine
	tok      *tokenizer.Tokenizer
}

// openDecoding reads section s's sampling options and chat template, then
// loads its engine, so that an invalid flag stops the command before the
// model is loaded.
func openDecoding(s string) (decoding, error) {
	opt, err := samplingOptions(s)
	if err != nil {
		return decoding{}, err
	}
	template, err := chatTemplate(s)
	if err != nil {
		return decoding{}, err
	}
	e, tok, err := loadEngine(s)
	if err != nil {
		return decoding{}, err
	}
	// auto renders as SFT trained: the model's own chat template, else
	// Alpaca's.
	template = finetune.ResolveTemplate(tok, template)
	return decoding{opt: opt, template: template, engine: e, tok: tok}, nil
}

// loadEngine loads the model, tokenizer and adapter named by section s's
// flags.
func loadEngine(s string) (*generate.Engine, *tokenizer.Tokenizer, error) {
	dir := cfgString(s, engineKeyModel)
	if dir == "" {
		return nil, nil, fmt.Errorf("%s needs --%s", s, engineKeyModel)
	}
	dtype := cfgString(s, finetune.KeyBaseDtype)
	if err := finetune.CheckDecodeDtype(dtype); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", s, err)
	}
	adapterDir, merge := cfgString(s, engineKeyAdapter), cfgBool(s, engineKeyMerge)
	// A bfloat16 or Q8_0 model is read straight into that form, unless an
	// adapter is to be merged into it first (in float32) or it is a GGUF
	// file.
	heldOnLoad := dtype != "" && dtype != finetune.BaseFloat32 && !(adapterDir != "" && merge)
	var w *model.Weights
	var tok *tokenizer.Tokenizer
	var err error
	tokPath := cfgString(s, engineKeyTokenizer)
	if mgguf.IsGGUF(dir) {
		w, tok, err = mgguf.Load(dir) // the tokenizer is in the file's metadata
		heldOnLoad = false
	} else {
		opt := hf.LoadOptions{BF16: heldOnLoad && dtype == finetune.BaseBFloat16, Q8: heldOnLoad && dtype == finetune.BaseQ8_0}
		w, _, err = hf.LoadModelWith(dir, opt)
		if tokPath == "" {
			tokPath = dir
		}
	}
	if err != nil {
		return nil, nil, err
	}
	if tokPath != "" {
		if tok, err = tokenizer.Load(tokPath); err != nil {
			return nil, nil, err
		}
	}
	var ad *lora.Adapter
	if adapterDir != "" {
		if ad, _, _, err = lora.Load(adapterDir, w); err != nil {
			return nil, nil, err
		}
		if merge {
			if err := ad.Merge(w); err != nil {
				return nil, nil, err
			}
			ad = nil
		}
	}
	switch {
	case heldOnLoad:
	case dtype == finetune.BaseBFloat16:
		w.StoreBF16(nil)
	case dtype == finetune.BaseQ8_0:
		// Quantized after loading (and merging) in float32; the Q8_0
		// blocks of a GGUF file that ggml's quantizer wrote (llama.cpp's,
		// gotune's export), dequantized on load, come back as they were.
		w.StoreQ8()
	}
	e, err := generate.New(w, tok)
	if err != nil {
		return nil, nil, err
	}
	if ad != nil {
		e.SetAdapter(ad)
	}
	return e, tok, nil
}

// chatMessage is one turn given to renderChat.
type chatMessage struct{ Role, Content string }

// renderChat formats a conversation ending where the assistant's reply
// begins, with the tokenizer's named template (alpaca, chatml, llama3 or
// jinja), and says whether the text still needs the tokenizer's special
// tokens (BOS) when encoded: only Alpaca's plain-text prompt does.
func renderChat(tok *tokenizer.Tokenizer, template string, msgs []chatMessage) (text string, addSpecial bool, err error) {
	ms := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		ms[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	text, err = tok.RenderChat(template, ms, true)
	return text, template == tokenizer.TemplateAlpaca, err
}

// chatStopTokens are the end-of-turn tokens of the chat formats that the
// tokenizer knows.
func chatStopTokens(tok *tokenizer.Tokenizer) []int {
	var ids []int
	for _, s := range []string{"<|im_end|>", "<|eot_id|>", "<|end|>"} {
		if id, ok := tok.TokenID(s); ok {
			ids = append(ids, id)
		}
	}
	return ids
}

// encodePrompt encodes a user prompt, through the chat template unless it
// is "none".
func encodePrompt(tok *tokenizer.Tokenizer, template, system, prompt string) ([]int, error) {
	if template == "none" {
		return tok.Encode(prompt, true), nil
	}
	var msgs []chatMessage
	if system != "" {
		msgs = append(msgs, chatMessage{"system", system})
	}
	text, special, err := renderChat(tok, template, append(msgs, chatMessage{"user", prompt}))
	if err != nil {
		return nil, err
	}
	return tok.Encode(text, special), nil
}

var generateCmd = &cobra.Command{
	Use:   "generate",
	Short: "Continue prompts with a model (batched, KV-cache decoding)",
	Long: `Decode continuations of one or more prompts, all in one batch. A single
prompt is streamed to stdout as it is generated; several are printed one after
the other (or as JSON lines with --json), each with seed --seed plus its index.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = sectionGenerate
		prompts := cfgStringSlice(s, generateKeyPrompt)
		if f := cfgString(s, generateKeyPromptFile); f != "" {
			raw, err := os.ReadFile(f)
			if err != nil {
				return err
			}
			prompts = append(prompts, string(raw))
		}
		if len(prompts) == 0 {
			return fmt.Errorf("generate needs --%s or --%s", generateKeyPrompt, generateKeyPromptFile)
		}
		dec, err := openDecoding(s)
		if err != nil {
			return err
		}
		opt, template, e, tok := dec.opt, dec.template, dec.engine, dec.tok
		if template != "none" {
			opt.StopTokens = chatStopTokens(tok)
		}
		out := cmd.OutOrStdout()
		asJSON := cfgBool(s, generateKeyJSON)
		reqs := make([]generate.Request, len(prompts))
		for i, p := range prompts {
			ids, err := encodePrompt(tok, template, cfgString(s, chatKeySystem), p)
			if err != nil {
				return err
			}
			reqs[i] = generate.Request{Prompt: ids, Options: opt}
			reqs[i].Seed += uint64(i)
		}
		if len(reqs) == 1 && !asJSON {
			reqs[0].OnText = func(d string) { io.WriteString(out, d) }
		}
		res, err := e.Generate(cmd.Context(), reqs)
		if err != nil {
			return err
		}
		for i, r := range res {
			switch {
			case asJSON:
				json.NewEncoder(out).Encode(map[string]any{"prompt": prompts[i], "text": r.Text, "finish_reason": r.FinishReason,
					"prompt_tokens": r.PromptTokens, "completion_tokens": len(r.Tokens)})
			case len(res) == 1:
				fmt.Fprintln(out)
			default:
				fmt.Fprintf(out, "--- %d (%s)\n%s%s\n", i, r.FinishReason, prompts[i], r.Text)
			}
		}
		return nil
	},
}

var chatCmd = &cobra.Command{
	Use:   "chat",
	Short: "Talk with a model in the terminal",
	Long: `An interactive conversation: each line you type is a user turn, the reply
streams back. "/reset" starts over, "/exit" or end of input quits.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = sectionChat
		dec, err := openDecoding(s)
		if err != nil {
			return err
		}
		opt, template, e, tok := dec.opt, dec.template, dec.engine, dec.tok
		opt.StopTokens = chatStopTokens(tok)
		var history []chatMessage
		if sys := cfgString(s, chatKeySystem); sys != "" {
			history = append(history, chatMessage{"system", sys})
		}
		system := len(history)
		out := cmd.OutOrStdout()
		in := bufio.NewScanner(cmd.InOrStdin())
		in.Buffer(make([]byte, 64<<10), 1<<20)
		for turn := 0; ; turn++ {
			fmt.Fprint(out, "> ")
			if !in.Scan() {
				fmt.Fprintln(out)
				return in.Err()
			}
			line := strings.TrimSpace(in.Text())
			switch line {
			case "":
				continue
			case "/exit", "/quit":
				return nil
			case "/reset":
				history = history[:system]
				continue
			}
			history = append(history, chatMessage{"user", line})
			text, special, err := renderChat(tok, template, history)
			if err != nil {
				return err
			}
			o := opt
			o.Seed += uint64(turn)
			res, err := e.Generate(cmd.Context(), []generate.Request{{Prompt: tok.Encode(text, special), Options: o,
				OnText: func(d string) { io.WriteString(out, d) }}})
			if err != nil {
				return err
			}
			fmt.Fprintln(out)
			history = append(history, chatMessage{"assistant", strings.TrimSpace(res[0].Text)})
		}
	},
}

func init() {
	d := generate.DefaultOptions()
	d.MaxTokens, d.Temperature = 128, 0.7
	modelFlags(generateCmd)
	samplingFlags(generateCmd, d, "none")
	f := generateCmd.Flags()
	f.StringSlice(generateKeyPrompt, nil, "prompt text (repeatable: the prompts are decoded as one batch)")
	f.String(generateKeyPromptFile, "", "file whose whole content is one more prompt")
	f.String(chatKeySystem, "", "system message (with --chat-template)")
	f.Bool(generateKeyJSON, false, "print one JSON object per prompt")
	bindFlags(generateCmd, sectionGenerate)
	rootCmd.AddCommand(generateCmd)

	d.MaxTokens = 512
	modelFlags(chatCmd)
	samplingFlags(chatCmd, d, finetune.TemplateAuto)
	chatCmd.Flags().String(chatKeySystem, "", "system message opening the conversation")
	bindFlags(chatCmd, sectionChat)
	rootCmd.AddCommand(chatCmd)
}
