package grpo

import (
	"fmt"
	"math"
)

// Loss types: how per-token losses are aggregated over a generation batch
// (TRL's loss_type).
const (
	// LossGRPO averages each completion's tokens, then the completions:
	// 1/G Σ_i 1/|o_i| Σ_t ℓ_i,t (DeepSeekMath, Shao et al. 2024, eq. 3).
	// A long completion's tokens weigh less than a short one's.
	LossGRPO = "grpo"
	// LossDAPO averages every token of the batch alike:
	// Σ_i Σ_t ℓ_i,t / Σ_i |o_i| (DAPO, Yu et al. 2025, eq. 8, "token-level
	// policy gradient loss").
	LossDAPO = "dapo"
	// LossDrGRPO divides the token sum by a constant, the batch's
	// completions times the maximum completion length:
	// Σ_i Σ_t ℓ_i,t / (G·L_max) (Dr. GRPO, Liu et al. 2025, "Understanding
	// R1-Zero-Like Training", §3.1), removing GRPO's length bias.
	LossDrGRPO = "dr_grpo"
)

// LossTypes are the accepted loss types.
var LossTypes = []string{LossGRPO, LossDAPO, LossDrGRPO}

// SequenceWeights returns the weight w_i of every token of completion i in
// the batch loss L = Σ_i w_i Σ_t ℓ_i,t: the aggregation of lossType over
// completions of lengths[i] tokens (each ≥ 1) of at most maxLen tokens.
func SequenceWeights(lossType string, lengths []int, maxLen int) ([]float64, error) {
	n := len(lengths)
	if n == 0 {
		return nil, fmt.Errorf("no completions")
	}
	total := 0
	for i, l := range lengths {
		if l < 1 || l > maxLen {
			return nil, fmt.Errorf("completion %d has %d tokens, want 1…%d", i, l, maxLen)
		}
		total += l
	}
	w := make([]float64, n)
	for i, l := range lengths {
		switch lossType {
		case LossGRPO:
			w[i] = 1 / (float64(n) * float64(l))
		case LossDAPO:
			w[i] = 1 / float64(total)
		case LossDrGRPO:
			w[i] = 1 / (float64(n) * float64(maxLen))
		default:
			return nil, fmt.Errorf("unknown loss type %q (want one of %v)", lossType, LossTypes)
		}
	}
	return w, nil
}

// Objective is GRPO's clipped surrogate with an optional KL penalty, over
// the N token positions of one graph batch; its Loss method is the graph's
// loss function (model.LossFunc). The caller fills the slices before each
// run. Per response token t with advantage Â (DeepSeekMath eq. 3, with
// DAPO's separate clip bounds, Yu et al. 2025 eq. 8):
//
//	ρ = exp(log π − log π_old)
//	ℓ = −min(ρ·Â, clip(ρ, 1−ε_low, 1+ε_high)·Â) + β·k3,
//	k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1
//
// where k3 is Schulman's unbiased, always positive estimator of
// KL(π‖π_ref) ("Approximating KL Divergence", 2020), as DeepSeekMath eq. 4
// uses it. The loss is Σ_t Weight_t·ℓ_t; Weight is 0 off the response.
type Objective struct {
	// Old are log π_old, the sampling policy's log-probabilities; nil
	// means the batch is on-policy (one pass per generation batch): π_old
	// is the current policy without gradient, so ρ = 1, as TRL does.
	Old []float64
	// Ref are log π_ref, the reference policy's; used only when Beta > 0.
	Ref       []float64
	Advantage []float64 // Â of the completion the position belongs to
	Weight    []float64 // aggregation weight (SequenceWeights, times the micro-batches of an update); 0 off the response

	EpsLow, EpsHigh float64 // clip bounds 1−EpsLow and 1+EpsHigh
	Beta            float64 // KL coefficient β (0: no KL term, Ref unused)

	Last ObjectiveStats // statistics of the last call
}

// ObjectiveStats are one batch's statistics, token means over the
// response (TRL's metrics of the same names).
type ObjectiveStats struct {
	Loss      float64 // Σ Weight·ℓ
	KL        float64 // mean k3 ("kl"; 0 when β = 0)
	ClipLow   float64 // share with ρ < 1−ε_low and Â < 0 ("clip_ratio/low_mean")
	ClipHigh  float64 // share with ρ > 1+ε_high and Â > 0 ("clip_ratio/high_mean")
	ClipAny   float64 // either ("clip_ratio/region_mean")
	Tokens    int     // response tokens
	RatioMean float64 // mean ρ
}

// Loss is a model.LossFunc over one node, in[0] = log π of the target
// tokens (N). It returns Σ_t Weight_t·ℓ_t and its gradient
//
//	∂ℓ/∂log π = −ρ·Â where the unclipped term is the smaller (or equal),
//	            0 where the clipped one is strictly smaller (clip is flat there),
//	          + β·(1 − exp(log π_ref − log π)),
//
// times Weight_t.
func (o *Objective) Loss(in [][]float64) (float64, [][]float64) {
	if len(in) != 1 {
		panic(fmt.Sprintf("grpo: Loss takes 1 input, got %d", len(in)))
	}
	loss, grad := o.eval(in[0])
	return loss, [][]float64{grad}
}

func (o *Objective) eval(logp []float64) (float64, []float64) {
	n := len(logp)
	if len(o.Advantage) != n || len(o.Weight) != n || o.Old != nil && len(o.Old) != n || o.Beta > 0 && len(o.Ref) != n {
		panic(fmt.Sprintf("grpo: batch of %d positions has %d advantages, %d weights, %d old and %d reference log-probs",
			n, len(o.Advantage), len(o.Weight), len(o.Old), len(o.Ref)))
	}
	grad := make([]float64, n)
	var s ObjectiveStats
	for i, lp := range logp {
		w := o.Weight[i]
		if w == 0 {
			continue
		}
		ratio := 1.0
		if o.Old != nil {
			ratio = math.Exp(lp - o.Old[i])
		}
		a := o.Advantage[i]
		unclipped := ratio * a
		clipped := min(max(ratio, 1-o.EpsLow), 1+o.EpsHigh) * a
		var l, g float64
		if clipped < unclipped {
			l = -clipped // the clipped term wins; clip is flat here
		} else {
			l, g = -unclipped, -unclipped
		}
		if o.Beta > 0 {
			d := o.Ref[i] - lp
			k3 := math.Exp(d) - d - 1
			l += o.Beta * k3
			g += o.Beta * (1 - math.Exp(d))
			s.KL += k3
		}
		low, high := ratio < 1-o.EpsLow && a < 0, ratio > 1+o.EpsHigh && a > 0
		if low {
			s.ClipLow++
		}
		if high {
			s.ClipHigh++
		}
		if low || high {
			s.ClipAny++
		}
		s.RatioMean += ratio
		s.Tokens++
		s.Loss += w * l
		grad[i] = w * g
	}
	if s.Tokens == 0 {
		panic("grpo: batch without response tokens")
	}
	t := float64(s.Tokens)
	s.KL, s.ClipLow, s.ClipHigh, s.ClipAny, s.RatioMean = s.KL/t, s.ClipLow/t, s.ClipHigh/t, s.ClipAny/t, s.RatioMean/t
	o.Last = s
	return s.Loss, grad
}
