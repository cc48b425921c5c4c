package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// microConfig is the smallest config that still has every feature: two
// layers, grouped KV heads (H = 2, KVH = 1), a vocabulary of 11.
func microConfig(tied, bias bool, scaling *RopeScaling) Config {
	return Config{
		ModelType: "llama", HiddenSize: 8, IntermediateSize: 12, NumHiddenLayers: 2,
		NumAttentionHeads: 2, NumKeyValueHeads: 1, VocabSize: 11, MaxPositionEmbeddings: 16,
		RMSNormEps: 1e-5, RopeTheta: 10000, TieWordEmbeddings: tied, AttentionBias: bias,
		HiddenAct: "silu", RopeScaling: scaling,
	}
}

// qwen3Micro is microConfig as Qwen3: per-head q/k norms and a head
// dimension (6) other than hidden/heads (4).
func qwen3Micro(tied bool) Config {
	c := microConfig(tied, false, nil)
	c.ModelType, c.Architectures, c.HeadDimOverride = "qwen3", []string{"Qwen3ForCausalLM"}, 6
	return c
}

// linearMicro is microConfig with causal linear attention.
func linearMicro() Config {
	c := microConfig(false, true, nil)
	c.Attention = AttentionLinear
	return c
}

// gauMicro is microConfig as Gated Attention Units (expansion 12, shared
// width 4), in chunks of 2 so that the five positions span three chunks.
func gauMicro() Config {
	c := microConfig(false, false, nil)
	c.Attention, c.GAUSharedDim, c.GAUChunk = AttentionGAU, 4, 2
	return c
}

func gauMicroTied() Config {
	c := gauMicro()
	c.TieWordEmbeddings = true
	return c
}

// deepseekMicro is the smallest DeepSeek config with every feature: MLA
// (a plain q_proj for v2, compressed queries for v3), a dense first layer
// and a MoE layer of 4 experts (top 2) with a shared expert; v2 routes by
// softmax greedy with scaled weights, v3 by sigmoid noaux_tc over 2 groups
// with normalised, scaled weights.
func deepseekMicro(v3, tied bool) Config {
	c := microConfig(tied, false, nil)
	c.ModelType, c.NumKeyValueHeads = "deepseek_v2", 0
	c.DeepSeek = &DeepSeek{KVLoraRank: 4, QKNopeHeadDim: 2, QKRopeHeadDim: 2, VHeadDim: 3,
		NRoutedExperts: 4, NumExpertsPerTok: 2, NSharedExperts: 1, MoeIntermediateSize: 3,
		FirstKDenseReplace: 1, MoeLayerFreq: 1, ScoringFunc: ScoringSoftmax, TopkMethod: TopkGreedy, RoutedScalingFactor: 1.5}
	if v3 {
		rank := 3
		c.ModelType = "deepseek_v3"
		c.QLoraRank, c.ScoringFunc, c.TopkMethod, c.NGroup, c.TopkGroup = &rank, ScoringSigmoid, TopkNoAuxTC, 2, 1
		c.NormTopkProb, c.RoutedScalingFactor = true, 2.5
	}
	return c
}

// deepseekYarn is deepseekMicro (v2) with DeepSeek's YaRN: the rotary
// parts scaled (mscale ≠ mscale_all_dim) and the softmax scale corrected.
func deepseekYarn() Config {
	c := deepseekMicro(false, false)
	ms, msAll := 1.0, 0.5
	c.RopeScaling = &RopeScaling{Type: "yarn", Factor: 4, OriginalMaxPositionEmbeddings: 64, MScale: &ms, MScaleAllDim: &msAll}
	return c
}

// scrambled returns weights with O(1) values everywhere (norms around 1,
// nonzero biases), so that every gradient is far from zero and a wrong
// formula cannot hide behind tiny numbers.
func scrambled(t *testing.T, c Config, seed uint64) *Weights {
	t.Helper()
	w, err := Allocate(c)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 99))
	for _, p := range w.Named() {
		d := F32(p.Tensor)
		for i := range d {
			switch {
			case p.Tensor.Dims() == 1 && !isBias(p.Name):
				d[i] = float32(1 + 0.3*r.NormFloat64())
			case isBias(p.Name):
				d[i] = float32(0.3 * r.NormFloat64())
			default:
				d[i] = float32(r.NormFloat64() / math.Sqrt(float64(p.Tensor.Shape()[1])))
			}
		}
	}
	return w
}

