package model

import (
	"errors"
	"fmt"
	"sort"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/internal/bf16"
	"github.com/gotune/gotune/internal/blas"
	"github.com/gotune/gotune/model/ops"
)

func init() {
	// Gorgonia's own matrix products (in adapters built on the graph) use
	// the same BLAS as the custom operations.
	gorgonia.Use(blas.Impl{})
}

// Inputs are the per-step host buffers a graph reads; the caller fills them
// in place (copy into them) before each Run: the graph holds these slices,
// so assigning new ones has no effect.
type Inputs struct {
	Tokens  []int32 // (B·T) token ids, row-major, right-padded
	Targets []int32 // (B·T) next-token ids (any valid id where the loss weight is 0)

	// Packed graphs only (GraphOptions.Packed; nil otherwise): each
	// token's position within its own document, and its document's
	// 1-based segment number (0 on padding), as data.Batch lays them out.
	Positions []int32 // (B·T)
	Segments  []int32 // (B·T)
}

// LinearHook adds a term to a linear module's output while the graph is
// built (LoRA uses it). x is the module input (B·T, in), y the base output
// (B·T, out); the returned node replaces y. module is a Hugging Face name
// below the layer's attention or MLP block (model.ModuleNames, and
// shared_experts.gate_proj, … in mixture-of-experts layers).
type LinearHook interface {
	Wrap(g *gorgonia.ExprGraph, layer int, module string, x, y *gorgonia.Node) (*gorgonia.Node, error)
}

// ExpertHook is implemented by a LinearHook that also updates the routed
// experts of mixture-of-experts layers, whose projections run inside one
// fused operation (ops.MoE) where Wrap cannot reach them. ExpertAdapter
// returns the low-rank update of one expert projection (module
// "experts.E.gate_proj", …) in the graph's dtype, or nil for none.
type ExpertHook interface {
	ExpertAdapter(g *gorgonia.ExprGraph, layer int, module string, dt tensor.Dtype) (*ops.LowRank, error)
}

// GraphOptions shape a graph.
type GraphOptions struct {
	B, T      int
	Trainable func(hfName string) bool // base weights that may get gradients (nil: none)
	Hook      LinearHook               // nil: the plain model
	Dtype     tensor.Dtype             // Float32 (default) or Float64 (gradient checks)
	// Packed rows hold several documents each (padding-free packing):
	// RoPE takes Inputs.Positions and attention is blocked between
	// Inputs.Segments, so every document is computed as if alone.
	Packed bool
	// Checkpoint recomputes each decoder layer's activations in the
	// backward pass from the layer's input instead of keeping them
	// (gradient checkpointing: ops.Checkpoint), so that a training program
	// holds one layer's activations and every layer's input; the results
	// are bit for bit those without. Mixture-of-experts layers keep
	// theirs (their expert statistics count every forward pass).
	Checkpoint bool
}

// Graph is the decoder of one batch shape as a gorgonia expression graph.
// Its programs (Compile) must not run concurrently.
type Graph struct {
	G         *gorgonia.ExprGraph
	In        *Inputs
	Hidden    *gorgonia.Node            // (B·T, C) final-norm output
	Params    map[string]*gorgonia.Node // base weight nodes by Hugging Face name
	Trainable gorgonia.Nodes            // the Params that Trainable selected, in Weights.Named order
	Config    Config
	B, T      int
	Dtype     tensor.Dtype

	head      *gorgonia.Node // output embedding (lm_head, or the tied embedding)
	frozen    map[*gorgonia.Node]string
	stats     ops.TokenStats
	vectors   map[string]*hostVector
	logProbs  *gorgonia.Node
	logits    *gorgonia.Node
	lossGrads map[*gorgonia.Node]gradSet // Grad results, per loss
	loads     []*ops.ExpertLoad          // per layer; nil for dense layers
	routers   []routerInputs             // per MoE layer, for MoEBalanceLoss
}

// hostVector is an input vector the caller fills through a []float32.
type hostVector struct {
	host []float32
	node *gorgonia.Node
}

// buildError carries an error out of graph construction (see must).
type buildError struct{ err error }

