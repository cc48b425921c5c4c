package hf

import (
	"encoding/json"
	"fmt"
	"github.com/gotune/gotune/internal/f16"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/model"
)

func microConfig(tied, bias bool) model.Config {
	c, _ := model.Preset("tiny", 40)
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 16, 24, 2
	c.NumAttentionHeads, c.NumKeyValueHeads = 4, 2
	c.TieWordEmbeddings, c.AttentionBias = tied, bias
	c.BOSTokenID, c.EOSTokenID = 1, 2
	if bias {
		c.ModelType, c.Architectures = "qwen2", []string{"Qwen2ForCausalLM"}
	}
	return c
}

func TestSaveLoadModel(t *testing.T) {
	for _, tc := range []struct {
		name       string
		tied, bias bool
		dtype      safetensors.Dtype
		shard      int64
	}{
		{"tied-f32", true, false, safetensors.F32, 0},
		{"untied-bias-f32", false, true, safetensors.F32, 0},
		{"untied-f16", false, false, safetensors.F16, 0},
		{"tied-bf16-sharded", true, false, safetensors.BF16, 3000},
		{"untied-f32-sharded", false, true, safetensors.F32, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := model.NewRandom(microConfig(tc.tied, tc.bias), 3)
			if err != nil {
				t.Fatal(err)
			}
			// Put non-trivial values into the 1-D tensors too.
			for i, n := range w.Named() {
				if n.Tensor.Dims() == 1 {
					for j := range model.F32(n.Tensor) {
						model.F32(n.Tensor)[j] = 1 + float32(i*j)/100
					}
				}
			}
			dir := t.TempDir()
			if err := SaveModel(dir, w, SaveOptions{Dtype: tc.dtype, MaxShardBytes: tc.shard}); err != nil {
				t.Fatal(err)
			}
			_, statErr := os.Stat(filepath.Join(dir, "model.safetensors.index.json"))
			if (tc.shard > 0) != (statErr == nil) {
				t.Errorf("index present = %v, want %v", statErr == nil, tc.shard > 0)
			}
			got, err := LoadModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got.Config.TorchDtype != torchDtype(tc.dtype) || got.Config.TieWordEmbeddings != tc.tied || got.Config.AttentionBias != tc.bias {
				t.Errorf("config round trip: %+v", got.Config)
			}
			wantNames, gotNames := names(w), names(got)
			if !slices.Equal(wantNames, gotNames) {
				t.Fatalf("names %v, want %v", gotNames, wantNames)
			}
			if tc.tied == slices.Contains(gotNames, "lm_head.weight") {
				t.Errorf("lm_head.weight present with tied=%v", tc.tied)
			}
			for i, n := range w.Named() {
				a, b := model.F32(n.Tensor), model.F32(got.Named()[i].Tensor)
				for j := range a {
					want := a[j]
					switch tc.dtype {
					case safetensors.F16:
						want = f16.ToFloat32(f16.FromFloat32(want))
					case safetensors.BF16:
						want = bf16.ToFloat32(bf16.FromFloat32(want))
					}
					if b[j] != want {
						t.Fatalf("%s[%d] = %g, want %g", n.Name, j, b[j], want)
					}
				}
			}
			if tc.tied && got.LMHead != got.Embed {
				t.Error("tied head is not the embedding tensor")
			}
			var gen map[string]any
			raw, err := os.ReadFile(filepath.Join(dir, GenerationConfigFile))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &gen); err != nil || gen["bos_token_id"] != 1.0 || gen["eos_token_id"] != 2.0 {
				t.Errorf("generation_config.json = %s (%v)", raw, err)
			}
		})
	}
}

func names(w *model.Weights) []string {
	var out []string
	for _, n := range w.Named() {
		out = append(out, n.Name)
	}
	return out
}