func isBias(name string) bool { return hasSuffix(name, ".bias") }

func allTrainable(string) bool { return true }

// fillInputs sets tokens, targets and (when present) loss weights.
func fillInputs(g *Graph, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 5))
	V := g.Config.VocabSize
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32(r.IntN(V))
		g.In.Targets[i] = int32(r.IntN(V))
	}
	if w := g.Vector("weights"); w != nil {
		for i := range w {
			w[i] = float32(i % 3) // includes zeros, like padding
		}
	}
}

// projection is a FuncLoss Σ r·x with fixed random r.
func projection(n int, seed uint64) LossFunc {
	r := rand.New(rand.NewPCG(seed, 3))
	proj := make([]float64, n)
	for i := range proj {
		proj[i] = r.NormFloat64()
	}
	return func(x [][]float64) (float64, [][]float64) {
		var s float64
		for i, v := range x[0] {
			s += proj[i] * v
		}
		return s, [][]float64{proj}
	}
}

// TestModelGradient checks every parameter's gradient of the whole model
// against central finite differences in float64, for each head and
// several configurations (Qwen3's q_norm and k_norm, DeepSeek's MLA
// projections and norms, router, routed and shared experts included; the
// noaux_tc correction bias only selects and is never trainable).
func TestModelGradient(t *testing.T) {
	llama3 := &RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8}
	for _, tc := range []struct {
		name string
		cfg  Config
		loss string
		seed uint64 // of the weights
	}{
		{"untied/meannll", microConfig(false, false, nil), "meannll", 1},
		{"tied+bias/meannll", microConfig(true, true, nil), "meannll", 1},
		{"untied+llama3/logprobs", microConfig(false, false, llama3), "logprobs", 1},
		{"tied+bias/logits", microConfig(true, true, nil), "logits", 1},
		{"qwen3+untied/meannll", qwen3Micro(false), "meannll", 1},
		{"qwen3+tied/logits", qwen3Micro(true), "logits", 1},
		// Seeds under which every expert receives tokens.
		{"deepseek_v2/meannll", deepseekMicro(false, false), "meannll", 2},
		{"deepseek_v3/meannll", deepseekMicro(true, false), "meannll", 1},
		{"deepseek_v3+tied/logits", deepseekMicro(true, true), "logits", 1},
		{"deepseek_v2+yarn/logprobs", deepseekYarn(), "logprobs", 2},
		{"deepseek_v2/meannll+balance", deepseekMicro(false, false), "meannll+balance", 2},
		{"deepseek_v3/meannll+balance", deepseekMicro(true, false), "meannll+balance", 1},
		{"linear-attention/meannll", linearMicro(), "meannll", 1},
		{"gau/meannll", gauMicro(), "meannll", 1},
		{"gau+tied/logits", gauMicroTied(), "logits", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := scrambled(t, tc.cfg, tc.seed)
			g, err := Build(w, GraphOptions{B: 2, T: 5, Trainable: allTrainable, Dtype: tensor.Float64})
			if err != nil {
				t.Fatal(err)
			}
			var loss *gorgonia.Node
			N, V := g.B*g.T, g.Config.VocabSize
			switch tc.loss {
			case "meannll":
				loss = g.MeanNLL(g.InputVector("weights", N))
			case "logprobs":
				loss = g.FuncLoss("proj", projection(N, 1), g.TargetLogProbs())
			case "logits":
				loss = g.FuncLoss("proj", projection(N*V, 2), g.Logits())
			case "meannll+balance":
				var err error
				if loss, err = gorgonia.Add(g.MeanNLL(g.InputVector("weights", N)), g.MoEBalanceLoss(0.3)); err != nil {
					t.Fatal(err)
				}
			}
			fillInputs(g, 3)
			p, err := g.Compile(loss, g.Trainable)
			if err != nil {
				t.Fatal(err)
			}
			checked := 0
			for _, n := range g.Trainable {
				p.ZeroGrad()
				if err := p.Run(); err != nil {
					t.Fatal(err)
				}
				analytic := append([]float64(nil), p.grad64(n)...)
				data := n.Value().Data().([]float64)
				var maxAbs float64
				for j := range data {
					num := fdLoss(t, p, loss, data, j)
					maxAbs = math.Max(maxAbs, math.Abs(num))
					if d := math.Abs(num - analytic[j]); d > 1e-6+1e-5*math.Abs(num) {
						t.Errorf("%s[%d]: analytic %.9g, finite difference %.9g", n.Name(), j, analytic[j], num)
					}
					checked++
				}
				if maxAbs < 1e-4 {
					t.Errorf("%s: gradient is ~0 (max %g): the check proves nothing", n.Name(), maxAbs)
				}
			}
			t.Logf("%d parameters in %d tensors checked", checked, len(g.Trainable))
		})
	}
}

