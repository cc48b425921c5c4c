// Package ppo is the PPO-RLHF stage: it trains a LoRA policy with a value
// head on responses it samples to prompts, scored by a reward model and
// kept near the starting policy by a KL penalty. Its model-free core is
// plain Go functions with hand-derived gradients: generalised advantage
// estimation, KL estimators and controllers, reward shaping, and the clipped
// policy and value losses, shaped to enter the model graph as loss functions
// (model.LossFunc).
//
// Layout: a batch holds B responses, each a row of T token positions stored
// row-major (B·T) and right-padded; Lengths[b] is the number of real tokens
// of row b (1 ≤ Lengths[b] ≤ T). A response ends after its last real token:
// the value after it is 0 (the episode is over, by an end-of-sequence token
// or by truncation, which the shaped reward penalises instead).
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package ppo

import (
	"fmt"
	"math"
)

// Mask returns the (B·T) 0/1 mask of the real tokens of rows of the given
// lengths.
func Mask(lengths []int, T int) []float64 {
	m := make([]float64, len(lengths)*T)
	for b, n := range lengths {
		for t := 0; t < n && t < T; t++ {
			m[b*T+t] = 1
		}
	}
	return m
}

// checkLayout validates (B·T) arrays against row lengths.
func checkLayout(what string, n int, lengths []int, T int) error {
	if T <= 0 {
		return fmt.Errorf("ppo: %s: T must be positive, got %d", what, T)
	}
	if n != len(lengths)*T {
		return fmt.Errorf("ppo: %s: %d values for %d rows of %d tokens", what, n, len(lengths), T)
	}
	for b, l := range lengths {
		if l < 1 || l > T {
			return fmt.Errorf("ppo: %s: row %d has length %d, want 1…%d", what, b, l, T)
		}
	}
	return nil
}

// GAE returns the generalised advantage estimates and the returns of every
// token (Schulman et al. 2016, eq. 16):
//
//	δ_t = r_t + γ V_{t+1} − V_t,   Â_t = Σ_l (γλ)^l δ_{t+l},   R_t = Â_t + V_t,
//
// computed backwards as Â_t = δ_t + γλ Â_{t+1}, with V = 0 after a row's last
// token. With λ = 1 the returns are the discounted Monte Carlo returns
// Σ_l γ^l r_{t+l}, whatever the values; with λ = 0, one-step TD errors.
// Padding positions get 0.
func GAE(rewards, values []float64, lengths []int, T int, gamma, lambda float64) (adv, ret []float64, err error) {
	if err := checkLayout("gae rewards", len(rewards), lengths, T); err != nil {
		return nil, nil, err
	}
	if len(values) != len(rewards) {
		return nil, nil, fmt.Errorf("ppo: gae: %d values for %d rewards", len(values), len(rewards))
	}
	if gamma < 0 || gamma > 1 || lambda < 0 || lambda > 1 {
		return nil, nil, fmt.Errorf("ppo: gae: gamma %v and lambda %v must lie in [0, 1]", gamma, lambda)
	}
	adv, ret = make([]float64, len(rewards)), make([]float64, len(rewards))
	for b, n := range lengths {
		row := b * T
		last := 0.0
		for t := n - 1; t >= 0; t-- {
			next := 0.0
			if t+1 < n {
				next = values[row+t+1]
			}
			delta := rewards[row+t] + gamma*next - values[row+t]
			last = delta + gamma*lambda*last
			adv[row+t] = last
			ret[row+t] = last + values[row+t]
		}
	}
	return adv, ret, nil
}

// Whiten returns (x − mean)/√(var + 1e-8) over the masked entries, with the
// unbiased (Bessel-corrected) variance, as TRL's masked_whiten; with
// shiftMean false the mean is added back (only the scale changes). Masked-out
// entries become 0. With fewer than two masked entries there is no variance
// to divide by, and x is only centred (or, without shiftMean, returned).
func Whiten(x, mask []float64, shiftMean bool) []float64 {
	if len(x) != len(mask) {
		panic(fmt.Sprintf("ppo: Whiten %d values with %d mask entries", len(x), len(mask)))
	}
	mean, n := maskedMean(x, mask)
	var ss float64
	for i, v := range x {
		d := v - mean
		ss += d * d * mask[i]
	}
	scale := 1.0
	if n > 1 {
		scale = 1 / math.Sqrt(ss/(n-1)+1e-8)
	}
	out := make([]float64, len(x))
	for i, v := range x {
		if mask[i] == 0 {
			continue
		}
		out[i] = (v - mean) * scale
		if !shiftMean {
			out[i] += mean
		}
	}
	return out
}

// maskedMean returns Σ m·x / Σ m and Σ m (0, 0 for an empty mask).
func maskedMean(x, mask []float64) (mean, n float64) {
	var s float64
	for i, v := range x {
		s += v * mask[i]
		n += mask[i]
	}
	if n == 0 {
		return 0, 0
	}
	return s / n, n
}
