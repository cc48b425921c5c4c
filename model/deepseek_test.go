package model

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
)

// deepseekV2JSON is a tiny DeepSeek-V2 config.json in the shape of
// DeepSeek-V2-Lite's: plain q_proj, softmax greedy routing, one shared
// expert, the first layer dense.
const deepseekV2JSON = `{"architectures":["DeepseekV2ForCausalLM"],"model_type":"deepseek_v2",
 "auto_map":{"AutoConfig":"configuration_deepseek.DeepseekV2Config","AutoModel":"modeling_deepseek.DeepseekV2Model",
  "AutoModelForCausalLM":"modeling_deepseek.DeepseekV2ForCausalLM"},
 "hidden_size":32,"intermediate_size":48,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":4,
 "vocab_size":64,"max_position_embeddings":64,"rms_norm_eps":1e-6,"rope_theta":10000,"rope_scaling":null,
 "tie_word_embeddings":false,"hidden_act":"silu","attention_bias":false,"attention_dropout":0.0,
 "q_lora_rank":null,"kv_lora_rank":16,"qk_nope_head_dim":8,"qk_rope_head_dim":4,"v_head_dim":6,
 "n_routed_experts":8,"num_experts_per_tok":2,"n_shared_experts":1,"moe_intermediate_size":12,
 "first_k_dense_replace":1,"moe_layer_freq":1,"scoring_func":"softmax","topk_method":"greedy",
 "n_group":null,"topk_group":null,"norm_topk_prob":false,"routed_scaling_factor":1.0,
 "aux_loss_alpha":0.001,"seq_aux":true,"ep_size":1,"bos_token_id":0,"eos_token_id":1,"use_cache":true,
 "torch_dtype":"bfloat16"}`

// deepseekV3JSON is a tiny DeepSeek-V3 config.json: compressed queries,
// sigmoid scores, noaux_tc grouped routing.
const deepseekV3JSON = `{"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3",
 "hidden_size":32,"intermediate_size":48,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":4,
 "vocab_size":64,"max_position_embeddings":64,"rms_norm_eps":1e-6,"rope_theta":10000,"rope_scaling":null,
 "tie_word_embeddings":false,"hidden_act":"silu","attention_bias":false,"attention_dropout":0.0,
 "q_lora_rank":12,"kv_lora_rank":16,"qk_nope_head_dim":8,"qk_rope_head_dim":4,"v_head_dim":6,
 "n_routed_experts":8,"num_experts_per_tok":2,"n_shared_experts":1,"moe_intermediate_size":12,
 "first_k_dense_replace":1,"moe_layer_freq":1,"scoring_func":"sigmoid","topk_method":"noaux_tc",
 "n_group":4,"topk_group":2,"norm_topk_prob":true,"routed_scaling_factor":2.5,
 "num_nextn_predict_layers":1,"rope_interleave":true,"head_dim":4}`

