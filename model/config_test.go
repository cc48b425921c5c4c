package model

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeConfig(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigDefaultsAndVariants(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, `{"model_type":"qwen2","hidden_size":64,"intermediate_size":128,
		"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":100,
		"rope_parameters":{"rope_type":"default","rope_theta":500000}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.AttentionBias || c.RMSNormEps != 1e-6 || c.HiddenAct != "silu" || c.Theta() != 500000 || c.Scaling() != nil {
		t.Fatalf("defaults not applied: %+v (theta %v)", c, c.Theta())
	}
	if c.HeadDim() != 16 || c.KVHeads() != 2 || len(c.InvFreq()) != 8 {
		t.Fatalf("head dim %d, kv heads %d, %d frequencies", c.HeadDim(), c.KVHeads(), len(c.InvFreq()))
	}
	for _, bad := range []string{
		`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":3,"num_key_value_heads":2,"vocab_size":100}`,
		`{"model_type":"llama","hidden_size":2,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}`,
		`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"hidden_act":"gelu"}`,
		`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"rope_scaling":{"type":"yarn","factor":2}}`,
		`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100,"rms_norm_eps":-1}`,
		`{"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}`,
	} {
		if _, err := LoadConfig(writeConfig(t, bad)); err == nil {
			t.Errorf("accepted %s", bad)
		} else {
			t.Log(err)
		}
	}
}

// The registry: each family's defaults and switches, and configs built in
// code are held to the same rules as config.json (Validate).
func TestFamilies(t *testing.T) {
	if got := FamilyNames(); !slices.Equal(got, []string{"deepseek_v2", "deepseek_v3", "llama", "mistral", "qwen2", "qwen3"}) {
		t.Fatalf("families %v", got)
	}
	c, err := LoadConfig(writeConfig(t, `{"architectures":["Qwen3ForCausalLM"],"model_type":"qwen3","hidden_size":32,
		"intermediate_size":48,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
		"vocab_size":64,"max_position_embeddings":64,"attention_bias":false,"attention_dropout":0.0,
		"sliding_window":null,"use_sliding_window":false,"max_window_layers":1,"rope_scaling":null,"torch_dtype":"bfloat16"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !c.QKNorm() || c.AttentionBias || c.HeadDim() != 16 {
		t.Fatalf("qwen3: q/k norm %v, bias %v, head dim %d", c.QKNorm(), c.AttentionBias, c.HeadDim())
	}
	w, err := Allocate(c)
	if err != nil {
		t.Fatal(err)
	}
	if l := w.Layers[0]; l.QNorm == nil || l.KNorm == nil || l.QNorm.Shape()[0] != 16 {
		t.Fatalf("qwen3 layer lacks (16) q/k norms: %+v", l)
	}
	llama, err := Preset("tiny", 0)
	if err != nil {
		t.Fatal(err)
	}
	if llama.QKNorm() {
		t.Error("llama has q/k norms")
	}
	if w, _ := Allocate(llama); w.Layers[0].QNorm != nil {
		t.Error("llama layer has a q_norm")
	}
	window := 16
	for name, edit := range map[string]func(*Config){
		"gemma":                func(c *Config) { c.ModelType = "gemma" },
		"no model_type":        func(c *Config) { c.ModelType = "" },
		"qwen2 without bias":   func(c *Config) { c.ModelType, c.Architectures = "qwen2", []string{"Qwen2ForCausalLM"} },
		"architecture":         func(c *Config) { c.Architectures = []string{"MistralForCausalLM"} },
		"sliding window llama": func(c *Config) { c.SlidingWindow = &window },
		"mistral window": func(c *Config) {
			c.ModelType, c.Architectures, c.SlidingWindow = "mistral", []string{"MistralForCausalLM"}, &window
		},
		"mistral bias": func(c *Config) {
			c.ModelType, c.Architectures, c.AttentionBias = "mistral", []string{"MistralForCausalLM"}, true
		},
	} {
		bad := llama
		edit(&bad)
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, bad)
		} else if _, err := Allocate(bad); err == nil {
			t.Errorf("%s: Allocate accepted it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// FuzzLoadConfig: any config.json either fails with an error or gives a
// config whose derived quantities are usable.
func FuzzLoadConfig(f *testing.F) {
	f.Add(`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}`)
	f.Add(`{"model_type":"qwen2","hidden_size":32,"intermediate_size":48,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":1,"vocab_size":64,"tie_word_embeddings":true}`)
	f.Add(`{"model_type":"llama","hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":64,"rope_parameters":{"rope_type":"llama3","rope_theta":10000,"factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":32}}`)
	f.Add(`{"model_type":"llama","hidden_size":8,"num_attention_heads":16,"head_dim":0}`)
	f.Add(`{"model_type":"qwen3","hidden_size":32,"intermediate_size":48,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":6,"vocab_size":64,"sliding_window":8,"use_sliding_window":false}`)
	f.Fuzz(func(t *testing.T, body string) {
		c, err := LoadConfig(writeConfig(t, body))
		if err != nil {
			return
		}
		d := c.HeadDim()
		if d <= 0 || d%2 != 0 || c.NumAttentionHeads%c.KVHeads() != 0 {
			t.Fatalf("accepted inconsistent config %+v", c)
		}
		if d > 1<<16 {
			return // valid but too large to tabulate here
		}
		inv := c.InvFreq()
		if len(inv) != d/2 {
			t.Fatalf("%d frequencies for head dim %d", len(inv), d)
		}
		for _, v := range inv {
			if math.IsNaN(v) || v < 0 {
				t.Fatalf("inverse frequency %v from %+v", v, c)
			}
		}
	})
}

// gotune_attention: only the llama family accepts it; bad values and GAU
// parameters without GAU are refused by name.
func TestAttentionOption(t *testing.T) {
	const base = `"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":64`
	for _, ok := range []string{`"gotune_attention":"softmax"`, `"gotune_attention":"linear"`,
		`"gotune_attention":"gau","gotune_gau_shared_dim":8,"gotune_gau_chunk":16`} {
		c, err := LoadConfig(writeConfig(t, `{"model_type":"llama",`+base+`,`+ok+`}`))
		if err != nil {
			t.Errorf("%s: %v", ok, err)
			continue
		}
		// It round-trips through SaveModel's keys.
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		`{"model_type":"qwen2",` + base + `,"gotune_attention":"linear"}`:                                             "gotune_attention",
		`{"model_type":"mistral","num_key_value_heads":4,"sliding_window":null,` + base + `,"gotune_gau_chunk":4}`:    "gotune_gau_chunk",
		`{"model_type":"llama",` + base + `,"gotune_attention":"performer"}`:                                          "gotune_attention",
		`{"model_type":"llama",` + base + `,"gotune_attention":"linear","gotune_gau_chunk":4}`:                        "gotune_gau_chunk",
		`{"model_type":"llama",` + base + `,"gotune_attention":"gau","gotune_gau_shared_dim":7,"gotune_gau_chunk":4}`: "gotune_gau_shared_dim",
		`{"model_type":"llama",` + base + `,"gotune_attention":"gau","gotune_gau_shared_dim":8}`:                      "gotune_gau_chunk",
	} {
		_, err := LoadConfig(writeConfig(t, bad))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %s", bad, err, want)
		}
	}
}