func TestLoadModelErrors(t *testing.T) {
	w, err := model.NewRandom(microConfig(false, false), 1)
	if err != nil {
		t.Fatal(err)
	}
	// A set missing one tensor, and one with a mis-shaped tensor.
	write := func(dir string, edit func([]safetensors.Tensor) []safetensors.Tensor) {
		if err := SaveModel(dir, w, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		var ts []safetensors.Tensor
		for _, n := range w.Named() {
			ts = append(ts, safetensors.Tensor{Name: n.Name, Shape: []int(n.Tensor.Shape()), Data: model.F32(n.Tensor)})
		}
		if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), edit(ts), nil, safetensors.F32); err != nil {
			t.Fatal(err)
		}
	}
	missing := t.TempDir()
	write(missing, func(ts []safetensors.Tensor) []safetensors.Tensor {
		return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == "model.layers.1.mlp.up_proj.weight" })
	})
	if _, err := LoadModel(missing); err == nil || !strings.Contains(err.Error(), "model.layers.1.mlp.up_proj.weight is missing") {
		t.Errorf("missing tensor: %v", err)
	}
	shaped := t.TempDir()
	write(shaped, func(ts []safetensors.Tensor) []safetensors.Tensor {
		for i := range ts {
			if ts[i].Name == "model.layers.0.self_attn.k_proj.weight" {
				ts[i].Shape = []int{ts[i].Shape[1], ts[i].Shape[0]}
			}
		}
		return ts
	})
	if _, err := LoadModel(shaped); err == nil || !strings.Contains(err.Error(), "model.layers.0.self_attn.k_proj.weight has shape [16 8], the config needs [8 16]") {
		t.Errorf("mis-shaped tensor: %v", err)
	}
	// Rotary buffers of old exports are accepted (the frequencies come
	// from the config); other extra tensors are refused.
	extra := t.TempDir()
	write(extra, func(ts []safetensors.Tensor) []safetensors.Tensor {
		return append(ts, safetensors.Tensor{Name: "model.layers.0.self_attn.rotary_emb.inv_freq", Shape: []int{2}, Data: []float32{1, 2}})
	})
	if _, err := LoadModel(extra); err != nil {
		t.Errorf("rotary buffer: %v", err)
	}
	if _, err := LoadModel(t.TempDir()); err == nil || !strings.Contains(err.Error(), "config") {
		t.Errorf("empty dir: %v", err)
	}
	if err := SaveModel(t.TempDir(), w, SaveOptions{Dtype: safetensors.I64}); err == nil {
		t.Error("saved as I64")
	}
}

// savedModel writes random weights of c to a fresh directory and returns it
// with the weights' tensors, for tests that edit the files.
func savedModel(t *testing.T, c model.Config) (string, *model.Weights) {
	t.Helper()
	w, err := model.NewRandom(c, 5)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := SaveModel(dir, w, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir, w
}

// editConfig rewrites dir's config.json through edit.
func editConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, ConfigFile)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	raw, err = json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editTensors rewrites dir's model.safetensors (w's tensors) through edit.
func editTensors(t *testing.T, dir string, w *model.Weights, edit func([]safetensors.Tensor) []safetensors.Tensor) {
	t.Helper()
	var ts []safetensors.Tensor
	for _, n := range w.Named() {
		ts = append(ts, safetensors.Tensor{Name: n.Name, Shape: slices.Clone([]int(n.Tensor.Shape())), Data: slices.Clone(model.F32(n.Tensor))})
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), edit(ts), nil, safetensors.F32); err != nil {
		t.Fatal(err)
	}
}

// wantLoadError loads dir and checks the error names config.json (for
// config refusals) and holds every fragment.
func wantLoadError(t *testing.T, dir string, fragments ...string) {
	t.Helper()
	_, err := LoadModel(dir)
	if err == nil {
		t.Fatalf("loaded; want an error with %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Fatalf("error %q lacks %q", err, f)
		}
	}
	t.Log(err)
}