// edited returns a config.json with key set to value (JSON; "-" deletes it).
func edited(t *testing.T, body, key, value string) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	if value == "-" {
		delete(m, key)
	} else {
		m[key] = json.RawMessage(value)
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestDeepSeekConfig(t *testing.T) {
	v2, err := LoadConfig(writeConfig(t, deepseekV2JSON))
	if err != nil {
		t.Fatal(err)
	}
	if !v2.MLA() || v2.QLoraRank != nil || v2.KVLoraRank != 16 || v2.QKHeadDim() != 12 || v2.RopeDim() != 4 || len(v2.InvFreq()) != 2 {
		t.Fatalf("deepseek_v2: %+v %+v", v2, v2.DeepSeek)
	}
	if v2.IsMoELayer(0) || !v2.IsMoELayer(1) || !v2.IsMoELayer(2) {
		t.Errorf("first_k_dense_replace 1: MoE layers %v %v %v", v2.IsMoELayer(0), v2.IsMoELayer(1), v2.IsMoELayer(2))
	}
	v3, err := LoadConfig(writeConfig(t, deepseekV3JSON))
	if err != nil {
		t.Fatal(err)
	}
	if v3.QLoraRank == nil || *v3.QLoraRank != 12 || v3.TopkMethod != TopkNoAuxTC || v3.NGroup != 4 {
		t.Fatalf("deepseek_v3: %+v", v3.DeepSeek)
	}
	// DeepSeek-V2-Lite's YaRN: the frequencies of the rotary part rescaled,
	// the softmax scale corrected by mscale_all_dim, cos/sin unscaled when
	// mscale equals mscale_all_dim.
	yarnCfg, err := LoadConfig(writeConfig(t, edited(t, deepseekV2JSON, "rope_scaling",
		`{"type":"yarn","factor":40,"mscale":0.707,"mscale_all_dim":0.707,"beta_fast":32,"beta_slow":1,"original_max_position_embeddings":4096}`)))
	if err != nil {
		t.Fatal(err)
	}
	m := 0.1*0.707*math.Log(40) + 1
	if got, want := yarnCfg.MLASoftmaxScale(), m*m/math.Sqrt(12); math.Abs(got-want) > 1e-15 || yarnCfg.RopeMagnitude() != 1 {
		t.Errorf("yarn: softmax scale %v (want %v), magnitude %v", got, want, yarnCfg.RopeMagnitude())
	}
	if v2.MLASoftmaxScale() != 1/math.Sqrt(12) || v2.RopeMagnitude() != 1 {
		t.Errorf("no scaling: softmax scale %v, magnitude %v", v2.MLASoftmaxScale(), v2.RopeMagnitude())
	}
	llama, err := Preset("tiny", 0)
	if err != nil {
		t.Fatal(err)
	}
	if llama.MLA() || llama.IsMoELayer(1) || llama.RopeDim() != llama.HeadDim() {
		t.Error("llama has MLA or MoE")
	}

	// Every refusal names its key.
	for _, tc := range []struct{ body, key, value, want string }{
		{deepseekV2JSON, "q_lora_rank", "-", `"q_lora_rank" is missing`},
		{deepseekV2JSON, "n_group", "-", `"n_group" is missing`},
		{deepseekV2JSON, "q_lora_rank", "0", "q_lora_rank"},
		{deepseekV2JSON, "kv_lora_rank", "0", "kv_lora_rank"},
		{deepseekV2JSON, "qk_rope_head_dim", "3", "qk_rope_head_dim"},
		{deepseekV2JSON, "qk_nope_head_dim", "0", "qk_nope_head_dim"},
		{deepseekV2JSON, "v_head_dim", "0", "v_head_dim"},
		{deepseekV2JSON, "num_experts_per_tok", "9", "num_experts_per_tok"},
		{deepseekV2JSON, "moe_intermediate_size", "0", "moe_intermediate_size"},
		{deepseekV2JSON, "moe_layer_freq", "0", "moe_layer_freq"},
		{deepseekV2JSON, "first_k_dense_replace", "-1", "first_k_dense_replace"},
		{deepseekV2JSON, "n_shared_experts", "-1", "n_shared_experts"},
		{deepseekV2JSON, "routed_scaling_factor", "0", "routed_scaling_factor"},
		{deepseekV2JSON, "scoring_func", `"sigmoid"`, "scoring_func"},
		{deepseekV2JSON, "topk_method", `"noaux_tc"`, "topk_method"},
		{deepseekV2JSON, "topk_method", `"gready"`, "topk_method"},
		{deepseekV2JSON, "topk_method", `"group_limited_greedy"`, "n_group"},
		{edited(t, edited(t, deepseekV2JSON, "norm_topk_prob", "true"), "routed_scaling_factor", "16"), "num_experts_per_tok", "2", "routed_scaling_factor"},
		{deepseekV2JSON, "rope_scaling", `{"type":"linear","factor":4}`, "rope_scaling"},
		{deepseekV2JSON, "rope_scaling", `{"type":"yarn","factor":0}`, "factor"},
		{deepseekV2JSON, "rope_scaling", `{"type":"yarn","factor":4,"attention_factor":1}`, "attention_factor"},
		{deepseekV2JSON, "rope_parameters", `{"rope_type":"llama3","factor":8,"low_freq_factor":1,"high_freq_factor":4,"original_max_position_embeddings":32}`, "llama3"},
		{deepseekV2JSON, "attention_bias", "true", "attention_bias"},
		{deepseekV2JSON, "rope_interleave", "false", "rope_interleave"},
		{deepseekV2JSON, "auto_map", `{"AutoModel":"modeling_other.OtherModel"}`, "auto_map"},
		{deepseekV2JSON, "architectures", `["DeepseekV3ForCausalLM"]`, "DeepseekV3ForCausalLM"},
		{deepseekV2JSON, "head_dim", "8", "head_dim"},
		{deepseekV2JSON, "moe_top_k", "2", "moe_top_k"},
		{deepseekV3JSON, "scoring_func", `"softmax"`, "scoring_func"},
		{deepseekV3JSON, "topk_method", `"greedy"`, "topk_method"},
		{deepseekV3JSON, "n_group", "3", "n_group"},
		{deepseekV3JSON, "n_group", "8", "n_group"}, // groups of one expert
		{deepseekV3JSON, "topk_group", "5", "topk_group"},
		{deepseekV3JSON, "topk_group", "null", "topk_group"},
		// MLA/MoE keys on a family without them.
		{`{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":100}`, "kv_lora_rank", "16", "kv_lora_rank"},
	} {
		_, err := LoadConfig(writeConfig(t, edited(t, tc.body, tc.key, tc.value)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %s: error %v, want one naming %s", tc.key, tc.value, err, tc.want)
		}
	}
	// A config built in code is held to the same rules.
	bad := v3
	d := *bad.DeepSeek
	d.TopkGroup = 9
	bad.DeepSeek = &d
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "topk_group") {
		t.Errorf("Validate: %v", err)
	}
	bad = llama
	bad.DeepSeek = v2.DeepSeek
	if err := bad.Validate(); err == nil {
		t.Error("llama with a DeepSeek part validated")
	}
}

// Allocate lays out the DeepSeek tensors with their Hugging Face names:
// MLA projections, a dense first layer, routed and shared experts and the
// noaux_tc correction bias.
func TestDeepSeekWeights(t *testing.T) {
	for _, tc := range []struct {
		body        string
		has, hasNot []string
	}{
		{deepseekV2JSON,
			[]string{"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.kv_a_proj_with_mqa.weight",
				"model.layers.0.self_attn.kv_a_layernorm.weight", "model.layers.0.self_attn.kv_b_proj.weight",
				"model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.gate.weight",
				"model.layers.2.mlp.experts.7.down_proj.weight", "model.layers.1.mlp.shared_experts.up_proj.weight"},
			[]string{"model.layers.0.self_attn.k_proj.weight", "model.layers.0.self_attn.q_a_proj.weight",
				"model.layers.1.mlp.gate_proj.weight", "model.layers.0.mlp.gate.weight", "model.layers.1.mlp.gate.e_score_correction_bias"}},
		{deepseekV3JSON,
			[]string{"model.layers.0.self_attn.q_a_proj.weight", "model.layers.0.self_attn.q_a_layernorm.weight",
				"model.layers.0.self_attn.q_b_proj.weight", "model.layers.2.mlp.gate.e_score_correction_bias"},
			[]string{"model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.v_proj.weight"}},
	} {
		c, err := LoadConfig(writeConfig(t, tc.body))
		if err != nil {
			t.Fatal(err)
		}
		w, err := Allocate(c)
		if err != nil {
			t.Fatal(err)
		}
		shapes := map[string][]int{}
		for _, n := range w.Named() {
			shapes[n.Name] = n.Tensor.Shape()
		}
		for _, n := range tc.has {
			if _, ok := shapes[n]; !ok {
				t.Errorf("%s: %s missing", c.ModelType, n)
			}
		}
		for _, n := range tc.hasNot {
			if _, ok := shapes[n]; ok {
				t.Errorf("%s: %s present", c.ModelType, n)
			}
		}
		// (H·(Dn+Dv), Rkv), (Rkv+Dr, C), (C, H·Dv), shared (S·Fm, C)
		for n, want := range map[string][]int{
			"model.layers.1.self_attn.kv_b_proj.weight":          {4 * (8 + 6), 16},
			"model.layers.1.self_attn.kv_a_proj_with_mqa.weight": {16 + 4, 32},
			"model.layers.1.self_attn.o_proj.weight":             {32, 4 * 6},
			"model.layers.1.mlp.shared_experts.gate_proj.weight": {12, 32},
			"model.layers.0.mlp.down_proj.weight":                {32, 48},
		} {
			if !slices.Equal(shapes[n], want) {
				t.Errorf("%s: %s has shape %v, want %v", c.ModelType, n, shapes[n], want)
			}
		}
		if _, err := w.Layers[0].Linear("k_proj"); err == nil {
			t.Error("Linear(k_proj) of an MLA layer succeeded")
		}
		if _, err := w.Layers[1].Linear("gate_proj"); err == nil {
			t.Error("Linear(gate_proj) of a MoE layer succeeded")
		}
		if m, err := w.Layers[1].Linear("kv_b_proj"); err != nil || m != w.Layers[1].KVB {
			t.Errorf("Linear(kv_b_proj): %v", err)
		}
	}
}

// The correction bias is never trainable, and the graph reports each MoE
// layer's expert load after a run.
func TestDeepSeekGraphLoadAndBias(t *testing.T) {
	w := scrambled(t, deepseekMicro(true, false), 1)
	g, err := Build(w, GraphOptions{B: 2, T: 5, Trainable: allTrainable})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Trainable {
		if SelectionOnly(n.Name()) {
			t.Errorf("%s is trainable", n.Name())
		}
	}
	if len(g.Trainable) != len(w.Named())-1 {
		t.Errorf("%d trainable of %d tensors, want all but the correction bias", len(g.Trainable), len(w.Named()))
	}
	fillInputs(g, 1)
	p, err := g.Compile(nil, nil, g.Logits())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	load := g.ExpertLoad()
	if len(load) != 1 || load[0].Layer != 1 || len(load[0].Fractions) != 4 {
		t.Fatalf("expert load %+v, want layer 1's 4 experts", load)
	}
	var sum float64
	for _, f := range load[0].Fractions {
		sum += f
	}
	if math.Abs(sum-1) > 1e-12 || load[0].CV < 0 {
		t.Errorf("fractions %v sum to %v, CV %v", load[0].Fractions, sum, load[0].CV)
	}
	if want := 2 * 5 * w.Config.NumExpertsPerTok; load[0].Slots != want {
		t.Errorf("%d slots counted, want B·T·K = %d", load[0].Slots, want)
	}
	t.Logf("layer 1 load %.3f, CV %.3f", load[0].Fractions, load[0].CV)
	g.ResetExpertLoad()
	if load := g.ExpertLoad(); load != nil {
		t.Errorf("after ResetExpertLoad the graph reports %+v", load)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	if again := g.ExpertLoad(); len(again) != 1 || !slices.Equal(again[0].Fractions, load[0].Fractions) {
		t.Errorf("the load after a reset and the same run is %+v, want %+v", again, load)
	}
}

// Expert module names parse as PEFT writes them, and nothing else does.
func TestExpertModule(t *testing.T) {
	for name, want := range map[string]struct {
		e    int
		proj string
	}{"experts.7.gate_proj": {7, "gate_proj"}, "shared_experts.down_proj": {-1, "down_proj"}, "experts.0.up_proj": {0, "up_proj"}} {
		e, proj, ok := ExpertModule(name)
		if !ok || e != want.e || proj != want.proj {
			t.Errorf("%s: %d %s %v", name, e, proj, ok)
		}
	}
	for _, bad := range []string{"gate_proj", "experts.07.gate_proj", "experts.-1.gate_proj", "experts.x.up_proj", "experts.1.q_proj", "shared_experts.1.gate_proj", "experts.1"} {
		if _, _, ok := ExpertModule(bad); ok {
			t.Errorf("%s parsed as an expert module", bad)
		}
	}
	c, err := LoadConfig(writeConfig(t, deepseekV2JSON))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.LayerModules(0, "up_proj"); !slices.Equal(got, []string{"up_proj"}) {
		t.Errorf("dense layer: %v", got)
	}
	if got := c.LayerModules(1, "up_proj"); len(got) != 9 || got[0] != "experts.0.up_proj" || got[8] != "shared_experts.up_proj" {
		t.Errorf("MoE layer: %v", got)
	}
	if got := c.LayerModules(1, "o_proj"); !slices.Equal(got, []string{"o_proj"}) {
		t.Errorf("o_proj: %v", got)
	}
}

// The config.json files of published DeepSeek-family checkpoints load:
// DeepSeek-V2-Lite (plain q_proj, YaRN, softmax greedy routing) and
// Moonlight-16B-A3B (deepseek_v3: sigmoid noaux_tc routing in one group).
func TestPublishedDeepSeekConfigs(t *testing.T) {
	for name, body := range map[string]string{
		"DeepSeek-V2-Lite": `{"architectures":["DeepseekV2ForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
 "auto_map":{"AutoConfig":"configuration_deepseek.DeepseekV2Config","AutoModel":"modeling_deepseek.DeepseekV2Model",
  "AutoModelForCausalLM":"modeling_deepseek.DeepseekV2ForCausalLM"},
 "aux_loss_alpha":0.001,"bos_token_id":100000,"eos_token_id":100001,"first_k_dense_replace":1,"hidden_act":"silu",
 "hidden_size":2048,"initializer_range":0.02,"intermediate_size":10944,"kv_lora_rank":512,"max_position_embeddings":163840,
 "model_type":"deepseek_v2","moe_intermediate_size":1408,"moe_layer_freq":1,"n_group":1,"n_routed_experts":64,
 "n_shared_experts":2,"norm_topk_prob":false,"num_attention_heads":16,"num_experts_per_tok":6,"num_hidden_layers":27,
 "num_key_value_heads":16,"pretraining_tp":1,"q_lora_rank":null,"qk_nope_head_dim":128,"qk_rope_head_dim":64,
 "rms_norm_eps":1e-06,"rope_scaling":{"beta_fast":32,"beta_slow":1,"factor":40,"mscale":0.707,"mscale_all_dim":0.707,
  "original_max_position_embeddings":4096,"type":"yarn"},"rope_theta":10000,"routed_scaling_factor":1.0,
 "scoring_func":"softmax","seq_aux":true,"tie_word_embeddings":false,"topk_group":1,"topk_method":"greedy",
 "torch_dtype":"bfloat16","transformers_version":"4.33.1","use_cache":true,"v_head_dim":128,"vocab_size":102400}`,
		"Moonlight-16B-A3B": `{"architectures":["DeepseekV3ForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
 "auto_map":{"AutoConfig":"configuration_deepseek.DeepseekV3Config","AutoModel":"modeling_deepseek.DeepseekV3Model",
  "AutoModelForCausalLM":"modeling_deepseek.DeepseekV3ForCausalLM"},
 "aux_loss_alpha":0.001,"bos_token_id":163584,"eos_token_id":163585,"ep_size":1,"first_k_dense_replace":1,
 "hidden_act":"silu","hidden_size":2048,"initializer_range":0.02,"intermediate_size":11264,"kv_lora_rank":512,
 "max_position_embeddings":8192,"model_type":"deepseek_v3","moe_intermediate_size":1408,"moe_layer_freq":1,"n_group":1,
 "n_routed_experts":64,"n_shared_experts":2,"norm_topk_prob":true,"num_attention_heads":16,"num_experts_per_tok":6,
 "num_hidden_layers":27,"num_key_value_heads":16,"num_nextn_predict_layers":0,"pretraining_tp":1,"q_lora_rank":null,
 "qk_nope_head_dim":128,"qk_rope_head_dim":64,"rms_norm_eps":1e-05,"rope_scaling":null,"rope_theta":50000.0,
 "routed_scaling_factor":2.446,"scoring_func":"sigmoid","seq_aux":true,"tie_word_embeddings":false,"topk_group":1,
 "topk_method":"noaux_tc","torch_dtype":"bfloat16","transformers_version":"4.48.3","use_cache":true,"v_head_dim":128,
 "vocab_size":163840}`,
	} {
		c, err := LoadConfig(writeConfig(t, body))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !c.MLA() || c.IsMoELayer(0) || !c.IsMoELayer(26) || c.Router().Experts != 64 {
			t.Errorf("%s: %+v", name, c.DeepSeek)
		}
	}
}

// In float32, a few plain gradient steps on every DeepSeek parameter (MLA,
// router, routed and shared experts) fit one batch: the loss falls.
func TestDeepSeekTrainsFloat32(t *testing.T) {
	w := scrambled(t, deepseekMicro(true, false), 1)
	g, err := Build(w, GraphOptions{B: 2, T: 5, Trainable: allTrainable})
	if err != nil {
		t.Fatal(err)
	}
	loss := g.MeanNLL(g.InputVector("weights", g.B*g.T))
	fillInputs(g, 2)
	p, err := g.Compile(loss, g.Trainable)
	if err != nil {
		t.Fatal(err)
	}
	var first, last float32
	for step := range 30 {
		p.ZeroGrad()
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		l := Value32(loss)[0]
		if step == 0 {
			first = l
		}
		last = l
		for _, n := range g.Trainable {
			d := n.Value().Data().([]float32)
			for i, gr := range p.Grad(n) {
				d[i] -= 0.1 * gr
			}
		}
	}
	if !(last < 0.8*first) {
		t.Fatalf("loss %v → %v after 30 steps", first, last)
	}
	t.Logf("loss %.4f → %.4f", first, last)
}

// The stories15M-moe preset is a valid DeepSeek-V2 model with stories15M's
// active size: the same width, depth, vocabulary and head width, and each
// token's feed-forward width (routed experts chosen + shared) that of
// stories15M's dense layers.
func TestStories15MMoEPreset(t *testing.T) {
	dense, err := Preset("stories15M", 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Preset("stories15M-moe", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Family(); err != nil {
		t.Fatal(err)
	}
	d := c.DeepSeek
	if !c.MLA() || !c.IsMoELayer(1) || c.IsMoELayer(0) {
		t.Fatalf("preset %+v: want MLA, a dense first layer, then MoE", d)
	}
	if c.HiddenSize != dense.HiddenSize || c.NumHiddenLayers != dense.NumHiddenLayers || c.VocabSize != dense.VocabSize ||
		d.QKNopeHeadDim+d.QKRopeHeadDim != dense.HeadDim() {
		t.Errorf("preset shape %+v differs from stories15M's", c)
	}
	if active := (d.NumExpertsPerTok + d.NSharedExperts) * d.MoeIntermediateSize; active != dense.IntermediateSize {
		t.Errorf("active feed-forward width %d, stories15M's %d", active, dense.IntermediateSize)
	}
	if _, err := NewRandom(c, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := Preset("nonesuch", 0); err == nil || !strings.Contains(err.Error(), "stories15M-moe") {
		t.Errorf("unknown preset: %v, want the known names listed", err)
	}
}
