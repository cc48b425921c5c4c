package model

import (
	"fmt"
	"math"
	"strings"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/model/ops"
)

// mlaNormEps is the epsilon of MLA's q_a_layernorm and kv_a_layernorm:
// DeepSeek's modeling code builds them with the RMSNorm default (1e-6),
// not rms_norm_eps.
const mlaNormEps = 1e-6

// SelectionOnly reports parameters that only steer a discrete choice and
// so have no gradient: the noaux_tc correction bias of DeepSeek-V3's
// router, which DeepSeek adjusts from the expert load outside gradient
// descent (DeepSeek-V3 §2.1.2). Build never makes them trainable.
func SelectionOnly(hfName string) bool {
	return strings.HasSuffix(hfName, ".mlp.gate.e_score_correction_bias")
}

// Router is the mixture-of-experts gate the config describes (nil
// DeepSeek or no routed experts: the zero Router).
func (c *Config) Router() ops.Router {
	d := c.DeepSeek
	if d == nil || d.NRoutedExperts == 0 {
		return ops.Router{}
	}
	return ops.Router{
		Experts: d.NRoutedExperts, TopK: d.NumExpertsPerTok, Scoring: d.ScoringFunc, Method: d.TopkMethod,
		Groups: d.NGroup, TopKGroups: d.TopkGroup, Normalize: d.NormTopkProb, Scale: d.RoutedScalingFactor,
	}
}

// mla is DeepSeek's multi-head latent attention on h (N, C), returning the
// attention output (N, H·Dv) before o_proj (DeepSeek-V2 §2.1.2-2.1.3, in
// the structure of DeepseekV2Attention):
//
//	q = q_proj(h), or q_b_proj(RMSNorm(q_a_proj(h)))          (N, H·(Dn+Dr))
//	[c_KV, k_R] = kv_a_proj_with_mqa(h)                          (N, Rkv + Dr)
//	[k_C, v]_h = kv_b_proj(RMSNorm(c_KV))                        (N, H·(Dn+Dv))
//	q_h = [q_h^C, RoPE(q_h^R)],  k_h = [k_h^C, RoPE(k_R)]        (k_R shared)
//	o_h = softmax(q_h·k_hᵀ·scale, causal)·v_h
//
// with scale = 1/√(Dn+Dr) and RoPE as Config.MLASoftmaxScale and
// Config.RopeMagnitude adjust them under YaRN.
func (g *Graph) mla(h *gorgonia.Node, p func(string) *gorgonia.Node, linear func(*gorgonia.Node, string, string, bool) *gorgonia.Node, invFreq []float64) *gorgonia.Node {
	c := g.Config
	d := c.DeepSeek
	H, dn, dr, dv, r := c.NumAttentionHeads, d.QKNopeHeadDim, d.QKRopeHeadDim, d.VHeadDim, d.KVLoraRank
	var q *gorgonia.Node
	if d.QLoraRank == nil {
		q = linear(h, "q_proj", "self_attn.", false)
	} else {
		qa := linear(h, "q_a_proj", "self_attn.", false)
		qa = must(ops.RMSNorm(qa, p("self_attn.q_a_layernorm.weight"), mlaNormEps))
		q = linear(qa, "q_b_proj", "self_attn.", false)
	}
	mag := c.RopeMagnitude()
	q = must(ops.RoPEPart(q, g.T, H, ops.RoPELayout{Width: dn + dr, Offset: dn, Interleaved: true, Magnitude: mag, Positions: g.In.Positions}, invFreq))
	kva := linear(h, "kv_a_proj_with_mqa", "self_attn.", false) // (N, Rkv + Dr)
	latent := must(ops.HeadSlice(kva, 1, r+dr, 0, r))
	kr := must(ops.HeadSlice(kva, 1, r+dr, r, r+dr))
	kr = must(ops.RoPEPart(kr, g.T, 1, ops.RoPELayout{Width: dr, Interleaved: true, Magnitude: mag, Positions: g.In.Positions}, invFreq))
	latent = must(ops.RMSNorm(latent, p("self_attn.kv_a_layernorm.weight"), mlaNormEps))
	kv := linear(latent, "kv_b_proj", "self_attn.", false) // (N, H·(Dn+Dv))
	k := must(ops.MLAKeys(kv, kr, H, dn, dv))              // (N, H·(Dn+Dr))
	v := must(ops.HeadSlice(kv, H, dn+dv, dn, dn+dv))      // (N, H·Dv)
	shape := ops.AttentionShape{B: g.B, T: g.T, H: H, KVH: H, D: dn + dr, DV: dv, Scale: c.MLASoftmaxScale(), Segments: g.In.Segments}
	return must(ops.Attention(q, k, v, shape))
}

