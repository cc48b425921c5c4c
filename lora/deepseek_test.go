package lora

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/generate"
)

// deepseekWeights is a two-layer DeepSeek-V3 (compressed queries, a dense
// first layer, then 4 routed experts and a shared one) with O(1)
// activations; with experts = 0 every layer is dense and q_proj is plain.
func deepseekWeights(t *testing.T, experts int) *model.Weights {
	t.Helper()
	rank := 3
	c := model.Config{ModelType: "deepseek_v3", HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
		NumAttentionHeads: 2, VocabSize: 11, MaxPositionEmbeddings: 16, RMSNormEps: 1e-5, RopeTheta: 10000, HiddenAct: "silu",
		DeepSeek: &model.DeepSeek{QLoraRank: &rank, KVLoraRank: 4, QKNopeHeadDim: 2, QKRopeHeadDim: 2, VHeadDim: 3,
			NRoutedExperts: experts, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 3,
			FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: "sigmoid", TopkMethod: "noaux_tc", NGroup: 2, TopkGroup: 1,
			NormTopkProb: true, RoutedScalingFactor: 2.5}}
	if experts == 0 {
		c.ModelType, c.QLoraRank, c.ScoringFunc, c.TopkMethod, c.NGroup, c.TopkGroup = "deepseek_v2", nil, "softmax", "greedy", 0, 0
		c.RoutedScalingFactor = 1
	}
	w, err := model.NewRandom(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 4))
	for _, n := range w.Named() {
		if n.Tensor.Dims() == 2 {
			for i := range model.F32(n.Tensor) {
				model.F32(n.Tensor)[i] = float32(r.NormFloat64() / math.Sqrt(float64(n.Tensor.Shape()[1])))
			}
		}
	}
	return w
}

// LoRA on every linear module of a DeepSeek-V3 with experts (all-linear:
// the MLA projections, the dense layer's MLP, every routed expert's and
// the shared expert's projections): the adapter changes the graph's
// logits, the engine with the live adapter computes the same logits
// (kv_b_proj's update merged into the weight it attends with), merging
// equals the live adapter, and the PEFT files round-trip under DeepSeek's
// module names.
func TestDeepSeekLoRA(t *testing.T) {
	w := deepseekWeights(t, 4)
	a, err := New(w, Config{R: 2, Alpha: 4, Targets: []string{"all-linear"}, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	// Layer 0: 5 MLA + 3 MLP; layer 1: 5 MLA + 3·(4 experts + 1 shared).
	if len(a.Modules) != 5+3+5+3*5 {
		t.Fatalf("%d modules", len(a.Modules))
	}
	randomizeB(a)
	const T = 5
	base := logitsOf(t, w, nil, 1, T)
	live := logitsOf(t, w, a, 1, T)
	if tinymodel.MaxRelDiff(base, live) < 1e-3 {
		t.Fatal("adapter has no visible effect; the test would prove nothing")
	}

	e, err := generate.New(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.SetAdapter(a)
	toks := make([]int, T)
	for i := range toks {
		toks[i] = (i*7 + 3) % w.Config.VocabSize // as tinymodel.Logits
	}
	out, err := e.ForwardAll([]*generate.State{e.NewState()}, [][]int{toks})
	if err != nil {
		t.Fatal(err)
	}
	if d := tinymodel.MaxRelDiff(live, out[0]); d > 1e-5 {
		t.Errorf("engine with the live adapter differs from the graph by %.3g", d)
	}

	dir := filepath.Join(t.TempDir(), "adapter")
	if err := a.Save(dir, "base", "CAUSAL_LM", nil); err != nil {
		t.Fatal(err)
	}
	b, _, _, err := Load(dir, w)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i, m := range b.Modules {
		names = append(names, m.PEFTPrefix())
		if m.Name != a.Modules[i].Name || !slices.Equal(model.F32(m.B), model.F32(a.Modules[i].B)) {
			t.Fatalf("module %d: %s back as %s", i, a.Modules[i].PEFTPrefix(), m.PEFTPrefix())
		}
	}
	if !slices.Contains(names, "base_model.model.model.layers.1.self_attn.kv_a_proj_with_mqa") ||
		!slices.Contains(names, "base_model.model.model.layers.1.mlp.experts.3.down_proj") ||
		!slices.Contains(names, "base_model.model.model.layers.1.mlp.shared_experts.up_proj") {
		t.Errorf("PEFT names %v", names)
	}

	if err := a.Merge(w); err != nil {
		t.Fatal(err)
	}
	merged := logitsOf(t, w, nil, 1, T)
	if d := tinymodel.MaxRelDiff(live, merged); d > 1e-5 {
		t.Errorf("merged vs live logits differ by %.3g relative", d)
	}
}

// Gradients of the adapters on every DeepSeek module (MLA projections,
// routed and shared experts) against central differences of the mean NLL,
// in float64.
func TestDeepSeekAdapterGradients(t *testing.T) {
	checkAdapterGradients(t, deepseekWeights(t, 4), Config{R: 2, Alpha: 4, Targets: []string{"all-linear"}, Seed: 6},
		func(int) float32 { return 1 })
}

// all-linear covers a dense DeepSeek's MLA and MLP modules, and on a
// model with experts every routed and shared expert's projections (PEFT's
// suffix match); modules the family does not have are refused.
func TestDeepSeekTargets(t *testing.T) {
	dense := deepseekWeights(t, 0)
	a, err := New(dense, Config{R: 2, Alpha: 2, Targets: []string{"all-linear"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"q_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
	if !slices.Equal(a.Config.Targets, want) || len(a.Modules) != 2*len(want) {
		t.Fatalf("all-linear on a dense DeepSeek: %v, %d modules", a.Config.Targets, len(a.Modules))
	}
	moe := deepseekWeights(t, 4)
	a, err = New(moe, Config{R: 2, Alpha: 2, Targets: []string{"gate_proj"}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range a.Modules {
		names = append(names, m.PEFTPrefix())
	}
	wantNames := []string{"base_model.model.model.layers.0.mlp.gate_proj",
		"base_model.model.model.layers.1.mlp.experts.0.gate_proj", "base_model.model.model.layers.1.mlp.experts.1.gate_proj",
		"base_model.model.model.layers.1.mlp.experts.2.gate_proj", "base_model.model.model.layers.1.mlp.experts.3.gate_proj",
		"base_model.model.model.layers.1.mlp.shared_experts.gate_proj"}
	if !slices.Equal(names, wantNames) {
		t.Errorf("gate_proj on a MoE model: %v", names)
	}
	for _, tc := range []struct{ target, want string }{
		{"k_proj", "k_proj"},
		{"q_proj", "q_proj"}, // compressed queries: q_a_proj and q_b_proj instead
		{"experts.0.gate_proj", "experts.0.gate_proj"},
	} {
		if _, err := New(moe, Config{R: 2, Alpha: 2, Targets: []string{tc.target}}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("target %s: %v", tc.target, err)
		}
	}
	// Dropout inside the fused experts is refused when the graph is built.
	a, err = New(moe, Config{R: 2, Alpha: 2, Dropout: 0.1, Targets: []string{"all-linear"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.Build(moe, model.GraphOptions{B: 1, T: 2, Hook: a.Hook()}); err == nil || !strings.Contains(err.Error(), "dropout on routed experts") {
		t.Errorf("dropout on experts: %v", err)
	}
}
