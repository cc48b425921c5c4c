// The losses of the stage, as plain Go functions of the completions'
// log-probabilities with hand-derived gradients, shaped to enter the model
// graph as a loss function (model.LossFunc).
//
// Notation, per preference pair i:
//
//	πc, πr       summed log-probabilities of the chosen and rejected
//	             completion under the policy (completion tokens only)
//	ρc, ρr       the same under the reference model
//	|c|, |r|     the completions' token counts
//	Δ            (πc − πr) − (ρc − ρr), the difference of log-ratios
//
// Every loss is the mean over pairs of ℓ(h) for a scalar h of the pair that
// is affine in πc and πr, plus an optional SFT term; its gradient is
// ℓ'(h)·∂h/∂π / P.

package dpo

import (
	"fmt"
	"math"

	"github.com/gotune/gotune/train"
)

// LossType names a DPO loss variant (TRL's loss_type values).
type LossType string

// The loss variants.
const (
	// Sigmoid is the DPO loss −log σ(βΔ) (Rafailov et al. 2023, eq. 7).
	// With LabelSmoothing ε > 0 it is conservative DPO (cDPO, Mitchell
	// 2023): −(1−ε) log σ(βΔ) − ε log σ(−βΔ), the expected loss when each
	// label is flipped with probability ε.
	Sigmoid LossType = "sigmoid"
	// Robust is robust DPO (rDPO, Chowdhury et al. 2024), the unbiased loss
	// under label noise ε: [(1−ε)(−log σ(βΔ)) − ε(−log σ(−βΔ))] / (1−2ε),
	// as TRL's loss_type "robust". Unlike cDPO its ε enters with a minus
	// sign, and it equals the sigmoid loss at ε = 0.
	Robust LossType = "robust"
	// Hinge is the SLiC-style hinge loss max(0, 1 − βΔ) (Zhao et al. 2023).
	Hinge LossType = "hinge"
	// IPO is identity preference optimisation (Azar et al. 2023, eq. 17):
	// (Δ̄ − 1/(2β))², where Δ̄ uses log-probabilities averaged per completion
	// token (πc/|c| etc.), as TRL does, so that the target margin 1/(2β)
	// does not depend on the completions' lengths.
	IPO LossType = "ipo"
	// SimPO is the reference-free, length-normalised loss (Meng et al. 2024,
	// eq. 6): −log σ(β(πc/|c| − πr/|r|) − γ), with target reward margin γ.
	// The reference log-probabilities are ignored.
	SimPO LossType = "simpo"
)

// LossTypes lists every variant, for help texts and validation.
func LossTypes() []LossType { return []LossType{Sigmoid, Robust, Hinge, IPO, SimPO} }

// LossConfig chooses a loss and its hyperparameters (TRL's names in the
// comments).
type LossConfig struct {
	Type LossType // loss_type; "" means Sigmoid
	// Beta (beta) is the inverse temperature β: the strength of the implicit
	// KL constraint to the reference. Must be > 0.
	Beta float64
	// LabelSmoothing (label_smoothing) is ε, the assumed probability that a
	// pair's labels are flipped: cDPO for Sigmoid, rDPO for Robust (where it
	// must be < 0.5), invalid for the other types.
	LabelSmoothing float64
	// Gamma (simpo_gamma) is SimPO's target reward margin γ.
	Gamma float64
	// SFTWeight (rpo_alpha) is α, the weight of an added negative
	// log-likelihood of the chosen completions, averaged over all their
	// tokens in the batch (−Σπc / Σ|c|). 0 disables it.
	SFTWeight float64
}

