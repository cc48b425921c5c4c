package model

import (
	"math"
	"strings"
	"testing"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// attentionOnly makes q, k, v and o projections trainable (a frozen base
// with trainable attention, as before adapters).
func attentionOnly(name string) bool {
	for _, m := range []string{"q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"} {
		if strings.HasSuffix(name, m) {
			return true
		}
	}
	return false
}

// trainingGraph is a float32 micro model with a MeanNLL loss.
func trainingGraph(t *testing.T, trainable func(string) bool) (*Weights, *Graph, *gorgonia.Node) {
	t.Helper()
	w := scrambled(t, microConfig(false, true, nil), 4)
	g, err := Build(w, GraphOptions{B: 2, T: 5, Trainable: trainable})
	if err != nil {
		t.Fatal(err)
	}
	loss := g.MeanNLL(g.InputVector("weights", g.B*g.T))
	fillInputs(g, 8)
	return w, g, loss
}

func TestGradientsAccumulateUntilZeroGrad(t *testing.T) {
	_, g, loss := trainingGraph(t, allTrainable)
	p, err := g.Compile(loss, g.Trainable)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	once := map[*gorgonia.Node][]float32{}
	for _, n := range g.Trainable {
		once[n] = append([]float32(nil), p.Grad(n)...)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Trainable {
		for i, v := range p.Grad(n) {
			if v != 2*once[n][i] {
				t.Fatalf("%s[%d]: two runs give %v, one run %v", n.Name(), i, v, once[n][i])
			}
		}
	}
	p.ZeroGrad()
	for _, n := range g.Trainable {
		for _, v := range p.Grad(n) {
			if v != 0 {
				t.Fatalf("%s: not zero after ZeroGrad", n.Name())
			}
		}
	}
	// Micro-batches: the sum over two different batches equals the sum of
	// their separate gradients.
	first := map[*gorgonia.Node][]float32{}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Trainable {
		first[n] = append([]float32(nil), p.Grad(n)...)
	}
	fillInputs(g, 9)
	p.ZeroGrad()
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	second := map[*gorgonia.Node][]float32{}
	for _, n := range g.Trainable {
		second[n] = append([]float32(nil), p.Grad(n)...)
	}
	fillInputs(g, 8)
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	for _, n := range g.Trainable {
		for i, v := range p.Grad(n) {
			if want := first[n][i] + second[n][i]; math.Abs(float64(v-want)) > 1e-6*(1+math.Abs(float64(want))) {
				t.Fatalf("%s[%d]: accumulated %v, want %v", n.Name(), i, v, want)
			}
		}
	}
}

// TestFrozenWeights trains only the attention projections: every other
// weight gets no gradient node, stays bit-identical through SGD steps,
// and cannot be asked for.
func TestFrozenWeights(t *testing.T) {
	w, g, loss := trainingGraph(t, attentionOnly)
	if len(g.Trainable) != 8 {
		t.Fatalf("%d trainable tensors, want 8 (q, k, v, o × 2 layers)", len(g.Trainable))
	}
	before := map[string][]float32{}
	for _, p := range w.Named() {
		before[p.Name] = append([]float32(nil), F32(p.Tensor)...)
	}
	if _, err := g.Compile(loss, []*gorgonia.Node{g.Params["model.norm.weight"]}); err == nil {
		t.Fatal("a frozen weight was accepted as wrt")
	}
	p, err := g.Compile(loss, g.Trainable)
	if err != nil {
		t.Fatal(err)
	}
	for n := range p.nodes {
		if s := n.Op(); s != nil && (strings.Contains(s.String(), "EmbeddingGrad") || strings.Contains(s.String(), "RMSNormGradW") ||
			strings.Contains(s.String(), "MeanNLLGrad(dw)") || strings.Contains(s.String(), "ColSum")) {
			t.Errorf("the program computes %v, a gradient of a frozen weight", s)
		}
	}
	var first, last float32
	for step := range 20 {
		p.ZeroGrad()
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = Value32(loss)[0]
		}
		last = Value32(loss)[0]
		for _, n := range g.Trainable {
			d := n.Value().Data().([]float32) // bound to the Weights tensor
			for i, gr := range p.Grad(n) {
				d[i] -= 0.5 * gr
			}
		}
	}
	if !(last < first) {
		t.Errorf("loss went from %v to %v under SGD on the attention projections", first, last)
	}
	if p.Grad(g.Params["model.embed_tokens.weight"]) != nil {
		t.Error("a frozen weight has a gradient")
	}
	for _, q := range w.Named() {
		changed := false
		for i, v := range F32(q.Tensor) {
			changed = changed || math.Float32bits(v) != math.Float32bits(before[q.Name][i])
		}
		if changed != attentionOnly(q.Name) {
			t.Errorf("%s: changed = %v, trainable = %v", q.Name, changed, attentionOnly(q.Name))
		}
	}
}

// TestGraphSharesWeights: float32 parameter nodes are the Weights tensors.
func TestGraphSharesWeights(t *testing.T) {
	w, g, loss := trainingGraph(t, nil)
	if &F32(w.Embed)[0] != &g.Params["model.embed_tokens.weight"].Value().Data().([]float32)[0] {
		t.Fatal("the embedding node holds a copy of the weights")
	}
	p, err := g.Compile(nil, nil, loss)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	before := Value32(loss)[0]
	F32(w.LMHead)[0] += 1
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	if Value32(loss)[0] == before {
		t.Fatal("changing lm_head in Weights did not change the loss")
	}
}

func TestOneLossPerGraph(t *testing.T) {
	_, g, loss := trainingGraph(t, allTrainable)
	if _, err := g.Compile(loss, g.Trainable[:3]); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Compile(loss, g.Trainable[:2]); err != nil {
		t.Fatalf("recompiling the same loss for fewer weights: %v", err)
	}
	if _, err := g.Compile(loss, g.Trainable[:4]); err == nil {
		t.Fatal("a weight the first differentiation left out was accepted")
	}
	other := g.FuncLoss("sum", projection(g.B*g.T, 1), g.TargetLogProbs())
	if _, err := g.Compile(other, g.Trainable[:1]); err == nil {
		t.Fatal("a second loss on a differentiated graph was accepted")
	}
	if _, err := g.Compile(nil, nil, other); err != nil {
		t.Fatalf("a forward-only program after differentiation: %v", err)
	}
}

// TestPaddingDoesNotLeak: with right padding and a causal mask, the tokens
// after a sequence's end do not change its log-probs.
func TestPaddingDoesNotLeak(t *testing.T) {
	_, g, _ := trainingGraph(t, nil)
	lp := g.TargetLogProbs()
	p, err := g.Compile(nil, nil, lp)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	before := append([]float32(nil), Value32(lp)...)
	for i := g.T - 2; i < g.T; i++ { // pad the end of sequence 0
		g.In.Tokens[i] = (g.In.Tokens[i] + 1) % int32(g.Config.VocabSize)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	after := Value32(lp)
	for i := range before {
		changed := before[i] != after[i]
		if want := i >= g.T-2 && i < g.T; changed != want {
			t.Errorf("position %d: changed = %v, want %v", i, changed, want)
		}
	}
}

// TestFloat32MatchesFloat64 compares float32 gradients of the whole
// model with the float64 ones the finite-difference check validates.
func TestFloat32MatchesFloat64(t *testing.T) {
	w := scrambled(t, microConfig(true, true, nil), 6)
	grads := map[tensor.Dtype]map[string][]float32{}
	for _, dt := range []tensor.Dtype{tensor.Float32, tensor.Float64} {
		g, err := Build(w, GraphOptions{B: 2, T: 5, Trainable: allTrainable, Dtype: dt})
		if err != nil {
			t.Fatal(err)
		}
		loss := g.MeanNLL(g.InputVector("weights", g.B*g.T))
		fillInputs(g, 2)
		p, err := g.Compile(loss, g.Trainable)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(); err != nil {
			t.Fatal(err)
		}
		grads[dt] = map[string][]float32{}
		for _, n := range g.Trainable {
			grads[dt][n.Name()] = append([]float32(nil), p.Grad(n)...)
		}
	}
	for name, want := range grads[tensor.Float64] {
		compareRel(t, name, grads[tensor.Float32][name], want, 1e-4)
	}
}

// TestTokenStats checks the head's per-token mean logit and entropy
// against full logits.
func TestTokenStats(t *testing.T) {
	_, g, loss := trainingGraph(t, nil)
	logits := g.Logits()
	p, err := g.Compile(loss, nil, logits)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(); err != nil {
		t.Fatal(err)
	}
	meanLogit, entropy := g.TokenStats()
	V := g.Config.VocabSize
	z := Value32(logits)
	for n := range g.B * g.T {
		row := z[n*V : (n+1)*V]
		var mean, mx float64 = 0, math.Inf(-1)
		for _, v := range row {
			mean += float64(v) / float64(V)
			mx = math.Max(mx, float64(v))
		}
		var se float64
		for _, v := range row {
			se += math.Exp(float64(v) - mx)
		}
		lse := mx + math.Log(se)
		var ent float64
		for _, v := range row {
			ent -= math.Exp(float64(v)-lse) * (float64(v) - lse)
		}
		if math.Abs(float64(meanLogit[n])-mean) > 1e-5 || math.Abs(float64(entropy[n])-ent) > 1e-5 {
			t.Fatalf("token %d: stats (%v, %v), want (%v, %v)", n, meanLogit[n], entropy[n], mean, ent)
		}
	}
}

func TestBuildRejectsBadInput(t *testing.T) {
	w := scrambled(t, microConfig(false, false, nil), 1)
	if _, err := Build(w, GraphOptions{B: 0, T: 5}); err == nil {
		t.Error("B = 0 accepted")
	}
	if _, err := Build(w, GraphOptions{B: 1, T: 5, Dtype: tensor.Int}); err == nil {
		t.Error("an int graph accepted")
	}
	q := scrambled(t, qwen3Micro(false), 1)
	q.Layers[1].KNorm = nil
	if _, err := Build(q, GraphOptions{B: 1, T: 5}); err == nil || !strings.Contains(err.Error(), "layer 1 has q/k norms true/false") {
		t.Errorf("a qwen3 layer without k_norm: %v", err)
	}
	g, err := Build(w, GraphOptions{B: 1, T: 5})
	if err != nil {
		t.Fatal(err)
	}
	p, err := g.Compile(nil, nil, g.TargetLogProbs())
	if err != nil {
		t.Fatal(err)
	}
	g.In.Targets[2] = int32(g.Config.VocabSize)
	if err := p.Run(); err == nil || !strings.Contains(err.Error(), "position 2") {
		t.Errorf("an out-of-vocabulary target: %v", err)
	}
}
