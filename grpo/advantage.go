package grpo

import (
	"fmt"
	"math"
)

// Advantage estimators: the baseline subtracted from a completion's reward.
const (
	// EstimatorGRPO subtracts the group's mean reward (DeepSeekMath, Shao
	// et al. 2024, §4.1.2: Â_i = (r_i − mean(r)) / std(r)).
	EstimatorGRPO = "grpo"
	// EstimatorRLOO subtracts the mean reward of the group's other
	// completions, Â_i = r_i − 1/(G−1) Σ_{j≠i} r_j (REINFORCE
	// leave-one-out: Kool et al. 2019, "Buy 4 REINFORCE samples, get a
	// baseline for free!"; Ahmadian et al. 2024, eq. 5). It equals
	// G/(G−1)·(r_i − mean(r)): unbiased, where the mean baseline includes
	// the completion's own reward.
	EstimatorRLOO = "rloo"
)

// Estimators are the accepted advantage estimators.
var Estimators = []string{EstimatorGRPO, EstimatorRLOO}

// Reward scalings (TRL's scale_rewards).
const (
	ScaleGroup = "group" // divide by the group's standard deviation (GRPO)
	ScaleBatch = "batch" // divide by the whole batch's standard deviation
	ScaleNone  = "none"  // no division: Dr. GRPO (Liu et al. 2025, §3.1), whose std division biases towards too easy and too hard questions
)

// Scalings are the accepted reward scalings.
var Scalings = []string{ScaleGroup, ScaleBatch, ScaleNone}

// stdEps keeps the division finite for a group whose rewards are all
// equal, whose advantages are then 0 (TRL's 1e-4).
const stdEps = 1e-4

// GroupStats are a generation batch's reward statistics under TRL's
// metric names.
type GroupStats struct {
	Reward          float64 // mean reward ("reward")
	RewardStd       float64 // mean over groups of the group's standard deviation ("reward_std")
	FracZeroStd     float64 // share of groups whose rewards are all equal, which teach nothing ("frac_reward_zero_std")
	AdvantageAbsAvg float64 // mean |Â|
}

// Advantages returns the advantage of every completion from its reward.
// rewards holds consecutive groups of G completions of one prompt each;
// standard deviations are the unbiased sample estimates (Bessel's
// correction), as torch.std computes them in TRL.
func Advantages(rewards []float64, G int, estimator, scale string) ([]float64, GroupStats, error) {
	var st GroupStats
	if G < 2 {
		return nil, st, fmt.Errorf("a group needs at least 2 completions, got %d", G)
	}
	if len(rewards) == 0 || len(rewards)%G != 0 {
		return nil, st, fmt.Errorf("%d rewards do not form groups of %d", len(rewards), G)
	}
	for i, r := range rewards {
		if math.IsNaN(r) || math.IsInf(r, 0) {
			return nil, st, fmt.Errorf("reward %d is %v", i, r)
		}
	}
	groups := len(rewards) / G
	adv := make([]float64, len(rewards))
	stds := make([]float64, groups)
	for g := range groups {
		rs := rewards[g*G : (g+1)*G]
		m, sd := meanStd(rs)
		stds[g] = sd
		st.RewardStd += sd / float64(groups)
		if sd < 1e-8*max(1, math.Abs(m)) {
			st.FracZeroStd += 1 / float64(groups)
		}
		for i, r := range rs {
			switch estimator {
			case EstimatorGRPO:
				adv[g*G+i] = r - m
			case EstimatorRLOO:
				adv[g*G+i] = r - (m*float64(G)-r)/float64(G-1)
			default:
				return nil, st, fmt.Errorf("unknown advantage estimator %q (want one of %v)", estimator, Estimators)
			}
		}
	}
	var batchStd float64
	st.Reward, batchStd = meanStd(rewards)
	for i := range adv {
		switch scale {
		case ScaleGroup:
			adv[i] /= stds[i/G] + stdEps
		case ScaleBatch:
			adv[i] /= batchStd + stdEps
		case ScaleNone:
		default:
			return nil, st, fmt.Errorf("unknown reward scaling %q (want one of %v)", scale, Scalings)
		}
		st.AdvantageAbsAvg += math.Abs(adv[i]) / float64(len(adv))
	}
	return adv, st, nil
}

// meanStd returns the mean and the unbiased standard deviation of x
// (len(x) ≥ 2).
func meanStd(x []float64) (mean, std float64) {
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	var ss float64
	for _, v := range x {
		ss += (v - mean) * (v - mean)
	}
	return mean, math.Sqrt(ss / float64(len(x)-1))
}

// Combine returns the weighted sum Σ_k weights[k]·scores[k][i] of every
// completion i's reward-function scores (TRL's reward_weights).
func Combine(scores [][]float64, weights []float64) ([]float64, error) {
	if len(scores) == 0 || len(scores) != len(weights) {
		return nil, fmt.Errorf("%d reward functions with %d weights", len(scores), len(weights))
	}
	out := make([]float64, len(scores[0]))
	for k, s := range scores {
		if len(s) != len(out) {
			return nil, fmt.Errorf("reward function %d scored %d completions, want %d", k, len(s), len(out))
		}
		for i, v := range s {
			out[i] += weights[k] * v
		}
	}
	return out, nil
}