// A config.json of an architecture or setting that is not implemented is
// refused, naming the file and the key; harmless metadata is accepted.
func TestLoadModelRefusesUnimplementedConfig(t *testing.T) {
	base := microConfig(false, false)
	cfgFile := ConfigFile
	for _, tc := range []struct {
		name      string
		edit      func(map[string]any)
		fragments []string
	}{
		{"gemma", func(m map[string]any) { m["model_type"] = "gemma" }, []string{cfgFile, `model_type "gemma" is not implemented`}},
		{"phi3", func(m map[string]any) { m["model_type"] = "phi3" }, []string{cfgFile, `model_type "phi3" is not implemented`}},
		{"deepseek_v2", func(m map[string]any) {
			m["model_type"], m["q_lora_rank"], m["kv_lora_rank"], m["n_routed_experts"] = "deepseek_v2", 8, 8, 4
		}, []string{cfgFile, `key "qk_nope_head_dim" is missing: for model_type deepseek_v2`}},
		{"no model_type", func(m map[string]any) { delete(m, "model_type") }, []string{cfgFile, "model_type is missing"}},
		{"architecture of another family", func(m map[string]any) { m["architectures"] = []string{"Qwen3ForCausalLM"} },
			[]string{cfgFile, `architectures entry "Qwen3ForCausalLM" is not implemented for model_type llama`}},
		{"sequence classifier", func(m map[string]any) { m["architectures"] = []string{"LlamaForSequenceClassification"} },
			[]string{cfgFile, `"LlamaForSequenceClassification"`}},
		{"unknown key", func(m map[string]any) { m["my_new_trick"] = true }, []string{cfgFile, `unknown key "my_new_trick"`}},
		{"q_lora_rank", func(m map[string]any) { m["q_lora_rank"] = 16 }, []string{cfgFile, `"q_lora_rank" (multi-head latent attention) is not implemented`}},
		{"kv_lora_rank", func(m map[string]any) { m["kv_lora_rank"] = 16 }, []string{cfgFile, `"kv_lora_rank"`}},
		{"n_routed_experts", func(m map[string]any) { m["n_routed_experts"] = 4 }, []string{cfgFile, `"n_routed_experts" (mixture of experts)`}},
		{"num_experts", func(m map[string]any) { m["num_experts"] = 4 }, []string{cfgFile, `"num_experts" (mixture of experts)`}},
		{"attn_logit_softcapping", func(m map[string]any) { m["attn_logit_softcapping"] = 50.0 }, []string{cfgFile, `"attn_logit_softcapping"`}},
		{"final_logit_softcapping", func(m map[string]any) { m["final_logit_softcapping"] = 30.0 }, []string{cfgFile, `"final_logit_softcapping"`}},
		{"sliding_window on llama", func(m map[string]any) { m["sliding_window"] = 4096 }, []string{cfgFile, `"sliding_window" (sliding-window attention) is not implemented for model_type llama`}},
		{"mistral sliding window", func(m map[string]any) {
			m["model_type"], m["architectures"], m["sliding_window"] = "mistral", []string{"MistralForCausalLM"}, 16
		}, []string{cfgFile, "sliding_window 16 (shorter than max_position_embeddings 256) is not implemented"}},
		{"mistral default window", func(m map[string]any) {
			// Hugging Face's MistralConfig assumes a window of 4096 when
			// the key is absent.
			m["model_type"], m["architectures"], m["max_position_embeddings"] = "mistral", []string{"MistralForCausalLM"}, 8192
			delete(m, "sliding_window")
		}, []string{cfgFile, "sliding_window 4096 (shorter than max_position_embeddings 8192) is not implemented"}},
		{"qwen3 without head_dim", func(m map[string]any) {
			// Hugging Face's Qwen3Config defaults head_dim to 128, not
			// hidden_size / num_attention_heads.
			m["model_type"], m["architectures"] = "qwen3", []string{"Qwen3ForCausalLM"}
			delete(m, "head_dim")
		}, []string{cfgFile, `key "head_dim" is missing: for model_type qwen3`}},
		{"qwen2 without num_key_value_heads", func(m map[string]any) {
			m["model_type"], m["architectures"] = "qwen2", []string{"Qwen2ForCausalLM"}
			delete(m, "num_key_value_heads")
		}, []string{cfgFile, `key "num_key_value_heads" is missing: for model_type qwen2`}},
		{"qwen2 sliding window on", func(m map[string]any) {
			m["model_type"], m["architectures"], m["sliding_window"], m["use_sliding_window"] = "qwen2", []string{"Qwen2ForCausalLM"}, 16, true
		}, []string{cfgFile, "sliding_window 16"}},
		{"sliding layer types", func(m map[string]any) {
			m["model_type"], m["architectures"], m["sliding_window"], m["layer_types"] = "qwen3", []string{"Qwen3ForCausalLM"}, 16, []string{"full_attention", "sliding_attention"}
		}, []string{cfgFile, `"layer_types": layer 1 is "sliding_attention"`}},
		{"yarn", func(m map[string]any) { m["rope_scaling"] = map[string]any{"rope_type": "yarn", "factor": 4.0} }, []string{cfgFile, `rope_scaling type "yarn" is not supported`}},
		{"rope field", func(m map[string]any) {
			m["rope_scaling"] = map[string]any{"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
				"original_max_position_embeddings": 32, "attention_factor": 2.0}
		}, []string{cfgFile, `"rope_scaling": field "attention_factor" is not implemented`}},
		{"gelu", func(m map[string]any) { m["hidden_act"] = "gelu_pytorch_tanh" }, []string{cfgFile, `hidden_act "gelu_pytorch_tanh" is not supported`}},
		{"attention dropout", func(m map[string]any) { m["attention_dropout"] = 0.1 }, []string{cfgFile, `"attention_dropout": 0.1 is not implemented`}},
		{"mlp bias", func(m map[string]any) { m["mlp_bias"] = true }, []string{cfgFile, `"mlp_bias": true is not implemented`}},
		{"mistral bias", func(m map[string]any) {
			m["model_type"], m["architectures"], m["attention_bias"] = "mistral", []string{"MistralForCausalLM"}, true
		}, []string{cfgFile, `"attention_bias": true is not implemented`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, _ := savedModel(t, base)
			editConfig(t, dir, tc.edit)
			wantLoadError(t, dir, tc.fragments...)
		})
	}

	// Metadata and settings that do not change the computation load.
	for name, edit := range map[string]func(map[string]any){
		"metadata": func(m map[string]any) {
			m["transformers_version"], m["use_cache"], m["initializer_range"], m["attention_dropout"] = "4.51.0", true, 0.02, 0.0
			m["pad_token_id"], m["pretraining_tp"], m["mlp_bias"], m["rope_scaling"], m["_name_or_path"] = nil, 1, false, nil, "x"
		},
		"mistral without window": func(m map[string]any) {
			m["model_type"], m["architectures"], m["sliding_window"] = "mistral", []string{"MistralForCausalLM"}, nil
		},
		"mistral window covering every position": func(m map[string]any) {
			m["model_type"], m["architectures"], m["sliding_window"] = "mistral", []string{"MistralForCausalLM"}, 256
		},
		"qwen3 window switched off": func(m map[string]any) {
			m["model_type"], m["architectures"], m["sliding_window"], m["use_sliding_window"] = "qwen3", []string{"Qwen3ForCausalLM"}, 16, false
			m["head_dim"] = 4
			m["max_window_layers"], m["layer_types"] = 2, []string{"full_attention", "full_attention"}
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := base
			if strings.HasPrefix(name, "qwen3") {
				c.ModelType, c.Architectures = "qwen3", []string{"Qwen3ForCausalLM"}
			}
			dir, _ := savedModel(t, c)
			editConfig(t, dir, edit)
			if _, err := LoadModel(dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Every tensor must be consumed, present, well shaped and finite.
func TestLoadModelRefusesBadTensors(t *testing.T) {
	add := func(name string, shape []int, data []float32) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: name, Shape: shape, Data: data})
		}
	}
	set := func(name string, i int, v float32) func([]safetensors.Tensor) []safetensors.Tensor {
		return func(ts []safetensors.Tensor) []safetensors.Tensor {
			for _, x := range ts {
				if x.Name == name {
					x.Data[i] = v
				}
			}
			return ts
		}
	}
	qnorm := "model.layers.0.self_attn.q_norm.weight"

	t.Run("unused tensor", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(false, false))
		editTensors(t, dir, w, add("model.layers.0.mlp.extra.weight", []int{2}, []float32{1, 2}))
		wantLoadError(t, dir, "tensor model.layers.0.mlp.extra.weight is not used by model_type llama")
		got, unused, err := LoadModelWith(dir, LoadOptions{AllowUnusedTensors: true})
		if err != nil || got == nil || !slices.Equal(unused, []string{"model.layers.0.mlp.extra.weight"}) {
			t.Fatalf("allowed: unused %v, err %v", unused, err)
		}
	})
	t.Run("qwen3 checkpoint labelled llama", func(t *testing.T) {
		c := microConfig(false, false)
		c.ModelType, c.Architectures, c.HeadDimOverride = "qwen3", []string{"Qwen3ForCausalLM"}, 6
		dir, _ := savedModel(t, c)
		editConfig(t, dir, func(m map[string]any) {
			m["model_type"], m["architectures"], m["head_dim"] = "llama", []string{"LlamaForCausalLM"}, 6
		})
		wantLoadError(t, dir, "tensor model.layers.0.self_attn.q_norm.weight is not used by model_type llama")
	})
	t.Run("qwen3 without q_norm", func(t *testing.T) {
		c := microConfig(false, false)
		c.ModelType, c.Architectures = "qwen3", []string{"Qwen3ForCausalLM"}
		dir, w := savedModel(t, c)
		editTensors(t, dir, w, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return slices.DeleteFunc(ts, func(x safetensors.Tensor) bool { return x.Name == qnorm })
		})
		wantLoadError(t, dir, "tensor "+qnorm+" is missing")
	})
	t.Run("q_norm shape", func(t *testing.T) {
		c := microConfig(false, false)
		c.ModelType, c.Architectures = "qwen3", []string{"Qwen3ForCausalLM"}
		dir, w := savedModel(t, c)
		editTensors(t, dir, w, func(ts []safetensors.Tensor) []safetensors.Tensor {
			for i := range ts {
				if ts[i].Name == qnorm {
					ts[i].Shape, ts[i].Data = []int{2}, ts[i].Data[:2]
				}
			}
			return ts
		})
		wantLoadError(t, dir, "tensor "+qnorm+" has shape [2], the config needs [4]")
	})
	t.Run("NaN", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(false, false))
		editTensors(t, dir, w, set("model.layers.1.self_attn.v_proj.weight", 7, float32(math.NaN())))
		wantLoadError(t, dir, "tensor model.layers.1.self_attn.v_proj.weight holds NaN at index 7")
	})
	t.Run("Inf", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(false, false))
		editTensors(t, dir, w, set("model.norm.weight", 3, float32(math.Inf(-1))))
		wantLoadError(t, dir, "tensor model.norm.weight holds -Inf at index 3")
	})
	t.Run("rotary buffers", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(false, false))
		editTensors(t, dir, w, add("model.layers.0.self_attn.rotary_emb.inv_freq", []int{2}, []float32{1, 0.01}))
		if _, err := LoadModel(dir); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("tied head equal to the embedding", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(true, false))
		editTensors(t, dir, w, add("lm_head.weight", slices.Clone([]int(w.Embed.Shape())), slices.Clone(model.F32(w.Embed))))
		got, err := LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got.LMHead != got.Embed {
			t.Error("tied head is not the embedding tensor")
		}
	})
	t.Run("tied head differing from the embedding", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(true, false))
		head := slices.Clone(model.F32(w.Embed))
		head[5] += 1e-3
		editTensors(t, dir, w, add("lm_head.weight", slices.Clone([]int(w.Embed.Shape())), head))
		wantLoadError(t, dir, "tensor lm_head.weight differs from model.embed_tokens.weight at index 5", "tie_word_embeddings is true")
	})
}

