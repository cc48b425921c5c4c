package ppo

import (
	"fmt"
	"math"
)

// KLEstimator names a per-token estimator of KL(π ‖ π_ref) from the
// log-probabilities of tokens sampled from π (Schulman 2020, "Approximating
// KL divergence"), with log r = log π_ref − log π:
//
//	k1 = −log r             unbiased, high variance, can be negative;
//	k3 = (r − 1) − log r    unbiased, low variance, never negative.
type KLEstimator string

// The estimators (TRL's kl_estimator values).
const (
	K1 KLEstimator = "k1"
	K3 KLEstimator = "k3"
)

// Validate reports an unknown estimator.
func (e KLEstimator) Validate() error {
	if e != K1 && e != K3 {
		return fmt.Errorf("ppo: %s %q is unknown (want %s or %s)", KeyKLEstimator, e, K1, K3)
	}
	return nil
}

// Token returns the estimate for one token.
func (e KLEstimator) Token(logp, refLogp float64) float64 {
	logr := refLogp - logp
	if e == K3 {
		return math.Expm1(logr) - logr
	}
	return -logr
}

// KLController yields the coefficient of the KL penalty and adapts it.
type KLController interface {
	// Coef returns the current coefficient β of the penalty −β·KL.
	Coef() float64
	// Update takes the mean KL per response of the last batch and the
	// number of responses it held.
	Update(kl float64, nSteps int)
}

// FixedKL is a constant coefficient.
type FixedKL struct{ Value float64 }

// Coef returns the constant.
func (c *FixedKL) Coef() float64 { return c.Value }

// Update does nothing.
func (c *FixedKL) Update(float64, int) {}

// AdaptiveKL steers the KL towards a target (Ziegler et al. 2019, Sec. 2.2):
//
//	e = clip(KL/target − 1, −0.2, 0.2),   β ← β·(1 + e·n/horizon),
//
// a proportional controller whose step grows with the number n of responses
// seen, relative to the horizon.
type AdaptiveKL struct {
	Value   float64 // current β (init_kl_coef)
	Target  float64 // target KL per response (target)
	Horizon float64 // responses over which β may change by about e (horizon)
}

// Validate reports the first setting the controller cannot use, naming
// its key (the Key constants of Config).
func (c *AdaptiveKL) Validate() error {
	switch {
	case !(c.Value >= 0) || math.IsInf(c.Value, 0):
		return fmt.Errorf("ppo: %s (the adaptive controller's start) must be ≥ 0 and finite, got %v", KeyKLCoef, c.Value)
	case !(c.Target > 0) || math.IsInf(c.Target, 0):
		return fmt.Errorf("ppo: %s must be positive and finite, got %v", KeyKLTarget, c.Target)
	case !(c.Horizon > 0) || math.IsInf(c.Horizon, 0):
		return fmt.Errorf("ppo: %s must be positive and finite, got %v", KeyKLHorizon, c.Horizon)
	}
	return nil
}

// Coef returns the current coefficient.
func (c *AdaptiveKL) Coef() float64 { return c.Value }

// Update applies one controller step.
func (c *AdaptiveKL) Update(kl float64, nSteps int) {
	e := min(max(kl/c.Target-1, -0.2), 0.2)
	c.Value *= 1 + e*float64(nSteps)/c.Horizon
}

// Rollout is a batch of sampled responses with what the shaped reward needs.
type Rollout struct {
	T           int       // positions per row
	Lengths     []int     // real tokens per row (B)
	Logprobs    []float64 // (B·T) log π of the sampled tokens when they were sampled
	RefLogprobs []float64 // (B·T) log π_ref of the same tokens
	Scores      []float64 // (B) reward-model scores of the responses
	HasEOS      []bool    // (B) whether the response ended with an end-of-sequence token
}

// ShapeConfig holds the reward shaping's options.
type ShapeConfig struct {
	Estimator KLEstimator // k1 or k3
	KLCoef    float64     // β of the per-token penalty −β·KL (from a KLController)
	// MissingEOSPenalty (missing_eos_penalty) is subtracted from the score
	// of a response that ended without an end-of-sequence token.
	MissingEOSPenalty float64
}

// Shaped is a rollout's per-token rewards and statistics.
type Shaped struct {
	Rewards []float64    // (B·T) −β·KL per token, plus the score at each row's last token
	KL      []float64    // (B·T) per-token KL estimates (0 on padding)
	Scores  []float64    // (B) scores after the missing-EOS penalty
	Stats   RolloutStats // objective/* metrics
}

// RolloutStats are a rollout's objective/* metrics, with TRL's meaning.
type RolloutStats struct {
	KL             float64 // mean over responses of Σ_t KL_t
	Entropy        float64 // mean over responses of Σ_t −log π(token): a sampled entropy estimate
	NonScoreReward float64 // mean over responses of Σ_t −β·KL_t
	RLHFReward     float64 // Scores + NonScoreReward: the KL-regularised objective
	Scores         float64 // mean score, after the missing-EOS penalty
}

// Map returns the metrics under TRL's names.
func (s RolloutStats) Map() map[string]float64 {
	return map[string]float64{
		"objective/kl":               s.KL,
		"objective/entropy":          s.Entropy,
		"objective/non_score_reward": s.NonScoreReward,
		"objective/rlhf_reward":      s.RLHFReward,
		"objective/scores":           s.Scores,
	}
}

// Shape turns a rollout into per-token rewards as in Ziegler et al. 2019
// (eq. 2) and Ouyang et al. 2022 (eq. 2): r_t = −β·KL_t on every token, plus
// the response's score (minus the missing-EOS penalty) on its last token.
func Shape(r Rollout, c ShapeConfig) (Shaped, error) {
	if err := c.Estimator.Validate(); err != nil {
		return Shaped{}, err
	}
	if err := checkLayout("rollout logprobs", len(r.Logprobs), r.Lengths, r.T); err != nil {
		return Shaped{}, err
	}
	B := len(r.Lengths)
	if len(r.RefLogprobs) != len(r.Logprobs) || len(r.Scores) != B || len(r.HasEOS) != B {
		return Shaped{}, fmt.Errorf("ppo: rollout of %d rows has %d/%d log-probs, %d scores, %d EOS flags",
			B, len(r.Logprobs), len(r.RefLogprobs), len(r.Scores), len(r.HasEOS))
	}
	T := r.T
	s := Shaped{Rewards: make([]float64, B*T), KL: make([]float64, B*T), Scores: make([]float64, B)}
	for b, n := range r.Lengths {
		score := r.Scores[b]
		if !r.HasEOS[b] {
			score -= c.MissingEOSPenalty
		}
		s.Scores[b] = score
		var kl, ent float64
		for t := range n {
			i := b*T + t
			s.KL[i] = c.Estimator.Token(r.Logprobs[i], r.RefLogprobs[i])
			s.Rewards[i] = -c.KLCoef * s.KL[i]
			kl += s.KL[i]
			ent -= r.Logprobs[i]
		}
		s.Rewards[b*T+n-1] += score
		s.Stats.KL += kl
		s.Stats.Entropy += ent
		s.Stats.NonScoreReward -= c.KLCoef * kl
		s.Stats.Scores += score
	}
	fb := float64(B)
	s.Stats.KL /= fb
	s.Stats.Entropy /= fb
	s.Stats.NonScoreReward /= fb
	s.Stats.Scores /= fb
	s.Stats.RLHFReward = s.Stats.Scores + s.Stats.NonScoreReward
	return s, nil
}
