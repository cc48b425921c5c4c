package ops

import (
	"fmt"
	"math"
)

// Router is the gate of a mixture-of-experts layer (DeepSeekMoE,
// DeepSeek-V2 §2.2; DeepSeek-V3 §2.1.2), as DeepSeek's published MoEGate
// computes it from a token's router logits z (E):
//
//   - scores s = softmax(z) or σ(z) (Scoring);
//   - choice scores c = s, plus the correction bias under noaux_tc;
//   - for the grouped methods the E experts form Groups equal groups,
//     ranked by their best c (group_limited_greedy) or the sum of their two
//     best (noaux_tc); experts outside the TopKGroups best groups get c = 0;
//   - the TopK experts of largest c are chosen (ties: the lower index);
//   - their weights are their scores s, divided by their sum (+1e-20) when
//     Normalize and TopK > 1, then multiplied by Scale.
//
// The selection has no gradient; the weights' gradient flows to the
// logits through s.
type Router struct {
	Experts, TopK      int
	Scoring            string // "softmax" or "sigmoid"
	Method             string // "greedy", "group_limited_greedy" or "noaux_tc"
	Groups, TopKGroups int    // grouped methods only
	Normalize          bool
	Scale              float64
}

// Validate reports a router that Route cannot run.
func (r Router) Validate() error {
	switch {
	case r.Experts <= 0 || r.TopK <= 0 || r.TopK > r.Experts:
		return fmt.Errorf("router: top %d of %d experts", r.TopK, r.Experts)
	case r.Scoring != "softmax" && r.Scoring != "sigmoid":
		return fmt.Errorf("router: scoring %q", r.Scoring)
	case r.Method != "greedy" && r.Method != "group_limited_greedy" && r.Method != "noaux_tc":
		return fmt.Errorf("router: top-k method %q", r.Method)
	case r.Method != "greedy" && (r.Groups <= 0 || r.Experts%r.Groups != 0 || r.TopKGroups <= 0 || r.TopKGroups > r.Groups || r.TopKGroups*(r.Experts/r.Groups) < r.TopK):
		return fmt.Errorf("router: top %d of %d groups of %d experts cannot give %d", r.TopKGroups, r.Groups, r.Experts, r.TopK)
	case r.Method == "noaux_tc" && r.Experts/r.Groups < 2:
		return fmt.Errorf("router: noaux_tc needs groups of two experts or more")
	case !(r.Scale > 0):
		return fmt.Errorf("router: scale %v", r.Scale)
	}
	return nil
}

// RouteScratch is the per-token scratch of Route (reused across calls).
type RouteScratch struct {
	choice, group []float64
	keep          []int
}

// Route chooses one token's experts from its logits z (E). It writes the
// scores s (E), the chosen experts idx (TopK) and their weights w (TopK),
// and returns the denominator the weights were divided by (1 when they
// were not normalised). bias (E) is the noaux_tc correction bias, nil
// otherwise.
func (r Router) Route(z, bias, s []float64, idx []int, w []float64, sc *RouteScratch) (denom float64) {
	E := r.Experts
	if r.Scoring == "softmax" {
		m := math.Inf(-1)
		for _, v := range z {
			m = math.Max(m, v)
		}
		var sum float64
		for i, v := range z {
			s[i] = math.Exp(v - m)
			sum += s[i]
		}
		for i := range s {
			s[i] /= sum
		}
	} else {
		for i, v := range z {
			s[i] = 1 / (1 + math.Exp(-v))
		}
	}
	if cap(sc.choice) < E {
		sc.choice = make([]float64, E)
	}
	c := sc.choice[:E]
	copy(c, s)
	if r.Method == "noaux_tc" && bias != nil {
		for i, b := range bias {
			c[i] += b
		}
	}
	if r.Method != "greedy" {
		size := E / r.Groups
		if cap(sc.group) < r.Groups {
			sc.group = make([]float64, r.Groups)
		}
		g := sc.group[:r.Groups]
		for gi := range g {
			part := c[gi*size : (gi+1)*size]
			if r.Method == "noaux_tc" {
				var top2 [2]int
				topK(part, top2[:])
				g[gi] = part[top2[0]] + part[top2[1]]
			} else {
				g[gi] = math.Inf(-1)
				for _, v := range part {
					g[gi] = math.Max(g[gi], v)
				}
			}
		}
		if cap(sc.keep) < r.TopKGroups {
			sc.keep = make([]int, r.TopKGroups)
		}
		keep := sc.keep[:r.TopKGroups]
		topK(g, keep)
		for gi := range g {
			kept := false
			for _, k := range keep {
				kept = kept || k == gi
			}
			if !kept {
				clear(c[gi*size : (gi+1)*size])
			}
		}
	}
	topK(c, idx)
	denom = 1
	for j, e := range idx {
		w[j] = s[e]
	}
	if r.Normalize && r.TopK > 1 {
		denom = 1e-20
		for _, v := range w {
			denom += v
		}
	}
	for j := range w {
		w[j] = w[j] / denom * r.Scale
	}
	return denom
}

// topK writes to idx the positions of the len(idx) largest values of v,
// largest first; equal values go by position.
func topK(v []float64, idx []int) {
	for j := range idx {
		best := -1
		for i, x := range v {
			taken := false
			for _, t := range idx[:j] {
				taken = taken || t == i
			}
			if !taken && (best < 0 || x > v[best]) {
				best = i
			}
		}
		idx[j] = best
	}
}

// RouteGrad turns the gradient dw (TopK) of one token's weights into the
// gradient dz (E) of its logits, given what Route returned (s, idx, w,
// denom): with w_j = Scale·s_j/S (S = denom),
//
//	∂L/∂s_j = Scale·(dw_j − Σ_k dw_k·w_k/Scale)/S   (normalised)
//	∂L/∂s_j = Scale·dw_j                            (not normalised)
//
// for chosen j (0 elsewhere), then through softmax
// (dz = s ⊙ (ds − s·ds)) or the sigmoid (dz = ds·s·(1 − s)).
func (r Router) RouteGrad(s []float64, idx []int, w, dw []float64, denom float64, dz []float64) {
	var dot float64 // Σ_k dw_k·w_k/Scale = Σ_k dw_k·s_k/S
	if r.Normalize && r.TopK > 1 {
		for k, v := range dw {
			dot += v * w[k] / r.Scale
		}
	}
	clear(dz)
	for k, e := range idx {
		dz[e] = r.Scale * (dw[k] - dot) / denom
	}
	if r.Scoring == "softmax" {
		var sd float64
		for i, v := range dz {
			sd += s[i] * v
		}
		for i := range dz {
			dz[i] = s[i] * (dz[i] - sd)
		}
		return
	}
	for i := range dz {
		dz[i] *= s[i] * (1 - s[i])
	}
}