// fdLoss is the central difference of loss in data[j].
func fdLoss(t *testing.T, p *Program, loss *gorgonia.Node, data []float64, j int) float64 {
	t.Helper()
	const eps = 1e-5
	orig := data[j]
	lp := evalLoss(t, p, loss, data, j, orig+eps)
	lm := evalLoss(t, p, loss, data, j, orig-eps)
	data[j] = orig
	return (lp - lm) / (2 * eps)
}

// evalLoss runs p with data[j] = x and returns the loss in float64.
func evalLoss(t *testing.T, p *Program, loss *gorgonia.Node, data []float64, j int, x float64) float64 {
	t.Helper()
	data[j] = x
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	switch v := loss.Value().Data().(type) {
	case float64:
		return v
	default:
		t.Fatalf("loss value %T", v)
	}
	return 0
}

// lowRankHook adds x·A·B to q_proj and v_proj outputs, built from
// gorgonia's own operations (as an adapter would be), with A (in, 2) and
// B (2, out) input nodes per layer and module.
type lowRankHook struct {
	seed   uint64
	params []*gorgonia.Node
}

func (h *lowRankHook) Wrap(g *gorgonia.ExprGraph, layer int, module string, x, y *gorgonia.Node) (*gorgonia.Node, error) {
	if module != "q_proj" && module != "v_proj" {
		return y, nil
	}
	r := rand.New(rand.NewPCG(h.seed, uint64(layer*10+len(module))))
	mk := func(name string, rows, cols int) *gorgonia.Node {
		d := make([]float64, rows*cols)
		for i := range d {
			d[i] = r.NormFloat64() * 0.5
		}
		n := gorgonia.NewMatrix(g, tensor.Float64, gorgonia.WithShape(rows, cols), gorgonia.WithName(fmt.Sprintf("hook.%d.%s.%s", layer, module, name)),
			gorgonia.WithValue(tensor.New(tensor.WithShape(rows, cols), tensor.WithBacking(d))))
		h.params = append(h.params, n)
		return n
	}
	a := mk("A", x.Shape()[1], 2)
	b := mk("B", 2, y.Shape()[1])
	xa, err := gorgonia.Mul(x, a)
	if err != nil {
		return nil, err
	}
	xab, err := gorgonia.Mul(xa, b)
	if err != nil {
		return nil, err
	}
	return gorgonia.Add(y, xab)
}

// TestHookGradient checks gradients flowing into parameters a LinearHook
// adds with gorgonia's own operations, with the base frozen.
func TestHookGradient(t *testing.T) {
	hook := &lowRankHook{seed: 3}
	w := scrambled(t, microConfig(false, true, nil), 2)
	g, err := Build(w, GraphOptions{B: 2, T: 5, Hook: hook, Dtype: tensor.Float64})
	if err != nil {
		t.Fatal(err)
	}
	if len(hook.params) != 2*2*2 {
		t.Fatalf("hook made %d parameters", len(hook.params))
	}
	loss := g.MeanNLL(g.InputVector("weights", g.B*g.T))
	fillInputs(g, 4)
	p, err := g.Compile(loss, hook.params)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range hook.params {
		p.ZeroGrad()
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		analytic := append([]float64(nil), p.grad64(n)...)
		data := n.Value().Data().([]float64)
		for j := range data {
			num := fdLoss(t, p, loss, data, j)
			if d := math.Abs(num - analytic[j]); d > 1e-6+1e-5*math.Abs(num) {
				t.Errorf("%s[%d]: analytic %.9g, finite difference %.9g", n.Name(), j, analytic[j], num)
			}
		}
	}
}