// A Qwen3 model (head_dim ≠ hidden/heads, untied) saves and loads back
// with its family, head dimension and per-head norms.
func TestSaveLoadQwen3(t *testing.T) {
	c := microConfig(false, false)
	c.ModelType, c.Architectures, c.HeadDimOverride = "qwen3", nil, 6
	w, err := model.NewRandom(c, 9)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range w.Layers {
		for j := range model.F32(l.QNorm) {
			model.F32(l.QNorm)[j] = 1 + float32(i+j)/10
			model.F32(l.KNorm)[j] = 1 - float32(i+j)/20
		}
	}
	dir := t.TempDir()
	if err := SaveModel(dir, w, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	gc := got.Config
	if gc.ModelType != "qwen3" || !slices.Equal(gc.Architectures, []string{"Qwen3ForCausalLM"}) || gc.HeadDim() != 6 || gc.HiddenSize/gc.NumAttentionHeads == 6 {
		t.Fatalf("config round trip: %+v", gc)
	}
	if !slices.Contains(names(got), "model.layers.1.self_attn.k_norm.weight") {
		t.Fatalf("names %v lack the k_norm", names(got))
	}
	for i, n := range w.Named() {
		if !slices.Equal(model.F32(n.Tensor), model.F32(got.Named()[i].Tensor)) {
			t.Fatalf("%s differs after the round trip", n.Name)
		}
	}
}

// A Mistral model without a sliding window is saved with an explicit
// "sliding_window": null, since Hugging Face would otherwise assume 4096.
func TestSaveMistralWithoutWindow(t *testing.T) {
	c := microConfig(true, false)
	c.ModelType, c.Architectures, c.MaxPositionEmbeddings = "mistral", []string{"MistralForCausalLM"}, 8192
	dir, _ := savedModel(t, c)
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if v, ok := m["sliding_window"]; !ok || v != nil {
		t.Fatalf("config.json sliding_window = %v (present %v), want null", v, ok)
	}
	got, err := LoadModel(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config.SlidingWindow != nil {
		t.Errorf("loaded window %d", *got.Config.SlidingWindow)
	}
}

// Values that Hugging Face would default differently are written out: a
// Qwen3 config built without head_dim or num_key_value_heads is saved with
// both (Qwen3Config would otherwise assume 128 and 32).
func TestSaveWritesExplicitKeys(t *testing.T) {
	c := microConfig(true, false)
	c.ModelType, c.Architectures, c.HeadDimOverride, c.NumKeyValueHeads = "qwen3", []string{"Qwen3ForCausalLM"}, 0, 0
	dir, _ := savedModel(t, c)
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["head_dim"] != 4.0 || m["num_key_value_heads"] != 4.0 {
		t.Fatalf("config.json head_dim %v, num_key_value_heads %v; want 4 and 4", m["head_dim"], m["num_key_value_heads"])
	}
	if _, err := LoadModel(dir); err != nil {
		t.Fatal(err)
	}
}

// deepseekMicro is a two-layer DeepSeek-V2 (dense first layer, then
// routed and shared experts) or, with v3, a DeepSeek-V3 (compressed
// queries, noaux_tc routing with its correction bias).
func deepseekMicro(v3 bool) model.Config {
	c := microConfig(false, false)
	c.ModelType, c.Architectures, c.NumKeyValueHeads = "deepseek_v2", nil, 0
	c.DeepSeek = &model.DeepSeek{KVLoraRank: 8, QKNopeHeadDim: 4, QKRopeHeadDim: 2, VHeadDim: 4,
		NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 6,
		FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: "softmax", TopkMethod: "greedy", RoutedScalingFactor: 1}
	if v3 {
		rank := 6
		c.ModelType = "deepseek_v3"
		c.QLoraRank, c.ScoringFunc, c.TopkMethod, c.NGroup, c.TopkGroup = &rank, "sigmoid", "noaux_tc", 2, 1
		c.NormTopkProb, c.RoutedScalingFactor = true, 2.5
		ms, msAll := 0.707, 0.707
		c.RopeScaling = &model.RopeScaling{Type: "yarn", Factor: 40, OriginalMaxPositionEmbeddings: 4096, MScale: &ms, MScaleAllDim: &msAll}
	}
	return c
}

// DeepSeek models round-trip with every MLA/MoE key written (q_lora_rank
// null included, whose absence Hugging Face would read as 1536) and every
// tensor under its Hugging Face name; a config.json lacking such a key is
// refused.
func TestSaveLoadDeepSeek(t *testing.T) {
	for _, v3 := range []bool{false, true} {
		c := deepseekMicro(v3)
		dir, w := savedModel(t, c)
		got, err := LoadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got.Config.ModelType != c.ModelType || !got.Config.MLA() || (got.Config.QLoraRank == nil) == v3 ||
			got.Config.MLASoftmaxScale() != c.MLASoftmaxScale() || (c.MLASoftmaxScale() == 1/math.Sqrt(6)) == v3 {
			t.Fatalf("config round trip: %+v", got.Config)
		}
		if len(got.Named()) != len(w.Named()) {
			t.Fatalf("%d tensors, saved %d", len(got.Named()), len(w.Named()))
		}
		for i, n := range w.Named() {
			if g := got.Named()[i]; g.Name != n.Name || !slices.Equal(model.F32(n.Tensor), model.F32(g.Tensor)) {
				t.Fatalf("%s differs after the round trip (%s)", n.Name, g.Name)
			}
		}
		want := "model.layers.1.mlp.experts.3.up_proj.weight"
		if v3 {
			want = "model.layers.1.mlp.gate.e_score_correction_bias"
		}
		if !slices.Contains(names(got), want) {
			t.Errorf("%s lacks %s", c.ModelType, want)
		}
		raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if v, ok := m["q_lora_rank"]; !ok || (v == nil) == v3 {
			t.Fatalf("config.json q_lora_rank = %v (present %v)", v, ok)
		}
		delete(m, "q_lora_rank")
		if err := writeJSON(filepath.Join(dir, ConfigFile), m); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadModel(dir); err == nil || !strings.Contains(err.Error(), "q_lora_rank") {
			t.Errorf("config.json without q_lora_rank: %v", err)
		}
	}
}

// TestLoadBF16 reads checkpoints with LoadOptions.BF16: the embeddings
// and linear weights arrive in bfloat16 — from a BF16 checkpoint bit for
// bit what it stores, from an F32 one the rounding of what the float32
// load gives — the norms in float32; a tied head is checked against the
// rounded embedding (a head that differs in bfloat16 is refused); bad
// values are still refused by name.
func TestLoadBF16(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tied  bool
		dtype safetensors.Dtype
	}{{"tied-bf16", true, safetensors.BF16}, {"untied-f32", false, safetensors.F32}} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := model.NewRandom(microConfig(tc.tied, false), 5)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := SaveModel(dir, w, SaveOptions{Dtype: tc.dtype}); err != nil {
				t.Fatal(err)
			}
			full, err := LoadModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			half, _, err := LoadModelWith(dir, LoadOptions{BF16: true})
			if err != nil {
				t.Fatal(err)
			}
			matrices := 0
			for i, n := range half.Named() {
				want := model.F32(full.Named()[i].Tensor)
				bits := model.BF16(n.Tensor)
				if n.Tensor.Dims() == 1 {
					if bits != nil || !slices.Equal(model.F32(n.Tensor), want) {
						t.Errorf("%s: vector not loaded as float32", n.Name)
					}
					continue
				}
				matrices++
				if bits == nil {
					t.Fatalf("%s held in %v", n.Name, n.Tensor.Dtype())
				}
				for j, v := range want {
					if bits[j] != bf16.FromFloat32(v) || (tc.dtype == safetensors.BF16 && bf16.ToFloat32(bits[j]) != v) {
						t.Fatalf("%s[%d]: %#04x, float32 load %g", n.Name, j, bits[j], v)
					}
				}
			}
			if matrices == 0 || (tc.tied && half.LMHead != half.Embed) {
				t.Errorf("%d matrices; tied head shared: %v", matrices, half.LMHead == half.Embed)
			}
		})
	}
	t.Run("tied head differs", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(true, false))
		head := slices.Clone(model.F32(w.Embed))
		head[7] += 0.5
		editTensors(t, dir, w, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: w.Embed.Shape().Clone(), Data: head})
		})
		if _, _, err := LoadModelWith(dir, LoadOptions{BF16: true}); err == nil || !strings.Contains(err.Error(), "lm_head.weight differs") {
			t.Errorf("a tied head that differs in bfloat16: %v", err)
		}
	})
	t.Run("NaN", func(t *testing.T) {
		dir, w := savedModel(t, microConfig(false, false))
		editTensors(t, dir, w, func(ts []safetensors.Tensor) []safetensors.Tensor {
			for _, x := range ts {
				if x.Name == "model.layers.0.mlp.up_proj.weight" {
					x.Data[3] = float32(math.NaN())
				}
			}
			return ts
		})
		if _, _, err := LoadModelWith(dir, LoadOptions{BF16: true}); err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.up_proj.weight") {
			t.Errorf("NaN in a bfloat16-held tensor: %v", err)
		}
	})
}

