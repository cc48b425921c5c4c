// Package reward is the reward-modelling stage: it trains a scalar reward
// model (the base, with the SFT adapter merged when one is given, plus a
// LoRA adapter and a score head) on preference pairs, and scores
// completions with it. Its loss is the Bradley–Terry pairwise loss on the
// scalar rewards of chosen and rejected completions, a plain Go function
// with a hand-derived gradient shaped to enter the model graph as a loss
// function (model.LossFunc).
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package reward

import (
	"fmt"
	"math"

	"github.com/gotune/gotune/train"
)

// LossConfig holds the loss's options (TRL's names in the comments).
type LossConfig struct {
	// CenterCoefficient (center_rewards_coefficient) adds c·mean((r_c + r_r)²),
	// which pulls rewards towards zero mean without changing their
	// differences (Eisenstein et al. 2023, "Helping or herding?").
	// 0 disables it.
	CenterCoefficient float64
}

// Validate reports an unusable configuration, naming its key.
func (c LossConfig) Validate() error {
	if c.CenterCoefficient < 0 || math.IsNaN(c.CenterCoefficient) || math.IsInf(c.CenterCoefficient, 0) {
		return fmt.Errorf("reward: %s must be ≥ 0 and finite, got %v", KeyCenterRewards, c.CenterCoefficient)
	}
	return nil
}

// Metrics are a batch's statistics with TRL's meaning; Map gives their names.
type Metrics struct {
	Accuracy   float64 // fraction of pairs with r_c > r_r (ties count 0)
	Margin     float64 // mean r_c − r_r
	MeanReward float64 // mean of all 2P rewards, chosen and rejected
	MinReward  float64 // least of all 2P rewards
	MaxReward  float64 // greatest of all 2P rewards
	Loss       float64 // the loss, centering term included
}

// Map returns the metrics under TRL's names, each prefixed ("eval_" for
// held-out metrics: "eval_accuracy").
func (m Metrics) Map(prefix string) map[string]float64 {
	return map[string]float64{
		prefix + "accuracy":    m.Accuracy,
		prefix + "margin":      m.Margin,
		prefix + "mean_reward": m.MeanReward,
		prefix + "min_reward":  m.MinReward,
		prefix + "max_reward":  m.MaxReward,
		prefix + "loss":        m.Loss,
	}
}

// Output is a batch's loss, its gradient with respect to the rewards, and
// its metrics.
type Output struct {
	Loss                     float64
	GradChosen, GradRejected []float64 // ∂Loss/∂r_c, ∂Loss/∂r_r, per pair
	Metrics                  Metrics
}

// Compute returns the mean Bradley–Terry loss over P pairs (Bradley & Terry
// 1952; Ouyang et al. 2022, eq. 1) with an optional per-pair margin m_i
// (Touvron et al. 2023, Llama 2, eq. 2):
//
//	L = (1/P) Σ −log σ(r_c − r_r − m) + c·(1/P) Σ (r_c + r_r)²
//
// margin may be nil (no margins). Its gradient, with z = r_c − r_r − m:
// ∂L/∂r_c = (−σ(−z) + 2c(r_c + r_r))/P and ∂L/∂r_r = (σ(−z) + 2c(r_c + r_r))/P.
func (c LossConfig) Compute(chosen, rejected, margin []float64) (Output, error) {
	if err := c.Validate(); err != nil {
		return Output{}, err
	}
	n := len(chosen)
	if n == 0 {
		return Output{}, fmt.Errorf("reward: empty batch")
	}
	if len(rejected) != n {
		return Output{}, fmt.Errorf("reward: %d chosen but %d rejected rewards", n, len(rejected))
	}
	if margin != nil && len(margin) != n {
		return Output{}, fmt.Errorf("reward: %d pairs but %d margins", n, len(margin))
	}
	fn := float64(n)
	out := Output{GradChosen: make([]float64, n), GradRejected: make([]float64, n)}
	m := Metrics{MinReward: math.Inf(1), MaxReward: math.Inf(-1)}
	for i := range n {
		rc, rr := chosen[i], rejected[i]
		z := rc - rr
		if margin != nil {
			z -= margin[i]
		}
		out.Loss += train.Softplus(-z) / fn
		g := -train.Sigmoid(-z) / fn
		out.GradChosen[i], out.GradRejected[i] = g, -g
		if c.CenterCoefficient > 0 {
			s := rc + rr
			out.Loss += c.CenterCoefficient * s * s / fn
			out.GradChosen[i] += 2 * c.CenterCoefficient * s / fn
			out.GradRejected[i] += 2 * c.CenterCoefficient * s / fn
		}
		if rc > rr {
			m.Accuracy++
		}
		m.Margin += rc - rr
		m.MeanReward += rc + rr
		m.MinReward = min(m.MinReward, rc, rr)
		m.MaxReward = max(m.MaxReward, rc, rr)
	}
	m.Accuracy /= fn
	m.Margin /= fn
	m.MeanReward /= 2 * fn
	m.Loss = out.Loss
	out.Metrics = m
	return out, nil
}

// Step holds what one training step's loss needs besides the rewards, so
// that its methods can serve as the graph's loss function (model.LossFunc);
// the caller sets Margin (nil for none) before each run, and Last holds the
// most recent result.
type Step struct {
	Config LossConfig
	Margin []float64
	Last   Output
}

// PairLoss is a model.LossFunc over two graph nodes: in[0] the chosen
// rewards (P) and in[1] the rejected ones (P). A malformed batch is a
// programmer error and panics.
func (s *Step) PairLoss(in [][]float64) (float64, [][]float64) {
	if len(in) != 2 {
		panic(fmt.Sprintf("reward: PairLoss takes 2 inputs, got %d", len(in)))
	}
	out, err := s.Config.Compute(in[0], in[1], s.Margin)
	if err != nil {
		panic(err)
	}
	s.Last = out
	return out.Loss, [][]float64{out.GradChosen, out.GradRejected}
}

// StackedLoss is a model.LossFunc over one graph node of 2P rewards, the P
// chosen ones first and then the P rejected ones of the same pairs (the
// layout of one batched forward pass over both completions).
func (s *Step) StackedLoss(in [][]float64) (float64, [][]float64) {
	if len(in) != 1 || len(in[0])%2 != 0 {
		panic(fmt.Sprintf("reward: StackedLoss takes one input of even length, got %d inputs", len(in)))
	}
	P := len(in[0]) / 2
	loss, g := s.PairLoss([][]float64{in[0][:P], in[0][P:]})
	grad := make([]float64, 0, 2*P)
	grad = append(append(grad, g[0]...), g[1]...)
	return loss, [][]float64{grad}
}