// must unwraps a graph-building result; Build recovers the panic.
func must(n *gorgonia.Node, err error) *gorgonia.Node {
	if err != nil {
		panic(buildError{err})
	}
	return n
}

// Build makes the graph of the decoder for batches of B sequences of T
// tokens. In float32, parameter nodes are bound to w's tensors (no copy:
// updating w updates the graph); in float64 they hold converted copies.
func Build(w *Weights, opt GraphOptions) (g *Graph, err error) {
	if w == nil {
		return nil, errors.New("build graph: no weights")
	}
	c := w.Config
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("build graph: %w", err)
	}
	if opt.B <= 0 || opt.T <= 0 {
		return nil, fmt.Errorf("build graph: batch %d × %d tokens", opt.B, opt.T)
	}
	for i, l := range w.Layers {
		if (l.QNorm != nil) != c.QKNorm() || (l.KNorm != nil) != c.QKNorm() {
			return nil, fmt.Errorf("build graph: layer %d has q/k norms %v/%v, model_type %s uses them: %v", i, l.QNorm != nil, l.KNorm != nil, c.ModelType, c.QKNorm())
		}
	}
	if opt.Packed && (c.LinearAttention() || c.GAU()) {
		// Their running sums cross document boundaries: there is no
		// block-diagonal form to pack with.
		return nil, fmt.Errorf("build graph: packed rows with gotune_attention %q: only softmax and latent attention block attention between documents", c.Attention)
	}
	if opt.Dtype == (tensor.Dtype{}) {
		opt.Dtype = tensor.Float32
	}
	if opt.Dtype != tensor.Float32 && opt.Dtype != tensor.Float64 {
		return nil, fmt.Errorf("build graph: dtype %v (want float32 or float64)", opt.Dtype)
	}
	defer func() {
		if r := recover(); r != nil {
			be, ok := r.(buildError)
			if !ok {
				panic(r)
			}
			g, err = nil, fmt.Errorf("build graph: %w", be.err)
		}
	}()
	N := opt.B * opt.T
	g = &Graph{
		G: gorgonia.NewGraph(), In: &Inputs{Tokens: make([]int32, N), Targets: make([]int32, N)},
		Params: map[string]*gorgonia.Node{}, Config: c, B: opt.B, T: opt.T, Dtype: opt.Dtype,
		frozen:  map[*gorgonia.Node]string{},
		stats:   ops.TokenStats{MeanLogit: make([]float32, N), Entropy: make([]float32, N)},
		vectors: map[string]*hostVector{}, lossGrads: map[*gorgonia.Node]gradSet{},
	}
	if opt.Packed {
		g.In.Positions, g.In.Segments = make([]int32, N), make([]int32, N)
	}
	for _, p := range w.Named() {
		n := g.param(p.Name, p.Tensor)
		if opt.Trainable != nil && opt.Trainable(p.Name) && !SelectionOnly(p.Name) {
			if BF16(p.Tensor) != nil {
				return nil, fmt.Errorf("build graph: %s is stored in bfloat16 (a frozen base) and cannot be trained", p.Name)
			}
			g.Trainable = append(g.Trainable, n)
		} else {
			g.frozen[n] = p.Name
		}
	}
	g.head = g.Params["model.embed_tokens.weight"]
	if !c.TieWordEmbeddings {
		g.head = g.Params["lm_head.weight"]
	}
	g.Hidden = g.decoder(opt.Hook, opt.Checkpoint)
	return g, nil
}