// TestLoadQ8: with LoadOptions.Q8 the matrices whose rows are whole Q8_0
// blocks arrive as the blocks StoreQ8 makes of the float32 load, the
// others (48-wide rows) and the vectors in float32; a tied head is checked
// against the quantized embedding (one that differs in Q8_0 is refused);
// bad values are still refused by name; bfloat16 and Q8_0 together are
// refused.
func TestLoadQ8(t *testing.T) {
	config := func(tied bool) model.Config {
		c := microConfig(tied, false)
		c.HiddenSize, c.IntermediateSize = 32, 48
		return c
	}
	for _, tied := range []bool{true, false} {
		t.Run(fmt.Sprintf("tied=%v", tied), func(t *testing.T) {
			dir, _ := savedModel(t, config(tied))
			want, err := LoadModel(dir)
			if err != nil {
				t.Fatal(err)
			}
			want.StoreQ8()
			got, _, err := LoadModelWith(dir, LoadOptions{Q8: true})
			if err != nil {
				t.Fatal(err)
			}
			quantized := 0
			for i, n := range got.Named() {
				w := want.Named()[i].Tensor
				if b := model.Q8(n.Tensor); b != nil {
					if !slices.Equal(b, model.Q8(w)) {
						t.Fatalf("%s: blocks differ from StoreQ8's", n.Name)
					}
					quantized++
					continue
				}
				if model.Q8(w) != nil || !slices.Equal(model.F32(n.Tensor), model.F32(w)) {
					t.Fatalf("%s: not the float32 load", n.Name)
				}
			}
			if quantized == 0 || model.Q8(got.Layers[0].Down) != nil || tied && got.LMHead != got.Embed {
				t.Errorf("%d quantized; down_proj %T; tied head shared %v", quantized, got.Layers[0].Down.Data(), got.LMHead == got.Embed)
			}
		})
	}
	t.Run("tied head differs", func(t *testing.T) {
		dir, w := savedModel(t, config(true))
		head := slices.Clone(model.F32(w.Embed))
		head[7] += 0.5
		editTensors(t, dir, w, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: w.Embed.Shape().Clone(), Data: head})
		})
		if _, _, err := LoadModelWith(dir, LoadOptions{Q8: true}); err == nil || !strings.Contains(err.Error(), "lm_head.weight differs") || !strings.Contains(err.Error(), "Q8_0") {
			t.Errorf("a tied head that differs in Q8_0: %v", err)
		}
		head[7] -= 0.5 // a stored head equal to the embedding: accepted
		editTensors(t, dir, w, func(ts []safetensors.Tensor) []safetensors.Tensor {
			return append(ts, safetensors.Tensor{Name: "lm_head.weight", Shape: w.Embed.Shape().Clone(), Data: head})
		})
		if _, _, err := LoadModelWith(dir, LoadOptions{Q8: true}); err != nil {
			t.Errorf("a tied head equal to the embedding: %v", err)
		}
	})
	t.Run("NaN", func(t *testing.T) {
		dir, w := savedModel(t, config(false))
		editTensors(t, dir, w, func(ts []safetensors.Tensor) []safetensors.Tensor {
			for _, x := range ts {
				if x.Name == "model.layers.0.mlp.up_proj.weight" {
					x.Data[3] = float32(math.NaN())
				}
			}
			return ts
		})
		if _, _, err := LoadModelWith(dir, LoadOptions{Q8: true}); err == nil || !strings.Contains(err.Error(), "model.layers.0.mlp.up_proj.weight") {
			t.Errorf("NaN in a Q8_0-held tensor: %v", err)
		}
	})
	t.Run("both forms", func(t *testing.T) {
		dir, _ := savedModel(t, config(false))
		if _, _, err := LoadModelWith(dir, LoadOptions{Q8: true, BF16: true}); err == nil {
			t.Error("bfloat16 and Q8_0 together: no error")
		}
	})
}