// Validate reports the first setting that cannot be used, naming its key
// (the Key constants of Config).
func (c LossConfig) Validate() error {
	t := c.typ()
	switch t {
	case Sigmoid, Robust, Hinge, IPO, SimPO:
	default:
		return fmt.Errorf("dpo: %s %q is unknown (want one of %v)", KeyLossType, c.Type, LossTypes())
	}
	if !(c.Beta > 0) || math.IsInf(c.Beta, 0) {
		return fmt.Errorf("dpo: %s must be positive and finite, got %v", KeyBeta, c.Beta)
	}
	switch {
	case c.LabelSmoothing < 0 || c.LabelSmoothing >= 1 || math.IsNaN(c.LabelSmoothing):
		return fmt.Errorf("dpo: %s must be in [0, 1), got %v", KeyLabelSmoothing, c.LabelSmoothing)
	case t == Robust && c.LabelSmoothing >= 0.5:
		return fmt.Errorf("dpo: %s must be < 0.5 for the robust loss, got %v", KeyLabelSmoothing, c.LabelSmoothing)
	case c.LabelSmoothing > 0 && t != Sigmoid && t != Robust && t != SimPO:
		return fmt.Errorf("dpo: %s applies to sigmoid, robust and simpo, not %s", KeyLabelSmoothing, t)
	}
	if c.Gamma != 0 && t != SimPO {
		return fmt.Errorf("dpo: %s applies only to the simpo loss, not %s", KeySimPOGamma, t)
	}
	if c.SFTWeight < 0 || math.IsNaN(c.SFTWeight) {
		return fmt.Errorf("dpo: %s (the SFT term's weight) must be ≥ 0, got %v", KeyRPOAlpha, c.SFTWeight)
	}
	return nil
}

func (c LossConfig) typ() LossType {
	if c.Type == "" {
		return Sigmoid
	}
	return c.Type
}

// Pairs is one batch of P preference pairs: log-probabilities summed over
// each completion's tokens, and the token counts.
type Pairs struct {
	PolicyChosen, PolicyRejected []float64 // πc, πr
	RefChosen, RefRejected       []float64 // ρc, ρr (unused by SimPO; may be nil then)
	ChosenTokens, RejectedTokens []float64 // |c|, |r| (> 0; used by IPO, SimPO and the SFT term)
}

// Len returns the number of pairs P.
func (p Pairs) Len() int { return len(p.PolicyChosen) }

// check validates the batch's shape for a loss type.
func (p Pairs) check(t LossType, sft bool) error {
	n := len(p.PolicyChosen)
	if n == 0 {
		return fmt.Errorf("dpo: empty batch")
	}
	if len(p.PolicyRejected) != n {
		return fmt.Errorf("dpo: %d chosen but %d rejected log-probs", n, len(p.PolicyRejected))
	}
	if t != SimPO && (len(p.RefChosen) != n || len(p.RefRejected) != n) {
		return fmt.Errorf("dpo: %d pairs but %d/%d reference log-probs", n, len(p.RefChosen), len(p.RefRejected))
	}
	if t == IPO || t == SimPO || sft {
		if len(p.ChosenTokens) != n || len(p.RejectedTokens) != n {
			return fmt.Errorf("dpo: %d pairs but %d/%d token counts", n, len(p.ChosenTokens), len(p.RejectedTokens))
		}
		for i := range n {
			if !(p.ChosenTokens[i] > 0) || !(p.RejectedTokens[i] > 0) {
				return fmt.Errorf("dpo: pair %d has an empty completion (%v chosen, %v rejected tokens)", i, p.ChosenTokens[i], p.RejectedTokens[i])
			}
		}
	}
	return nil
}

// Metrics are a batch's statistics with TRL's meaning; Map gives their names.
type Metrics struct {
	RewardsChosen     float64 // mean implicit reward of chosen, β(πc − ρc)
	RewardsRejected   float64 // mean β(πr − ρr)
	RewardsAccuracies float64 // fraction of pairs with chosen reward > rejected (ties count 0)
	RewardsMargins    float64 // mean chosen − rejected reward
	LogpsChosen       float64 // mean πc
	LogpsRejected     float64 // mean πr
	Loss              float64 // the loss, SFT term included
}

// Map returns the metrics under TRL's names, each prefixed (for example
// "eval_" for held-out metrics: "eval_rewards/accuracies").
func (m Metrics) Map(prefix string) map[string]float64 {
	return map[string]float64{
		prefix + "rewards/chosen":     m.RewardsChosen,
		prefix + "rewards/rejected":   m.RewardsRejected,
		prefix + "rewards/accuracies": m.RewardsAccuracies,
		prefix + "rewards/margins":    m.RewardsMargins,
		prefix + "logps/chosen":       m.LogpsChosen,
		prefix + "logps/rejected":     m.LogpsRejected,
		prefix + "loss":               m.Loss,
	}
}

// Output is a batch's loss, its gradient with respect to the policy's
// summed log-probabilities, and its metrics.
type Output struct {
	Loss                     float64
	GradChosen, GradRejected []float64 // ∂Loss/∂πc, ∂Loss/∂πr, per pair
	Metrics                  Metrics
}

