package ppo

import (
	"fmt"
	"math"
)

// Minibatch holds what one PPO update's losses need besides the policy's
// new log-probabilities and values, so that its methods can serve as the
// graph's loss function (model.LossFunc). All slices are (N) token
// positions of the minibatch, in the graph's order; the caller fills them
// before each run, and Last holds the most recent statistics.
type Minibatch struct {
	OldLogprobs []float64 // log π_old of the sampled tokens, from the rollout
	Advantages  []float64 // Â, usually whitened
	OldValues   []float64 // V_old, from the rollout
	Returns     []float64 // R = Â + V_old (before whitening)
	Mask        []float64 // 1 on response tokens, 0 on padding

	ClipRange      float64 // ε of the probability ratio (cliprange, 0.2)
	ClipRangeValue float64 // ε of the value change (cliprange_value, 0.2)
	VFCoef         float64 // weight of the value loss in Loss (vf_coef, 0.1)

	Last UpdateStats
}

// UpdateStats are one minibatch's statistics; average them over minibatches
// and epochs with an UpdateAverager.
type UpdateStats struct {
	ApproxKL      float64 // masked mean of ½(log π − log π_old)²
	ClipFrac      float64 // fraction of tokens whose policy term is clipped
	PolicyLoss    float64
	ValueLoss     float64
	ValueClipFrac float64 // fraction of tokens whose value term is clipped
}

// PolicyLoss is a model.LossFunc over one graph node, in[0] = log π of the
// sampled tokens (N). It returns the clipped surrogate loss (Schulman et al.
// 2017, eq. 7, negated for minimisation) as a masked token mean:
//
//	ρ = exp(log π − log π_old),   L = mean_t max(−Â ρ, −Â clip(ρ, 1−ε, 1+ε)),
//
// and its gradient −Â ρ on tokens where the unclipped term is the larger (or
// equal), 0 where the clipped one is strictly larger (there clip is constant).
func (m *Minibatch) PolicyLoss(in [][]float64) (float64, [][]float64) {
	if len(in) != 1 {
		panic(fmt.Sprintf("ppo: PolicyLoss takes 1 input, got %d", len(in)))
	}
	loss, grad := m.policy(in[0])
	return loss, [][]float64{grad}
}

// ValueLoss is a model.LossFunc over one graph node, in[0] = V (N): the
// clipped value loss (as in OpenAI's baselines ppo2 and TRL)
//
//	V_c = clip(V, V_old − ε_v, V_old + ε_v),   L = ½ mean_t max((V − R)², (V_c − R)²),
//
// whose gradient is V − R where the unclipped term is the larger (or equal)
// and 0 where the clipped one is strictly larger (V is then outside the clip
// range, where V_c is constant).
func (m *Minibatch) ValueLoss(in [][]float64) (float64, [][]float64) {
	if len(in) != 1 {
		panic(fmt.Sprintf("ppo: ValueLoss takes 1 input, got %d", len(in)))
	}
	loss, grad := m.value(in[0])
	return loss, [][]float64{grad}
}

// Loss is a model.LossFunc over two graph nodes, in[0] = log π (N) and
// in[1] = V (N): PolicyLoss + VFCoef·ValueLoss, as one backward pass.
func (m *Minibatch) Loss(in [][]float64) (float64, [][]float64) {
	if len(in) != 2 {
		panic(fmt.Sprintf("ppo: Loss takes 2 inputs, got %d", len(in)))
	}
	pl, pg := m.policy(in[0])
	vl, vg := m.value(in[1])
	for i := range vg {
		vg[i] *= m.VFCoef
	}
	return pl + m.VFCoef*vl, [][]float64{pg, vg}
}

func (m *Minibatch) check(n int) {
	if len(m.OldLogprobs) != n || len(m.Advantages) != n || len(m.OldValues) != n || len(m.Returns) != n || len(m.Mask) != n {
		panic(fmt.Sprintf("ppo: minibatch of %d positions has %d old log-probs, %d advantages, %d old values, %d returns, %d mask entries",
			n, len(m.OldLogprobs), len(m.Advantages), len(m.OldValues), len(m.Returns), len(m.Mask)))
	}
}