// moe is DeepSeekMoE on h (N, C) of layer l: the routed experts (ops.MoE)
// plus the shared experts, one SwiGLU of n_shared_experts·
// moe_intermediate_size (DeepSeek-V2 §2.2.1, eq. 20). The shared experts'
// projections go through the linear hook (modules shared_experts.gate_proj,
// …); the routed experts' through the hook's ExpertHook, and a hook
// without one must not update them.
func (g *Graph) moe(h *gorgonia.Node, l int, p func(string) *gorgonia.Node, linear func(*gorgonia.Node, string, string, bool) *gorgonia.Node, hook LinearHook, load *ops.ExpertLoad) *gorgonia.Node {
	d := g.Config.DeepSeek
	eh, _ := hook.(ExpertHook)
	experts := make([]ops.ExpertWeights, d.NRoutedExperts)
	for e := range experts {
		q := fmt.Sprintf("mlp.experts.%d.", e)
		experts[e] = ops.ExpertWeights{Gate: p(q + "gate_proj.weight"), Up: p(q + "up_proj.weight"), Down: p(q + "down_proj.weight")}
		if eh == nil {
			continue
		}
		for i, proj := range []string{"gate_proj", "up_proj", "down_proj"} {
			ad, err := eh.ExpertAdapter(g.G, l, fmt.Sprintf("experts.%d.%s", e, proj), g.Dtype)
			if err != nil {
				panic(buildError{err})
			}
			experts[e].Adapters[i] = ad
		}
	}
	var bias *gorgonia.Node
	if d.TopkMethod == TopkNoAuxTC {
		bias = p("mlp.gate.e_score_correction_bias")
	}
	g.routers = append(g.routers, routerInputs{h: h, router: p("mlp.gate.weight"), bias: bias})
	y := must(ops.MoE(h, p("mlp.gate.weight"), bias, experts, g.Config.Router(), load))
	if d.NSharedExperts > 0 {
		s := must(ops.SwiGLU(linear(h, "shared_experts.gate_proj", "mlp.", false), linear(h, "shared_experts.up_proj", "mlp.", false)))
		y = must(ops.Add(y, linear(s, "shared_experts.down_proj", "mlp.", false)))
	}
	return y
}

// LayerLoad is one mixture-of-experts layer's expert load in the last run:
// the fraction of routed token slots each expert received (Fractions, E,
// summing to 1) and their coefficient of variation (standard deviation /
// mean; 0 when perfectly balanced). Slots is the number of routed token
// slots counted (tokens × experts per token), the weight of this load when
// loads of several runs are pooled.
type LayerLoad struct {
	Layer     int
	Fractions []float64
	CV        float64
	Slots     int
}

// ResetExpertLoad forgets the expert load of the last run, so that
// ExpertLoad reports nothing until the graph runs again: how a caller
// tells the graphs that ran in a training step from those that did not.
func (g *Graph) ResetExpertLoad() {
	for _, ld := range g.loads {
		if ld != nil {
			ld.Counts, ld.Tokens = ld.Counts[:0], 0
		}
	}
}

