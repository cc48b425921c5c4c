package generate

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gotune/gotune/internal/reference"
	"github.com/gotune/gotune/model"
)

// loadRefFixture reads a reference case and its checkpoint (tinymodel's
// Reference does the same, but tinymodel imports this package).
func loadRefFixture(t *testing.T, dir string) (*reference.Case, *model.Weights) {
	t.Helper()
	cfg, err := model.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	f, err := reference.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.Allocate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	params := map[string][]float32{}
	for _, p := range w.Named() {
		params[p.Name] = model.F32(p.Tensor)
	}
	if err := f.Fill(params); err != nil {
		t.Fatal(err)
	}
	return f, w
}

// The engine's logits over each fixture row equal the PyTorch reference
// within 1e-4 of the largest logit, and greedy decoding from the fixture's
// checkpoint follows the training graph's argmax step by step (every case,
// the Qwen3 one included).
func TestEngineMatchesFixtures(t *testing.T) {
	dirs, err := filepath.Glob("../testdata/reference/*")
	if err != nil || len(dirs) < 4 {
		t.Fatalf("reference fixtures missing (%v): run /usr/bin/python3 model/testdata/gen_reference.py", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f, w := loadRefFixture(t, dir)
			V := w.Config.VocabSize
			want := f.Logits // (B·T, V)
			e, err := New(w, nil)
			if err != nil {
				t.Fatal(err)
			}
			var scale, worst float64
			for _, v := range want {
				scale = math.Max(scale, math.Abs(float64(v)))
			}
			for b := range f.Batch {
				row := make([]int, f.Seq)
				for i := range row {
					row[i] = int(f.Tokens[b*f.Seq+i])
				}
				out, err := e.ForwardAll([]*State{e.NewState()}, [][]int{row})
				if err != nil {
					t.Fatal(err)
				}
				ref := want[b*f.Seq*V : (b+1)*f.Seq*V]
				for i, v := range out[0] {
					worst = math.Max(worst, math.Abs(float64(v)-float64(ref[i])))
				}
			}
			if worst > 1e-4*scale {
				t.Fatalf("engine logits deviate from the reference by %.2g of the largest logit", worst/scale)
			}
			t.Logf("engine logits: max relative deviation %.2g", worst/scale)

			prompt := make([]int, 4)
			for i := range prompt {
				prompt[i] = int(f.Tokens[i])
			}
			const n = 12
			res, err := e.Generate(context.Background(), []Request{{Prompt: prompt, Options: Options{MaxTokens: n, IgnoreEOS: true}}})
			if err != nil {
				t.Fatal(err)
			}
			gen := res[0].Tokens
			if len(gen) != n {
				t.Fatalf("generated %d tokens, want %d", len(gen), n)
			}
			logits := graphLogits(t, w, append(slices.Clone(prompt), gen...))
			for i, tok := range gen {
				if best := argmax(logits[(len(prompt)-1+i)*V : (len(prompt)+i)*V]); best != tok {
					t.Fatalf("step %d: greedy chose %d, the graph's argmax is %d", i, tok, best)
				}
			}
		})
	}
}

// Multi-head latent attention caches the normalised latent and the rope
// key per position (kv_lora_rank + qk_rope_head_dim floats per layer), not
// per-head keys and values; a GQA model of the same width (hidden size,
// heads, layers) caches 2·KVH·D.
func TestMLACacheBytes(t *testing.T) {
	_, w := loadRefFixture(t, "../testdata/reference/deepseek_v2_mla_moe")
	e, err := New(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := w.Config
	if got, want := e.CacheBytesPerToken(), 4*c.NumHiddenLayers*(c.KVLoraRank+c.QKRopeHeadDim); got != want {
		t.Fatalf("MLA cache %d bytes per token, want %d", got, want)
	}
	st := e.NewState()
	if _, err := e.Forward([]*State{st}, [][]int{{1, 2, 3}}); err != nil {
		t.Fatal(err)
	}
	if len(st.k[1]) != 3*c.KVLoraRank || len(st.v[1]) != 3*c.QKRopeHeadDim {
		t.Fatalf("layer 1 caches %d + %d floats for 3 positions", len(st.k[1]), len(st.v[1]))
	}
	for _, kvh := range []int{c.NumAttentionHeads, 1} {
		g := model.Config{ModelType: "llama", HiddenSize: c.HiddenSize, IntermediateSize: c.IntermediateSize,
			NumHiddenLayers: c.NumHiddenLayers, NumAttentionHeads: c.NumAttentionHeads, NumKeyValueHeads: kvh,
			VocabSize: c.VocabSize, MaxPositionEmbeddings: c.MaxPositionEmbeddings, RMSNormEps: 1e-6, HiddenAct: "silu"}
		gw, err := model.Allocate(g)
		if err != nil {
			t.Fatal(err)
		}
		ge, err := New(gw, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := 4 * g.NumHiddenLayers * 2 * kvh * g.HeadDim(); ge.CacheBytesPerToken() != want {
			t.Fatalf("GQA cache %d bytes per token, want %d", ge.CacheBytesPerToken(), want)
		}
		t.Logf("cache per token: MLA %d bytes, %d KV heads of %d: %d bytes", e.CacheBytesPerToken(), kvh, g.HeadDim(), ge.CacheBytesPerToken())
	}
}

// The MLA cache across calls: two DeepSeek sequences fed in pieces, in
// shared forward calls mixing prefill and decode rows, give at every
// position the graph's logits over the whole sequence.
func TestDeepSeekCacheAcrossCalls(t *testing.T) {
	for _, name := range []string{"deepseek_v2_yarn", "deepseek_v3_mla_moe"} {
		t.Run(name, func(t *testing.T) {
			_, w := loadRefFixture(t, "../testdata/reference/"+name)
			V := w.Config.VocabSize
			r := rand.New(rand.NewPCG(8, 8))
			seqs := [][]int{randTokens(r, 21, V), randTokens(r, 14, V)}
			e, err := New(w, nil)
			if err != nil {
				t.Fatal(err)
			}
			states := []*State{e.NewState(), e.NewState()}
			got := [][]float32{nil, nil}
			for _, cut := range [][2]int{{12, 5}, {13, 10}, {20, 11}, {21, 14}} {
				feeds := make([][]int, 2)
				for i, st := range states {
					feeds[i] = seqs[i][st.Len():cut[i]]
				}
				out, err := e.ForwardAll(states, feeds)
				if err != nil {
					t.Fatal(err)
				}
				for i := range out {
					got[i] = append(got[i], out[i]...)
				}
			}
			for i, seq := range seqs {
				want := graphLogits(t, w, seq)
				if len(got[i]) != len(want) {
					t.Fatalf("sequence %d: %d logits, want %d", i, len(got[i]), len(want))
				}
				var scale, worst float64
				for j, v := range want {
					scale = math.Max(scale, math.Abs(float64(v)))
					worst = math.Max(worst, math.Abs(float64(v-got[i][j])))
				}
				if worst > 1e-4*scale {
					t.Fatalf("sequence %d: engine vs graph max relative deviation %.2g", i, worst/scale)
				}
			}
		})
	}
}
