package gguf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/tokenizer"
)

// The llama.cpp checker: testdata/llamacpp/check.mjs with node-llama-cpp
// (pinned in its package.json) installed by `npm ci` in that directory.
var checkerDir = filepath.Join("..", "..", "testdata", "llamacpp")

// requireLlamaCpp makes a missing checker a failure instead of a skip
// (CI sets it after installing the checker).
const requireLlamaCppEnv = "GOTUNE_REQUIRE_LLAMACPP"

// llamaCpp returns a function that runs the checker on a request, or skips
// the test when node or the installed package is absent.
func llamaCpp(t *testing.T) func(req checkRequest) checkResponse { return llamaCppB(t) }

// llamaCppB is llamaCpp for tests and benchmarks.
func llamaCppB(t testing.TB) func(req checkRequest) checkResponse {
	t.Helper()
	missing := func(why string) {
		if os.Getenv(requireLlamaCppEnv) != "" {
			t.Fatalf("llama.cpp checker unavailable (%s) but %s is set", why, requireLlamaCppEnv)
		}
		t.Skipf("llama.cpp checker unavailable: %s (run `npm ci` in testdata/llamacpp)", why)
	}
	if _, err := exec.LookPath("node"); err != nil {
		missing("node is not installed")
	}
	// node-llama-cpp 3.21.1 needs node 20 or later.
	if v, err := exec.Command("node", "-p", "process.versions.node").Output(); err != nil {
		missing(fmt.Sprintf("node does not run: %v", err))
	} else if major, _, _ := strings.Cut(strings.TrimSpace(string(v)), "."); atoi(major) < 20 {
		missing(fmt.Sprintf("node %s is older than 20", strings.TrimSpace(string(v))))
	}
	if _, err := os.Stat(filepath.Join(checkerDir, "node_modules", "node-llama-cpp", "package.json")); err != nil {
		missing("node-llama-cpp is not installed")
	}
	return func(req checkRequest) checkResponse {
		t.Helper()
		raw, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		reqPath := filepath.Join(t.TempDir(), "request.json")
		if err := os.WriteFile(reqPath, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		resPath := filepath.Join(filepath.Dir(reqPath), "response.json")
		cmd := exec.CommandContext(ctx, "node", "check.mjs", reqPath, resPath)
		cmd.Dir = checkerDir
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stderr, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("llama.cpp checker: %v\n%s", err, stderr.String())
		}
		out, err := os.ReadFile(resPath)
		if err != nil {
			t.Fatalf("llama.cpp checker: %v\n%s", err, stderr.String())
		}
		var res checkResponse
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("llama.cpp checker output %s: %v\n%s", resPath, err, stderr.String())
		}
		if len(res.Models) != len(req.Models) {
			t.Fatalf("llama.cpp checker answered %d models of %d", len(res.Models), len(req.Models))
		}
		return res
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

type greedyRequest struct {
	Prompt []int `json:"prompt"`
	N      int   `json:"n"`
}

type modelRequest struct {
	Path        string          `json:"path"`
	Lora        string          `json:"lora,omitempty"`
	ContextSize int             `json:"contextSize"`
	Vocab       int             `json:"vocab"`
	Prompts     []string        `json:"prompts,omitempty"`
	Greedy      []greedyRequest `json:"greedy,omitempty"`
	Probs       [][]int         `json:"probs,omitempty"`
	Speed       *greedyRequest  `json:"speed,omitempty"`
	Threads     int             `json:"threads,omitempty"`
}

type checkRequest struct {
	Models []modelRequest `json:"models"`
}

type modelResponse struct {
	BOS    *int        `json:"bos"`
	EOS    *int        `json:"eos"`
	AddBOS bool        `json:"addBos"`
	Tokens [][]int     `json:"tokens"`
	Greedy [][]int     `json:"greedy"`
	Probs  [][]float64 `json:"probs"`
	// DecodeTokensPerSecond is llama.cpp's greedy decoding speed after the
	// Speed prompt.
	DecodeTokensPerSecond float64 `json:"decodeTokensPerSecond"`
	// PrefillTokensPerSecond is the Speed prompt's length over the time
	// to the first generated token.
	PrefillTokensPerSecond float64 `json:"prefillTokensPerSecond"`
}

type checkResponse struct {
	Models []modelResponse `json:"models"`
}

// checkPrompts are tokenized by both sides: words, punctuation, digit
// runs, contractions, runs of spaces and newlines, non-ASCII letters and
// a special token written in the text.
var checkPrompts = []string{
	"Hello, world!",
	"The fox is red. Where is the fox?",
	"Answer: 12345 + 678 = 13023",
	"it's, we'll, they'RE, I'd",
	"  two  spaces,\ttab\n\nand newlines\r\n",
	"café naïve Ünïcödé 東京 🙂",
	"<|bos|>after the bos token<|eos|>",
	"### Instruction:\nName the colour of the fox.\n\n### Response:\n",
}

// gotuneGreedy decodes n tokens greedily from prompt with gotune's engine,
// and returns the smallest gap between the best and second-best logit on
// the way (how far the argmax is from a tie).
func gotuneGreedy(t *testing.T, w *model.Weights, tok *tokenizer.Tokenizer, prompt []int, n int) ([]int, float64) {
	t.Helper()
	e, err := generate.New(w, tok)
	if err != nil {
		t.Fatal(err)
	}
	st := e.NewState()
	feed := prompt
	var out []int
	margin := math.Inf(1)
	for range n {
		logits, err := e.Forward([]*generate.State{st}, [][]int{feed})
		if err != nil {
			t.Fatal(err)
		}
		best, second := -1, -1
		for i, v := range logits[0] {
			switch {
			case best < 0 || v > logits[0][best]:
				best, second = i, best
			case second < 0 || v > logits[0][second]:
				second = i
			}
		}
		margin = math.Min(margin, float64(logits[0][best]-logits[0][second]))
		out = append(out, best)
		feed = []int{best}
	}
	// The engine's own greedy decoding gives the same tokens.
	res, err := e.Generate(context.Background(), []generate.Request{{Prompt: prompt, Options: generate.Options{MaxTokens: n, IgnoreEOS: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res[0].Tokens, out) {
		t.Fatalf("engine greedy %v, step-by-step argmax %v", res[0].Tokens, out)
	}
	return out, margin
}

// gotuneProbs is the softmax of the logits after prompt.
func gotuneProbs(t *testing.T, w *model.Weights, tok *tokenizer.Tokenizer, prompt []int) []float64 {
	t.Helper()
	e, err := generate.New(w, tok)
	if err != nil {
		t.Fatal(err)
	}
	logits, err := e.Forward([]*generate.State{e.NewState()}, [][]int{prompt})
	if err != nil {
		t.Fatal(err)
	}
	mx := slices.Max(logits[0])
	p := make([]float64, len(logits[0]))
	var sum float64
	for i, v := range logits[0] {
		p[i] = math.Exp(float64(v - mx))
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// checkModels are the llama.cpp test models: the world-pretrained base
// (llama, the project's trained BPE tokenizer), the same with Llama-3.1's
// RoPE scaling, and the same weights as qwen2 (with q/k/v biases and an
// untied output head) and qwen3 (with q/k norms), whose logits are far
// enough from ties for greedy decoding to be compared token for token.
func checkModels(t *testing.T) map[string]*model.Weights {
	t.Helper()
	base, err := hf.LoadModel(tinymodel.WorldBase())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*model.Weights{"llama": base}
	// The same weights with Llama-3.1's RoPE scaling rule (written as
	// rope_freqs.weight), its original context shrunk to 64 positions so
	// that the rescaled frequencies change the logits within the test's
	// context.
	scaled, err := hf.LoadModel(tinymodel.WorldBase())
	if err != nil {
		t.Fatal(err)
	}
	scaled.Config.RopeScaling = &model.RopeScaling{RopeType: "llama3", Factor: 4, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 64}
	out["llama-rope-scaled"] = scaled
	r := rand.New(rand.NewPCG(5, 6))
	for _, mt := range []string{"qwen2", "qwen3"} {
		c := base.Config
		fam, err := model.LookupFamily(mt)
		if err != nil {
			t.Fatal(err)
		}
		c.ModelType, c.Architectures, c.AttentionBias = mt, fam.Architectures[:1], mt == "qwen2"
		if mt == "qwen3" {
			c.HeadDimOverride = c.HeadDim()
		}
		if mt == "qwen2" {
			// An output head of its own (output.weight), equal to the
			// embeddings plus a little noise.
			c.TieWordEmbeddings = false
		}
		w, err := model.Allocate(c)
		if err != nil {
			t.Fatal(err)
		}
		byName := map[string][]float32{}
		for _, n := range base.Named() {
			byName[n.Name] = model.F32(n.Tensor)
		}
		for _, n := range w.Named() {
			if src, ok := byName[n.Name]; ok {
				copy(model.F32(n.Tensor), src)
				continue
			}
			if n.Name == "lm_head.weight" {
				for i, v := range byName["model.embed_tokens.weight"] {
					model.F32(n.Tensor)[i] = v + 0.002*float32(r.NormFloat64())
				}
				continue
			}
			for i := range model.F32(n.Tensor) { // biases and q/k norms
				v := 0.02 * float32(r.NormFloat64())
				if n.Tensor.Dims() == 1 && (filepath.Ext(n.Name) == ".weight") {
					v += 1
				}
				model.F32(n.Tensor)[i] = v
			}
		}
		out[mt] = w
	}
	return out
}

// TestLlamaCpp loads gotune's GGUF exports in llama.cpp itself: its
// tokenization of checkPrompts equals gotune's; 32 greedy tokens from the
// F32 export equal gotune's engine's token for token; the next-token
// probabilities (the softmax of the logits) of the F32, F16, BF16 and Q8_0
// exports are within the stated tolerances of gotune's (for Q8_0 also of
// gotune's engine on the same Q8_0 blocks), and the agreement
// of the quantized exports' greedy tokens with gotune's F32 ones is
// reported.
func TestLlamaCpp(t *testing.T) {
	run := llamaCpp(t)
	tok, err := tokenizer.Load(tinymodel.WorldBase())
	if err != nil {
		t.Fatal(err)
	}
	// Largest |Δp| over the vocabulary allowed, by export type. Even the
	// F32 export is not bit-exact: llama.cpp keeps its KV cache in F16 by
	// default (measured: up to 1.4e-4 for F32, 3e-4 for F16, 1.4e-3 for
	// BF16, 1.2e-2 for Q8_0 on these models).
	tolerance := map[Dtype]float64{F32: 5e-4, F16: 5e-3, BF16: 5e-3, Q8_0: 3e-2}
	prompts := []string{"The fox", "### Instruction:\nWhere is the fox?\n\n### Response:\n"}
	const n = 32
	dir := t.TempDir()
	models := checkModels(t)
	var req checkRequest
	type job struct {
		arch  string
		dtype Dtype
	}
	var jobs []job
	for _, arch := range []string{"llama", "llama-rope-scaled", "qwen2", "qwen3"} {
		w := models[arch]
		for _, d := range []Dtype{F32, F16, BF16, Q8_0} {
			path := filepath.Join(dir, fmt.Sprintf("%s-%s.gguf", arch, d))
			if err := Save(path, w, tok, Options{Dtype: d}); err != nil {
				t.Fatal(err)
			}
			m := modelRequest{Path: path, ContextSize: 128, Vocab: w.Config.VocabSize}
			if d == F32 {
				m.Prompts = checkPrompts
			}
			for _, p := range prompts {
				ids := tok.Encode(p, true)
				m.Greedy = append(m.Greedy, greedyRequest{Prompt: ids, N: n})
				m.Probs = append(m.Probs, ids)
			}
			req.Models = append(req.Models, m)
			jobs = append(jobs, job{arch, d})
		}
	}
	res := run(req)
	for i, j := range jobs {
		w, got := models[j.arch], res.Models[i]
		name := fmt.Sprintf("%s %s", j.arch, j.dtype)
		if j.dtype == F32 {
			for k, p := range checkPrompts {
				if want := tok.Encode(p, false); !slices.Equal(got.Tokens[k], want) {
					t.Errorf("%s: llama.cpp tokenizes %q as %v, gotune as %v", name, p, got.Tokens[k], want)
				}
			}
			if got.BOS == nil || *got.BOS != tok.BOS() || got.EOS == nil || *got.EOS != tok.EOS() || !got.AddBOS {
				t.Errorf("%s: llama.cpp's bos %v eos %v add_bos %v, gotune's %d %d true", name, got.BOS, got.EOS, got.AddBOS, tok.BOS(), tok.EOS())
			}
		}
		// gotune's engine on the Q8_0 export's blocks: a copy of the model
		// held in Q8_0 (model.Weights.StoreQ8, the export's rule), as
		// `generate --base-dtype q8_0` holds it.
		var quant *model.Weights
		if j.dtype == Q8_0 {
			quant = copyWeights(t, w)
			quant.StoreQ8()
		}
		agree, total := 0, 0
		for k, p := range prompts {
			ids := tok.Encode(p, true)
			want, margin := gotuneGreedy(t, w, tok, ids, n)
			if j.dtype == F32 {
				if margin < 1e-3 {
					t.Errorf("%s: %q: gotune's greedy decoding comes within %.2g of a tie; pick another prompt", name, p, margin)
				}
				if !slices.Equal(got.Greedy[k], want) {
					t.Errorf("%s: %q: llama.cpp greedy %v, gotune %v", name, p, got.Greedy[k], want)
				}
			}
			for s := range want {
				total++
				if got.Greedy[k][s] == want[s] {
					agree++
				} else {
					break // after a divergence the contexts differ
				}
			}
			wantP := gotuneProbs(t, w, tok, ids)
			var maxDiff float64
			for v := range wantP {
				maxDiff = math.Max(maxDiff, math.Abs(got.Probs[k][v]-wantP[v]))
			}
			if maxDiff > tolerance[j.dtype] {
				t.Errorf("%s: %q: next-token probabilities differ by up to %.3g (tolerance %.g)", name, p, maxDiff, tolerance[j.dtype])
			}
			t.Logf("%s: %q: max |Δp| %.3g (tolerance %.g), greedy margin %.3g", name, p, maxDiff, tolerance[j.dtype], margin)
			if quant != nil {
				// Left: llama.cpp's rounding of the activations to Q8 and
				// of its KV cache to F16.
				wantQ := gotuneProbs(t, quant, tok, ids)
				var diffQ float64
				for v := range wantQ {
					diffQ = math.Max(diffQ, math.Abs(got.Probs[k][v]-wantQ[v]))
				}
				if diffQ > q8EngineTolerance {
					t.Errorf("%s: %q: next-token probabilities differ from gotune's Q8_0 engine's by up to %.3g (tolerance %.g)", name, p, diffQ, q8EngineTolerance)
				}
				t.Logf("%s: %q: max |Δp| against gotune's Q8_0 engine %.3g", name, p, diffQ)
			}
		}
		t.Logf("%s: greedy tokens agreeing with gotune's F32 before the first divergence: %d of %d (%.0f%%)",
			name, agree, total, 100*float64(agree)/float64(total))
	}
}

// copyWeights returns a float32 copy of w.
func copyWeights(t *testing.T, w *model.Weights) *model.Weights {
	t.Helper()
	c, err := model.Allocate(w.Config)
	if err != nil {
		t.Fatal(err)
	}
	src := w.Named()
	for i, n := range c.Named() {
		copy(model.F32(n.Tensor), model.F32(src[i].Tensor))
	}
	return c
}

// q8EngineTolerance is the largest |Δp| allowed between llama.cpp on a
// Q8_0 export and gotune's engine on the same blocks (measured: up to
// 9.8e-3 on these models, as much as against gotune's float32 engine:
// llama.cpp's rounding of the activations to Q8 is most of either gap).
const q8EngineTolerance = 2e-2

// randomLoRA returns a LoRA adapter of rank r on the attention and MLP
// projections of w, and a copy of w with it merged (W + scale·B·A).
func randomLoRA(t *testing.T, w *model.Weights, r int, scale float64, seed uint64) ([]LoRAModule, *model.Weights) {
	t.Helper()
	merged := copyWeights(t, w)
	rng := rand.New(rand.NewPCG(seed, 1))
	var mods []LoRAModule
	for l := range w.Config.NumHiddenLayers {
		for _, name := range []string{"q_proj", "k_proj", "v_proj", "down_proj"} {
			wt, err := merged.Layers[l].Linear(name)
			if err != nil {
				t.Fatal(err)
			}
			out, in := wt.Shape()[0], wt.Shape()[1]
			m := LoRAModule{Layer: l, Module: name, A: make([]float32, r*in), B: make([]float32, out*r)}
			for i := range m.A {
				m.A[i] = float32(rng.NormFloat64() * 0.1)
			}
			for i := range m.B {
				m.B[i] = float32(rng.NormFloat64() * 0.1)
			}
			data := model.F32(wt)
			for o := range out {
				for c := range in {
					var s float64
					for k := range r {
						s += float64(m.B[o*r+k]) * float64(m.A[k*in+c])
					}
					data[o*in+c] += float32(scale * s)
				}
			}
			mods = append(mods, m)
		}
	}
	return mods, merged
}

// TestLlamaCppAdapter: a base GGUF with a LoRA adapter GGUF in llama.cpp
// decodes the same greedy tokens as the merged export in llama.cpp and as
// gotune's engine on the merged weights (llama, whose q/k rows are
// permuted, and qwen3, whose are not).
func TestLlamaCppAdapter(t *testing.T) {
	run := llamaCpp(t)
	tok, err := tokenizer.Load(tinymodel.WorldBase())
	if err != nil {
		t.Fatal(err)
	}
	models := checkModels(t)
	dir := t.TempDir()
	prompt := tok.Encode("The fox", true)
	const n, r, alpha = 32, 4, 8.0
	var req checkRequest
	var merged []*model.Weights
	archs := []string{"llama", "qwen3"}
	for _, arch := range archs {
		w := models[arch]
		mods, m := randomLoRA(t, w, r, alpha/r, 11)
		basePath := filepath.Join(dir, arch+"-base.gguf")
		adapterPath := filepath.Join(dir, arch+"-lora.gguf")
		mergedPath := filepath.Join(dir, arch+"-merged.gguf")
		if err := Save(basePath, w, tok, Options{}); err != nil {
			t.Fatal(err)
		}
		if err := SaveAdapter(adapterPath, w.Config, r, alpha/r, mods, ""); err != nil {
			t.Fatal(err)
		}
		if err := Save(mergedPath, m, tok, Options{}); err != nil {
			t.Fatal(err)
		}
		g := []greedyRequest{{Prompt: prompt, N: n}}
		req.Models = append(req.Models,
			modelRequest{Path: basePath, Lora: adapterPath, ContextSize: 128, Vocab: w.Config.VocabSize, Greedy: g},
			modelRequest{Path: mergedPath, ContextSize: 128, Vocab: w.Config.VocabSize, Greedy: g})
		merged = append(merged, m)
	}
	res := run(req)
	for i, arch := range archs {
		want, margin := gotuneGreedy(t, merged[i], tok, prompt, n)
		withLoRA, mergedCpp := res.Models[2*i].Greedy[0], res.Models[2*i+1].Greedy[0]
		baseOnly, _ := gotuneGreedy(t, models[arch], tok, prompt, n)
		if slices.Equal(want, baseOnly) {
			t.Errorf("%s: the adapter does not change the greedy tokens; the check would not see it ignored", arch)
		}
		if !slices.Equal(mergedCpp, want) {
			t.Errorf("%s: llama.cpp on the merged export %v, gotune %v (margin %.3g)", arch, mergedCpp, want, margin)
		}
		if !slices.Equal(withLoRA, want) {
			t.Errorf("%s: llama.cpp with the adapter GGUF %v, gotune merged %v (margin %.3g)", arch, withLoRA, want, margin)
		}
	}
}

// TestLlamaCppFixtureTokenizers: the GGUF tokenizer metadata of the
// fixture tokenizers (Qwen3 and Llama-3: byte-level BPE, "qwen2" and
// "llama-bpe"; Llama-2: SentencePiece-style BPE, "llama") makes
// llama.cpp tokenize the fixtures' golden texts as gotune (and Hugging
// Face, whose encodings the golden files hold) does. The models are tiny
// random ones with the fixtures' vocabularies.
func TestLlamaCppFixtureTokenizers(t *testing.T) {
	run := llamaCpp(t)
	dir := t.TempDir()
	names := []string{"qwen3", "llama3", "llama2"}
	toks := map[string]*tokenizer.Tokenizer{}
	texts := map[string][]string{}
	var req checkRequest
	for _, name := range names {
		fixture := filepath.Join("..", "..", "tokenizer", "testdata", name)
		tok, err := tokenizer.Load(fixture)
		if err != nil {
			t.Fatal(err)
		}
		c := familyConfig(t, "llama", tok.VocabSize())
		c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.NumKeyValueHeads = 32, 32, 1, 2, 1
		c.TieWordEmbeddings = true
		w, err := model.NewRandom(c, 1)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".gguf")
		if err := Save(path, w, tok, Options{Dtype: F16}); err != nil {
			t.Fatal(err)
		}
		toks[name], texts[name] = tok, goldenTexts(t, filepath.Join(fixture, "golden.jsonl"))
		req.Models = append(req.Models, modelRequest{Path: path, ContextSize: 64, Vocab: c.VocabSize, Prompts: texts[name]})
	}
	res := run(req)
	for i, name := range names {
		bad, skipped := 0, 0
		for k, s := range texts[name] {
			if promotedEOG(toks[name], s) {
				skipped++
				continue
			}
			want := toks[name].Encode(s, false)
			if !slices.Equal(res.Models[i].Tokens[k], want) {
				bad++
				if bad <= 3 {
					t.Errorf("%s: llama.cpp tokenizes %q as %v, gotune as %v", name, s, res.Models[i].Tokens[k], want)
				}
			}
		}
		t.Logf("%s: %d of %d golden texts tokenized alike (%d skipped: they spell an end-of-generation text llama.cpp makes special)",
			name, len(texts[name])-bad-skipped, len(texts[name])-skipped, skipped)
	}
}

// llama.cpp's vocabulary loader turns these texts into control tokens
// (end of generation) even where the vocabulary has them as ordinary
// tokens, as Qwen's has "</s>"; a text spelling one then tokenizes
// differently from Hugging Face, whatever the GGUF says (llama-vocab.cpp).
var llamaCppEOGTexts = []string{"</s>", "<|eot_id|>", "<|im_end|>", "<|endoftext|>", "<|end_of_text|>", "<end_of_turn>", "<|end|>", "<EOT>"}

// promotedEOG reports a text spelling one of llamaCppEOGTexts that tok
// holds as an ordinary (not special) token.
func promotedEOG(tok *tokenizer.Tokenizer, s string) bool {
	for _, e := range llamaCppEOGTexts {
		if id, ok := tok.TokenID(e); ok && !tok.IsSpecial(id) && strings.Contains(s, e) {
			return true
		}
	}
	return false
}