// param adds a weight node named by its Hugging Face name. A matrix
// stored in bfloat16 (StoreBF16) is bound as an ops.BF16Matrix in float32
// graphs and widened to a copy in float64 ones.
func (g *Graph) param(name string, t *tensor.Dense) *gorgonia.Node {
	var v gorgonia.Value = t
	if Q8(t) != nil {
		panic(buildError{fmt.Errorf("%s is held in Q8_0 (StoreQ8), which is for decoding only: a graph reads weights in float32 or bfloat16", name)})
	}
	bits := BF16(t)
	switch {
	case g.Dtype == tensor.Float64:
		d := make([]float64, t.Shape().TotalSize())
		if bits != nil {
			for i, h := range bits {
				d[i] = float64(bf16.ToFloat32(h))
			}
		} else {
			for i, x := range F32(t) {
				d[i] = float64(x)
			}
		}
		v = tensor.New(tensor.WithShape(t.Shape()...), tensor.WithBacking(d))
	case bits != nil:
		m, err := ops.NewBF16Matrix(t.Shape()[0], t.Shape()[1], bits)
		if err != nil {
			panic(buildError{fmt.Errorf("%s: %w", name, err)})
		}
		v = m
	}
	n := gorgonia.NewTensor(g.G, g.Dtype, t.Dims(), gorgonia.WithShape(t.Shape()...), gorgonia.WithName(name), gorgonia.WithValue(v))
	g.Params[name] = n
	return n
}

// decoder builds embedding → L pre-norm blocks → final norm.
// Attention follows Hugging Face's LlamaAttention, with Qwen3Attention's
// per-head q/k RMSNorm where the family has it, or DeepSeek's multi-head
// latent attention (mla), or gotune's causal linear attention; the
// feed-forward is a SwiGLU MLP or DeepSeek's mixture of experts (moe).
// Under gotune_attention "gau" each block is one Gated Attention Unit.
func (g *Graph) decoder(hook LinearHook, checkpoint bool) *gorgonia.Node {
	c := g.Config
	H, KVH, D := c.NumAttentionHeads, c.KVHeads(), c.HeadDim()
	invFreq := c.InvFreq()
	attn := ops.AttentionShape{B: g.B, T: g.T, H: H, KVH: KVH, D: D, Segments: g.In.Segments}
	g.loads = make([]*ops.ExpertLoad, c.NumHiddenLayers)

	x := must(ops.Embedding(g.Params["model.embed_tokens.weight"], g.In.Tokens)) // (N, C)
	for l := range c.NumHiddenLayers {
		if checkpoint && !c.IsMoELayer(l) {
			x = g.checkpointed(x, func(x *gorgonia.Node) *gorgonia.Node { return g.layer(x, l, hook, attn, invFreq) })
		} else {
			x = g.layer(x, l, hook, attn, invFreq)
		}
	}
	return must(ops.RMSNorm(x, g.Params["model.norm.weight"], c.RMSNormEps)) // (N, C)
}

// checkpointed builds one layer by build on input x as a checkpointed
// segment (ops.Checkpoint): the layer's operation nodes are those built
// after x.
func (g *Graph) checkpointed(x *gorgonia.Node, build func(*gorgonia.Node) *gorgonia.Node) *gorgonia.Node {
	// Gorgonia numbers nodes in the order they are added: the layer's
	// are those numbered after every node that exists now.
	var before int64 = -1
	for _, n := range g.G.AllNodes() {
		before = max(before, n.ID())
	}
	y := build(x)
	r := &ops.Recompute{Input: x}
	for _, n := range g.G.AllNodes() {
		if n.ID() > before && n.Op() != nil && n != y {
			r.Nodes = append(r.Nodes, n)
		}
	}
	sort.Slice(r.Nodes, func(i, j int) bool { return r.Nodes[i].ID() < r.Nodes[j].ID() })
	// Every input of a recomputed node must be another, the layer's
	// input, or a graph input: nothing else is at hand in the backward.
	in := map[*gorgonia.Node]bool{x: true}
	for _, n := range r.Nodes {
		in[n] = true
	}
	for _, n := range append(r.Nodes, y) {
		it := g.G.From(n.ID())
		for it.Next() {
			if c := it.Node().(*gorgonia.Node); !in[c] && c.Op() != nil {
				panic(buildError{fmt.Errorf("checkpoint: %s reads %s from outside its layer", n.Name(), c.Name())})
			}
		}
	}
	return must(ops.Checkpoint(y, r))
}