// policy computes the clipped surrogate loss, its gradient and statistics.
func (m *Minibatch) policy(logp []float64) (float64, []float64) {
	n := len(logp)
	m.check(n)
	tokens := sum(m.Mask)
	if tokens == 0 {
		panic("ppo: minibatch without response tokens")
	}
	grad := make([]float64, n)
	var loss, clipped, approxKL float64
	for i := range n {
		if m.Mask[i] == 0 {
			continue
		}
		diff := logp[i] - m.OldLogprobs[i]
		ratio := math.Exp(diff)
		a := m.Advantages[i]
		unclipped := -a * ratio
		clippedTerm := -a * min(max(ratio, 1-m.ClipRange), 1+m.ClipRange)
		if clippedTerm > unclipped {
			loss += clippedTerm
			clipped++
		} else {
			loss += unclipped
			grad[i] = -a * ratio / tokens // ∂(−Â e^{log π − log π_old})/∂log π
		}
		approxKL += 0.5 * diff * diff
	}
	m.Last.PolicyLoss = loss / tokens
	m.Last.ClipFrac = clipped / tokens
	m.Last.ApproxKL = approxKL / tokens
	return loss / tokens, grad
}

// value computes the clipped value loss, its gradient and statistics.
func (m *Minibatch) value(v []float64) (float64, []float64) {
	n := len(v)
	m.check(n)
	tokens := sum(m.Mask)
	if tokens == 0 {
		panic("ppo: minibatch without response tokens")
	}
	grad := make([]float64, n)
	var loss, clipped float64
	for i := range n {
		if m.Mask[i] == 0 {
			continue
		}
		vc := min(max(v[i], m.OldValues[i]-m.ClipRangeValue), m.OldValues[i]+m.ClipRangeValue)
		l1 := (v[i] - m.Returns[i]) * (v[i] - m.Returns[i])
		l2 := (vc - m.Returns[i]) * (vc - m.Returns[i])
		if l2 > l1 {
			loss += l2
			clipped++
		} else {
			loss += l1
			grad[i] = (v[i] - m.Returns[i]) / tokens // ∂(½(V − R)²)/∂V, per token mean
		}
	}
	m.Last.ValueLoss = 0.5 * loss / tokens
	m.Last.ValueClipFrac = clipped / tokens
	return 0.5 * loss / tokens, grad
}

func sum(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v
	}
	return s
}

// UpdateAverager averages UpdateStats over the minibatches and epochs of
// one PPO iteration.
type UpdateAverager struct {
	sum UpdateStats
	n   int
}

// Add records one minibatch's statistics.
func (a *UpdateAverager) Add(s UpdateStats) {
	a.sum.ApproxKL += s.ApproxKL
	a.sum.ClipFrac += s.ClipFrac
	a.sum.PolicyLoss += s.PolicyLoss
	a.sum.ValueLoss += s.ValueLoss
	a.sum.ValueClipFrac += s.ValueClipFrac
	a.n++
}

// Mean returns the averages (zero before any Add).
func (a *UpdateAverager) Mean() UpdateStats {
	if a.n == 0 {
		return UpdateStats{}
	}
	f := float64(a.n)
	return UpdateStats{
		ApproxKL: a.sum.ApproxKL / f, ClipFrac: a.sum.ClipFrac / f,
		PolicyLoss: a.sum.PolicyLoss / f, ValueLoss: a.sum.ValueLoss / f,
		ValueClipFrac: a.sum.ValueClipFrac / f,
	}
}

// Map returns the averages under TRL's names.
func (a *UpdateAverager) Map() map[string]float64 {
	m := a.Mean()
	return map[string]float64{
		"policy/approxkl_avg": m.ApproxKL,
		"policy/clipfrac_avg": m.ClipFrac,
		"loss/policy_avg":     m.PolicyLoss,
		"loss/value_avg":      m.ValueLoss,
		"val/clipfrac_avg":    m.ValueClipFrac,
	}
}