// Compute returns the mean loss over the batch, its gradient and metrics.
//
// For IPO and SimPO every log-probability (policy and reference) is divided
// by its completion's token count before use, and the rewards and logps
// metrics report these per-token averages, as TRL does; for the other types
// they are sums.
func (c LossConfig) Compute(p Pairs) (Output, error) {
	if err := c.Validate(); err != nil {
		return Output{}, err
	}
	t := c.typ()
	if err := p.check(t, c.SFTWeight > 0); err != nil {
		return Output{}, err
	}
	n := p.Len()
	beta, eps := c.Beta, c.LabelSmoothing
	out := Output{GradChosen: make([]float64, n), GradRejected: make([]float64, n)}
	var m Metrics
	for i := range n {
		// sc, sr: the scale of πc, πr in h (1, or 1/|c| for per-token averages).
		sc, sr := 1.0, 1.0
		if t == IPO || t == SimPO {
			sc, sr = 1/p.ChosenTokens[i], 1/p.RejectedTokens[i]
		}
		pc, pr := sc*p.PolicyChosen[i], sr*p.PolicyRejected[i]
		var rc, rr float64 // implicit rewards without β: policy − reference log-ratios
		if t == SimPO {
			rc, rr = pc, pr
		} else {
			rc, rr = pc-sc*p.RefChosen[i], pr-sr*p.RefRejected[i]
		}
		h := rc - rr // Δ (or Δ̄, or SimPO's average-logp margin)
		var l, dl float64
		switch t {
		case Sigmoid:
			l, dl = smoothedLogSigmoidLoss(beta*h, eps)
			dl *= beta
		case Robust:
			// [(1−ε)·train.Softplus(−u) − ε·train.Softplus(u)] / (1−2ε), u = βh.
			u := beta * h
			l = ((1-eps)*train.Softplus(-u) - eps*train.Softplus(u)) / (1 - 2*eps)
			dl = beta * (-(1-eps)*train.Sigmoid(-u) - eps*train.Sigmoid(u)) / (1 - 2*eps)
		case Hinge:
			u := beta * h
			if u < 1 {
				l, dl = 1-u, -beta
			}
		case IPO:
			d := h - 1/(2*beta)
			l, dl = d*d, 2*d
		case SimPO:
			l, dl = smoothedLogSigmoidLoss(beta*h-c.Gamma, eps)
			dl *= beta
		}
		out.Loss += l / float64(n)
		out.GradChosen[i] = dl * sc / float64(n)
		out.GradRejected[i] = -dl * sr / float64(n)

		m.RewardsChosen += beta * rc
		m.RewardsRejected += beta * rr
		if beta*rc > beta*rr {
			m.RewardsAccuracies++
		}
		m.RewardsMargins += beta*rc - beta*rr
		m.LogpsChosen += pc
		m.LogpsRejected += pr
	}
	if c.SFTWeight > 0 {
		// α · (−Σπc / Σ|c|): the chosen completions' token-mean NLL.
		var sum, tokens float64
		for i := range n {
			sum += p.PolicyChosen[i]
			tokens += p.ChosenTokens[i]
		}
		out.Loss += -c.SFTWeight * sum / tokens
		for i := range n {
			out.GradChosen[i] -= c.SFTWeight / tokens
		}
	}
	fn := float64(n)
	m.RewardsChosen /= fn
	m.RewardsRejected /= fn
	m.RewardsAccuracies /= fn
	m.RewardsMargins /= fn
	m.LogpsChosen /= fn
	m.LogpsRejected /= fn
	m.Loss = out.Loss
	out.Metrics = m
	return out, nil
}

// smoothedLogSigmoidLoss returns −(1−ε) log σ(u) − ε log σ(−u) and its
// derivative in u, −(1−ε)σ(−u) + εσ(u).
func smoothedLogSigmoidLoss(u, eps float64) (l, dl float64) {
	l = (1-eps)*train.Softplus(-u) + eps*train.Softplus(u)
	dl = -(1-eps)*train.Sigmoid(-u) + eps*train.Sigmoid(u)
	return l, dl
}