// layer builds decoder layer l on its input x and returns its output.
func (g *Graph) layer(x *gorgonia.Node, l int, hook LinearHook, attn ops.AttentionShape, invFreq []float64) *gorgonia.Node {
	c := g.Config
	H, KVH := c.NumAttentionHeads, c.KVHeads()
	p := func(s string) *gorgonia.Node { return g.Params[fmt.Sprintf("model.layers.%d.%s", l, s)] }
	linear := func(in *gorgonia.Node, module, prefix string, bias bool) *gorgonia.Node {
		var b *gorgonia.Node
		if bias {
			b = p(prefix + module + ".bias")
		}
		y := must(ops.Linear(in, p(prefix+module+".weight"), b))
		if hook != nil {
			y = must(hook.Wrap(g.G, l, module, in, y))
		}
		return y
	}

	// Attention block: x + o_proj(attn(rope(q), rope(k), v)), pre-norm.
	h := must(ops.RMSNorm(x, p("input_layernorm.weight"), c.RMSNormEps)) // (N, C)
	if c.GAU() {
		// One Gated Attention Unit replaces attention and MLP:
		// x + o_proj(silu(u) ⊙ A·silu(v)), pre-norm (Hua et al. 2022).
		u := linear(h, "u_proj", "self_attn.", false) // (N, E)
		v := linear(h, "v_proj", "self_attn.", false) // (N, E)
		z := linear(h, "z_proj", "self_attn.", false) // (N, s)
		a := must(ops.GAU(u, v, z, p("self_attn.qk_gamma"), p("self_attn.qk_beta"),
			ops.GAUShape{B: g.B, T: g.T, E: c.IntermediateSize, S: c.GAUSharedDim, Chunk: c.GAUChunk}, c.GAUInvFreq()))
		return must(ops.Add(x, linear(a, "o_proj", "self_attn.", false)))
	}
	var a *gorgonia.Node
	if c.MLA() {
		a = g.mla(h, p, linear, invFreq) // (N, H·Dv)
	} else {
		q := linear(h, "q_proj", "self_attn.", c.AttentionBias) // (N, H·D)
		k := linear(h, "k_proj", "self_attn.", c.AttentionBias) // (N, KVH·D)
		v := linear(h, "v_proj", "self_attn.", c.AttentionBias) // (N, KVH·D)
		if c.QKNorm() {
			// Qwen3: RMSNorm over each query and key head, before RoPE.
			q = must(ops.HeadRMSNorm(q, p("self_attn.q_norm.weight"), c.RMSNormEps, H))
			k = must(ops.HeadRMSNorm(k, p("self_attn.k_norm.weight"), c.RMSNormEps, KVH))
		}
		if c.LinearAttention() {
			// No RoPE: positions enter only through causality.
			a = must(ops.LinearAttention(q, k, v, attn)) // (N, H·D)
		} else {
			rope := ops.RoPELayout{Width: 2 * len(invFreq), Positions: g.In.Positions}
			q = must(ops.RoPEPart(q, g.T, H, rope, invFreq))
			k = must(ops.RoPEPart(k, g.T, KVH, rope, invFreq))
			a = must(ops.Attention(q, k, v, attn)) // (N, H·D)
		}
	}
	x = must(ops.Add(x, linear(a, "o_proj", "self_attn.", false))) // (N, C)

	// MLP block: x + down(silu(gate(h)) ⊙ up(h)), pre-norm; or the
	// mixture of experts.
	h = must(ops.RMSNorm(x, p("post_attention_layernorm.weight"), c.RMSNormEps))
	if c.IsMoELayer(l) {
		g.loads[l] = &ops.ExpertLoad{}
		return must(ops.Add(x, g.moe(h, l, p, linear, hook, g.loads[l])))
	}
	m := must(ops.SwiGLU(linear(h, "gate_proj", "mlp.", false), linear(h, "up_proj", "mlp.", false))) // (N, F)
	return must(ops.Add(x, linear(m, "down_proj", "mlp.", false)))
}