// ExpertLoad reports the expert load of every mixture-of-experts layer in
// the graph's last forward run (nil for a dense model).
func (g *Graph) ExpertLoad() []LayerLoad {
	var out []LayerLoad
	for l, ld := range g.loads {
		if ld == nil || len(ld.Counts) == 0 {
			continue
		}
		total := 0
		for _, n := range ld.Counts {
			total += n
		}
		fr := make([]float64, len(ld.Counts))
		var mean, sq float64
		for e, n := range ld.Counts {
			fr[e] = float64(n) / float64(max(total, 1))
			mean += fr[e]
		}
		mean /= float64(len(fr))
		for _, f := range fr {
			sq += (f - mean) * (f - mean)
		}
		cv := 0.0
		if mean > 0 {
			cv = math.Sqrt(sq/float64(len(fr))) / mean
		}
		out = append(out, LayerLoad{Layer: l, Fractions: fr, CV: cv, Slots: total})
	}
	return out
}

// routerInputs are what one MoE layer's router reads.
type routerInputs struct{ h, router, bias *gorgonia.Node }

// MoEBalanceLoss is DeepSeek-V2's sequence-level expert balance loss
// (§2.2.3, eq. 23-25, as DeepSeek's MoEGate computes it with seq_aux),
// summed over the mixture-of-experts layers: for each sequence b of T
// tokens and expert i,
//
//	f_i = E/(K·T)·#{tokens of b choosing i},  P_i = (1/T)·Σ_t s_{i,t}
//	loss = alpha · mean_b Σ_i f_i·P_i
//
// with s the router scores (softmax or sigmoid) and f a constant of the
// routing; the gradient reaches the router weights and the layer inputs
// through P. Padding tokens count, as in DeepSeek's code. It is nil for a
// model without experts, and part of no loss unless the caller adds it:
// aux_loss_alpha from config.json is not applied by default.
func (g *Graph) MoEBalanceLoss(alpha float64) *gorgonia.Node {
	if len(g.routers) == 0 {
		return nil
	}
	rt := g.Config.Router()
	var in []*gorgonia.Node
	for _, r := range g.routers {
		z, err := ops.Linear(r.h, r.router, nil) // (N, E) logits, as the MoE op computes them
		if err != nil {
			panic(fmt.Sprintf("model: balance loss: %v", err))
		}
		in = append(in, z)
		if r.bias != nil {
			in = append(in, r.bias)
		}
	}
	hasBias := g.routers[0].bias != nil
	B, T, E, K := g.B, g.T, rt.Experts, rt.TopK
	fn := func(x [][]float64) (float64, [][]float64) {
		grads := make([][]float64, len(x))
		var loss float64
		s := make([]float64, E)
		idx, w := make([]int, K), make([]float64, K)
		var sc ops.RouteScratch
		for j := 0; j < len(x); j++ {
			z := x[j]
			var bias []float64
			if hasBias {
				bias = x[j+1]
				grads[j+1] = make([]float64, len(bias))
			}
			dz := make([]float64, len(z))
			grads[j] = dz
			scores := make([]float64, B*T*E)
			for b := range B {
				f := make([]float64, E)
				for t := range T {
					n := b*T + t
					rt.Route(z[n*E:(n+1)*E], bias, s, idx, w, &sc)
					copy(scores[n*E:(n+1)*E], s)
					for _, e := range idx {
						f[e] += float64(E) / float64(K*T)
					}
				}
				for t := range T {
					n := b*T + t
					sn := scores[n*E : (n+1)*E]
					ds := make([]float64, E)
					for i := range E {
						loss += alpha * f[i] * sn[i] / float64(T*B)
						ds[i] = alpha * f[i] / float64(T*B)
					}
					scoreGrad(rt.Scoring, sn, ds, dz[n*E:(n+1)*E])
				}
			}
			if hasBias {
				j++
			}
		}
		return loss, grads
	}
	return g.FuncLoss("moe_balance", fn, in...)
}

// scoreGrad sets dz, the gradient of the router logits, from ds, that of
// the scores s = softmax(z) or σ(z).
func scoreGrad(scoring string, s, ds, dz []float64) {
	if scoring == ScoringSoftmax {
		var dot float64
		for i, v := range ds {
			dot += s[i] * v
		}
		for i := range dz {
			dz[i] = s[i] * (ds[i] - dot)
		}
		return
	}
	for i := range dz {
		dz[i] = ds[i] * s[i] * (1 - s[i])
	}
}