// Step holds what one training step's loss needs besides the policy's
// log-probabilities, so that its methods can serve as the graph's loss
// function (model.LossFunc); the caller fills the fields before each run,
// and Last holds the most recent result.
type Step struct {
	Config LossConfig

	// For PairLoss: the batch's reference log-probs and token counts (the
	// policy fields of Pairs are ignored; they come from the graph).
	Ref Pairs

	// For TokenLoss: the layout of a batch of 2P rows of T tokens, rows
	// 0…P−1 the chosen completions and rows P…2P−1 the rejected ones of the
	// same pairs (TRL's concatenated forward). Mask (2P·T) is 1 on
	// completion tokens and 0 elsewhere (prompt, padding); RefTokenLogps
	// (2P·T) are the reference's per-token log-probs in the same layout,
	// ignored by SimPO. Either may be replaced by Ref's sums: when
	// RefTokenLogps is nil, Ref.RefChosen/RefRejected are used (for example
	// precomputed reference columns).
	T             int
	Mask          []float64
	RefTokenLogps []float64

	Last Output // written by every call of PairLoss or TokenLoss
}

// PairLoss is a model.LossFunc over two graph nodes: in[0] the policy's
// summed chosen log-probs (P) and in[1] the rejected ones (P). It returns
// the mean loss and the gradient for both. A malformed batch is a
// programmer error and panics.
func (s *Step) PairLoss(in [][]float64) (float64, [][]float64) {
	if len(in) != 2 {
		panic(fmt.Sprintf("dpo: PairLoss takes 2 inputs, got %d", len(in)))
	}
	p := s.Ref
	p.PolicyChosen, p.PolicyRejected = in[0], in[1]
	out, err := s.Config.Compute(p)
	if err != nil {
		panic(err)
	}
	s.Last = out
	return out.Loss, [][]float64{out.GradChosen, out.GradRejected}
}

// TokenLoss is a model.LossFunc over one graph node: in[0], the policy's
// per-token log-probs (2P·T) in Step's layout. It sums them over the
// completion mask, computes the loss, and returns the per-token gradient
// (the pair's gradient on every masked token, 0 elsewhere).
func (s *Step) TokenLoss(in [][]float64) (float64, [][]float64) {
	if len(in) != 1 {
		panic(fmt.Sprintf("dpo: TokenLoss takes 1 input, got %d", len(in)))
	}
	logps := in[0]
	T := s.T
	if T <= 0 || len(logps)%(2*T) != 0 || len(s.Mask) != len(logps) {
		panic(fmt.Sprintf("dpo: TokenLoss with T=%d, %d log-probs, %d mask entries", T, len(logps), len(s.Mask)))
	}
	rows := len(logps) / T
	P := rows / 2
	sums, counts := RowSums(logps, s.Mask, T)
	p := s.Ref
	p.PolicyChosen, p.PolicyRejected = sums[:P], sums[P:]
	p.ChosenTokens, p.RejectedTokens = counts[:P], counts[P:]
	if s.RefTokenLogps != nil {
		if len(s.RefTokenLogps) != len(logps) {
			panic(fmt.Sprintf("dpo: %d reference log-probs for %d policy log-probs", len(s.RefTokenLogps), len(logps)))
		}
		ref, _ := RowSums(s.RefTokenLogps, s.Mask, T)
		p.RefChosen, p.RefRejected = ref[:P], ref[P:]
	}
	out, err := s.Config.Compute(p)
	if err != nil {
		panic(err)
	}
	s.Last = out
	grad := make([]float64, len(logps))
	for r := range rows {
		g := out.GradChosen
		if r >= P {
			g = out.GradRejected
		}
		for j := r * T; j < (r+1)*T; j++ {
			grad[j] = g[r%P] * s.Mask[j]
		}
	}
	return out.Loss, [][]float64{grad}
}

// RowSums sums per-token values over a 0/1 mask for each row of T tokens,
// returning the sums and the mask counts per row: the summed completion
// log-probs and completion lengths of a batch.
func RowSums(values, mask []float64, T int) (sums, counts []float64) {
	if T <= 0 || len(values)%T != 0 || len(mask) != len(values) {
		panic(fmt.Sprintf("dpo: RowSums with T=%d, %d values, %d mask entries", T, len(values), len(mask)))
	}
	rows := len(values) / T
	sums, counts = make([]float64, rows), make([]float64, rows)
	for r := range rows {
		for j := r * T; j < (r+1)*T; j++ {
			sums[r] += values[j] * mask[j]
			counts[r] += mask[j]
		}
	}
	return sums, counts
}