// TargetLogProbs is (B·T): log p(Targets[i] | tokens ≤ i), the fused
// lm_head + log-softmax + gather, chunked over tokens so the (B·T, V)
// logits never exist at once, with its own backward pass. Per-token
// statistics of the same pass are readable with TokenStats after a Run.
func (g *Graph) TargetLogProbs() *gorgonia.Node {
	if g.logProbs == nil {
		n, err := ops.LogProbs(g.Hidden, g.head, g.In.Targets, &g.stats)
		if err != nil {
			panic(fmt.Sprintf("model: target log-probs: %v", err))
		}
		g.logProbs = n
	}
	return g.logProbs
}

// TokenStats returns the per-token mean logit and entropy (nats) of the
// output distribution, as computed by the last run of TargetLogProbs or
// MeanNLL. The slices are owned by the graph and rewritten by each Run.
func (g *Graph) TokenStats() (meanLogit, entropy []float32) {
	return g.stats.MeanLogit, g.stats.Entropy
}

// Logits is (B·T, V): the full output logits, for forward-only uses
// (evaluation, generation checks). Training losses should use
// TargetLogProbs or MeanNLL, which never hold all logits.
func (g *Graph) Logits() *gorgonia.Node {
	if g.logits == nil {
		n, err := ops.Linear(g.Hidden, g.head, nil)
		if err != nil {
			panic(fmt.Sprintf("model: logits: %v", err))
		}
		g.logits = n
	}
	return g.logits
}

// MeanNLL is the scalar −Σ w·logp / Σ w over the targets (0 when Σ w = 0),
// with weights a (B·T) input node (InputVector) of values ≥ 0. It is fused
// with the head, and computes its gradients during the forward pass.
func (g *Graph) MeanNLL(weights *gorgonia.Node) *gorgonia.Node {
	n, err := ops.MeanNLL(g.Hidden, g.head, weights, g.In.Targets, &g.stats)
	if err != nil {
		panic(fmt.Sprintf("model: mean NLL: %v", err))
	}
	return n
}

// InputVector returns an (n) input node bound to a host []float32
// (g.Vector(name)) that the caller fills before each Run. Asking again for
// the same name and length returns the same node.
func (g *Graph) InputVector(name string, n int) *gorgonia.Node {
	if v, ok := g.vectors[name]; ok {
		if len(v.host) != n {
			panic(fmt.Sprintf("model: input vector %q has length %d, not %d", name, len(v.host), n))
		}
		return v.node
	}
	if _, clash := g.Params[name]; clash || n <= 0 {
		panic(fmt.Sprintf("model: input vector %q of length %d clashes with a parameter or is empty", name, n))
	}
	host := make([]float32, n)
	var val *tensor.Dense
	if g.Dtype == tensor.Float64 {
		val = tensor.New(tensor.WithShape(n), tensor.WithBacking(make([]float64, n)))
	} else {
		val = tensor.New(tensor.WithShape(n), tensor.WithBacking(host))
	}
	node := gorgonia.NewVector(g.G, g.Dtype, gorgonia.WithShape(n), gorgonia.WithName(name), gorgonia.WithValue(val))
	g.vectors[name] = &hostVector{host: host, node: node}
	return node
}

// Vector is the host buffer of input vector name (nil when there is none).
func (g *Graph) Vector(name string) []float32 {
	if v, ok := g.vectors[name]; ok {
		return v.host
	}
	return nil
}

// syncVectors copies host vectors into float64 graphs' input tensors.
func (g *Graph) syncVectors() {
	if g.Dtype != tensor.Float64 {
		return
	}
	for _, v := range g.vectors {
		d := v.node.Value().Data().([]float64)
		for i, x := range v.host {
			d[i] = float64(x)
		}
	}
}

// LossFunc is a scalar loss computed by a plain Go function of graph nodes'
// values, with its gradient: grad[i] has len(in[i]).
type LossFunc = ops.LossFunc

// FuncLoss is a scalar node computed by fn from the flattened values of in;
// its gradient flows back to every input (how DPO, reward and PPO losses
// enter the graph).
func (g *Graph) FuncLoss(name string, fn LossFunc, in ...*gorgonia.Node) *gorgonia.Node {
	n, err := ops.FuncLoss(name, fn, in...)
	if err != nil {
		panic(fmt.Sprintf("model: %v", err))
	}
	return n
}
