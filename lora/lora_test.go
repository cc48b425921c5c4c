package lora

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/gotune/gotune/checkpoints/safetensors"
	"github.com/gotune/gotune/internal/q8"
	"github.com/gotune/gotune/model"
)

func microWeights(t *testing.T) *model.Weights {
	t.Helper()
	c := model.Config{ModelType: "llama", HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, VocabSize: 11, MaxPositionEmbeddings: 16, RMSNormEps: 1e-5, HiddenAct: "silu"}
	w, err := model.NewRandom(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// randomizeB gives B nonzero values so that merges and round trips are not
// trivially satisfied by zeros.
func randomizeB(a *Adapter) {
	for mi, m := range a.Modules {
		for i := range model.F32(m.B) {
			model.F32(m.B)[i] = float32(math.Sin(float64(7*mi+i))) * 0.1
		}
	}
}

func TestConfigScalingAndTargets(t *testing.T) {
	c := Config{R: 4, Alpha: 8, Targets: []string{"all-linear"}}
	if c.Scaling() != 2 {
		t.Errorf("alpha/r = %g, want 2", c.Scaling())
	}
	c.RSLoRA = true
	if c.Scaling() != 4 {
		t.Errorf("alpha/sqrt(r) = %g, want 4", c.Scaling())
	}
	got, err := c.TargetModules(microWeights(t).Config)
	if err != nil || len(got) != 7 {
		t.Fatalf("all-linear = %v, %v", got, err)
	}
	if _, err := (Config{R: 4, Targets: []string{"qproj"}}).TargetModules(microWeights(t).Config); err == nil || !strings.Contains(err.Error(), `"qproj"`) {
		t.Errorf("bad target: %v", err)
	}
}

func TestInitKaimingBoundAndZeroB(t *testing.T) {
	w := microWeights(t)
	a, err := New(w, Config{R: 4, Alpha: 8, Targets: []string{"q_proj", "down_proj"}, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Modules) != 4 {
		t.Fatalf("%d modules, want 4", len(a.Modules))
	}
	for _, m := range a.Modules {
		in := m.A.Shape()[1]
		bound := 1 / math.Sqrt(float64(in))
		nonzero := 0
		for _, v := range model.F32(m.A) {
			if math.Abs(float64(v)) > bound {
				t.Fatalf("%s: A entry %g outside kaiming bound %g", m.PEFTPrefix(), v, bound)
			}
			if v != 0 {
				nonzero++
			}
		}
		if nonzero == 0 {
			t.Fatalf("%s: A is all zeros", m.PEFTPrefix())
		}
		for _, v := range model.F32(m.B) {
			if v != 0 {
				t.Fatalf("%s: B must start at zero", m.PEFTPrefix())
			}
		}
	}
	if got := a.Module(1, "down_proj").PEFTPrefix(); got != "base_model.model.model.layers.1.mlp.down_proj" {
		t.Errorf("prefix %q", got)
	}
}

func TestMergeUnmerge(t *testing.T) {
	w := microWeights(t)
	a, err := New(w, Config{R: 2, Alpha: 6, Targets: []string{"v_proj"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a)
	before := append([]float32(nil), model.F32(w.Layers[1].Wv)...)
	if err := a.Merge(w); err != nil {
		t.Fatal(err)
	}
	m := a.Module(1, "v_proj")
	out, in := m.B.Shape()[0], m.A.Shape()[1]
	s := a.Config.Scaling()
	for o := 0; o < out; o++ {
		for i := 0; i < in; i++ {
			var d float64
			for k := 0; k < 2; k++ {
				d += float64(model.F32(m.B)[o*2+k]) * float64(model.F32(m.A)[k*in+i])
			}
			want := float64(before[o*in+i]) + s*d
			if got := float64(model.F32(w.Layers[1].Wv)[o*in+i]); math.Abs(got-want) > 1e-6 {
				t.Fatalf("merged W[%d,%d] = %g, want %g", o, i, got, want)
			}
		}
	}
	if _, _, _, _, ok := a.LowRank(1, "v_proj"); ok {
		t.Error("a merged adapter must not also act live")
	}
	if err := a.Merge(w); err == nil {
		t.Error("double merge accepted")
	}
	if err := a.Unmerge(w); err != nil {
		t.Fatal(err)
	}
	for i, v := range model.F32(w.Layers[1].Wv) {
		if math.Abs(float64(v-before[i])) > 1e-6 {
			t.Fatalf("unmerge left W[%d] = %g, was %g", i, v, before[i])
		}
	}
	if _, _, _, _, ok := a.LowRank(1, "v_proj"); !ok {
		t.Error("unmerged adapter should be live again")
	}
}

func TestEnableSwitch(t *testing.T) {
	w := microWeights(t)
	a, err := New(w, DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	a.SetEnabled(false)
	if _, _, _, _, ok := a.LowRank(0, "q_proj"); ok || a.Enabled() {
		t.Error("disabled adapter still live")
	}
	a.SetEnabled(true)
	if _, _, _, s, ok := a.LowRank(0, "q_proj"); !ok || s != 2 {
		t.Errorf("enabled adapter: ok=%v scale=%g, want scale 2", ok, s)
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	w := microWeights(t)
	a, err := New(w, Config{R: 2, Alpha: 4, Dropout: 0.1, Targets: []string{"all-linear"}, RSLoRA: true, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a)
	dir := filepath.Join(t.TempDir(), "adapter")
	head := model.NewTensor(1, 8)
	model.F32(head)[3] = 0.5
	if err := a.Save(dir, "models/base", "SEQ_CLS", Extra{"score": head}); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"peft_type", "task_type", "r", "lora_alpha", "lora_dropout", "target_modules", "use_rslora", "bias", "base_model_name_or_path", "modules_to_save"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("adapter_config.json lacks %q", k)
		}
	}
	if !filepath.IsAbs(generic["base_model_name_or_path"].(string)) {
		t.Errorf("base path %v should be absolute", generic["base_model_name_or_path"])
	}
	st, _, err := safetensors.ReadFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string][]int{}
	for _, x := range st {
		names[x.Name] = x.Shape
	}
	if s := names["base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"]; len(s) != 2 || s[0] != 2 || s[1] != 8 {
		t.Errorf("q_proj lora_A shape %v, want [2 8]", s)
	}
	if s := names["base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"]; len(s) != 2 || s[0] != 8 || s[1] != 2 {
		t.Errorf("down_proj lora_B shape %v, want [8 2]", s)
	}
	b, pc, extra, err := Load(dir, w)
	if err != nil {
		t.Fatal(err)
	}
	if pc.TaskType != "SEQ_CLS" || b.Config.Scaling() != a.Config.Scaling() || b.Config.Dropout != 0.1 {
		t.Errorf("config round trip: %+v", pc)
	}
	if len(b.Modules) != len(a.Modules) {
		t.Fatalf("%d modules back, want %d", len(b.Modules), len(a.Modules))
	}
	for i, m := range a.Modules {
		n := b.Modules[i]
		if n.Layer != m.Layer || n.Name != m.Name {
			t.Fatalf("module %d: %d.%s back as %d.%s", i, m.Layer, m.Name, n.Layer, n.Name)
		}
		for j, v := range model.F32(m.B) {
			if model.F32(n.B)[j] != v {
				t.Fatalf("%s B differs", m.PEFTPrefix())
			}
		}
		for j, v := range model.F32(m.A) {
			if model.F32(n.A)[j] != v {
				t.Fatalf("%s A differs", m.PEFTPrefix())
			}
		}
	}
	if h := extra["score"]; h == nil || model.F32(h)[3] != 0.5 {
		t.Errorf("score head not restored: %v", extra)
	}
}

// TestLoadForeignAdapter reads an adapter laid out as other tools write it:
// ".default" in key names, extra config fields, tensors in another order.
func TestLoadForeignAdapter(t *testing.T) {
	w := microWeights(t)
	dir := t.TempDir()
	cfg := `{"peft_type":"LORA","task_type":"CAUSAL_LM","r":2,"lora_alpha":4,"lora_dropout":0.05,
	"target_modules":["v_proj","q_proj"],"bias":"none","base_model_name_or_path":"x","modules_to_save":null,
	"megatron_config":null,"use_dora":false,"layer_replication":null}`
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ones := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(i + 1)
		}
		return x
	}
	ts := []safetensors.Tensor{
		{Name: "base_model.model.model.layers.1.self_attn.v_proj.lora_B.default.weight", Shape: []int{4, 2}, Data: ones(8)},
		{Name: "base_model.model.model.layers.1.self_attn.v_proj.lora_A.default.weight", Shape: []int{2, 8}, Data: ones(16)},
		{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", Shape: []int{2, 8}, Data: ones(16)},
		{Name: "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", Shape: []int{8, 2}, Data: ones(16)},
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, nil, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	a, _, _, err := Load(dir, w)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Modules) != 2 || a.Modules[0].Name != "q_proj" || a.Modules[1].Layer != 1 {
		t.Fatalf("modules %+v", a.Modules)
	}
	// A wrong shape is rejected, naming the module.
	ts[0].Shape = []int{2, 4}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsFile), ts, nil, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Load(dir, w); err == nil || !strings.Contains(err.Error(), "layers.1.self_attn.v_proj") {
		t.Errorf("wrong shape: %v", err)
	}
}

// MergeDirs merges saved adapters in order, exactly as merging the same
// adapters in memory one after the other, and refuses an adapter that
// also trains whole modules.
func TestMergeDirs(t *testing.T) {
	dir := t.TempDir()
	first, second := dir+"/first", dir+"/second"
	want := microWeights(t)
	a1, err := New(want, Config{R: 2, Alpha: 4, Targets: []string{"v_proj", "q_proj"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a1)
	if err := a1.Save(first, "base", "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	if err := a1.Merge(want); err != nil {
		t.Fatal(err)
	}
	a2, err := New(want, Config{R: 1, Alpha: 3, Targets: []string{"v_proj", "down_proj"}, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a2)
	if err := a2.Save(second, "base", "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	if err := a2.Merge(want); err != nil {
		t.Fatal(err)
	}

	got := microWeights(t)
	if err := MergeDirs(got, first, second); err != nil {
		t.Fatal(err)
	}
	gn, wn := got.Named(), want.Named()
	changed := false
	base := microWeights(t).Named()
	for i := range wn {
		g, w := model.F32(gn[i].Tensor), model.F32(wn[i].Tensor)
		for j := range w {
			if g[j] != w[j] {
				t.Fatalf("%s[%d] = %g, merging in memory gives %g", wn[i].Name, j, g[j], w[j])
			}
			if g[j] != model.F32(base[i].Tensor)[j] {
				changed = true
			}
		}
	}
	if !changed {
		t.Fatal("merging changed no weight")
	}

	withHead := dir + "/head"
	a3, err := New(microWeights(t), Config{R: 1, Alpha: 1, Targets: []string{"q_proj"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	head := tensor.New(tensor.WithShape(1, 8), tensor.Of(tensor.Float32))
	if err := a3.Save(withHead, "base", "SEQ_CLS", Extra{"score": head}); err != nil {
		t.Fatal(err)
	}
	if err := MergeDirs(microWeights(t), withHead); err == nil || !strings.Contains(err.Error(), "score") || !strings.Contains(err.Error(), withHead) {
		t.Fatalf("adapter with a score head: %v", err)
	}
}

// TestMergeRefusesQ8Base: a base held in Q8_0 (decoding only) is refused
// by a merge, naming the module, and left as it was.
func TestMergeRefusesQ8Base(t *testing.T) {
	c := model.Config{ModelType: "llama", HiddenSize: 32, IntermediateSize: 64, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, VocabSize: 11, MaxPositionEmbeddings: 16, RMSNormEps: 1e-5, HiddenAct: "silu"}
	w, err := model.NewRandom(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(w, Config{R: 2, Alpha: 4, Targets: []string{"v_proj"}, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	randomizeB(a)
	w.StoreQ8()
	blocks := append([]q8.Block(nil), model.Q8(w.Layers[0].Wv)...)
	err = a.Merge(w)
	if err == nil || !strings.Contains(err.Error(), "layers.0.self_attn.v_proj") || !strings.Contains(err.Error(), "Q8_0") {
		t.Fatalf("merge into a Q8_0 base: %v", err)
	}
	if !slices.Equal(blocks, model.Q8(w.Layers[0].Wv)) {
		t.Fatal("the refused merge changed the base")
	}
}
