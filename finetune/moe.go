package finetune

import (
	"context"
	"fmt"
	"math"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// Metric names of a mixture-of-experts model's training, in TRL's slash
// style. Each training step logs, for every MoE layer N, the coefficient of
// variation of its experts' load (standard deviation / mean of the
// fractions of routed token slots; 0 is perfect balance) and the largest
// fraction any one expert received (1/E is perfect balance), and, when the
// balance loss is on, its value.
const (
	MetricMoEAuxLoss = "moe/aux_loss"
	metricLoadCV     = "moe/load_cv/layer_%d"
	metricLoadMax    = "moe/load_max/layer_%d"
)

// MetricLoadCV is the name of layer l's load coefficient of variation.
func MetricLoadCV(l int) string { return fmt.Sprintf(metricLoadCV, l) }

// MetricLoadMax is the name of layer l's largest expert fraction.
func MetricLoadMax(l int) string { return fmt.Sprintf(metricLoadMax, l) }

// HasMoE reports whether a model has a routed mixture-of-experts layer.
func HasMoE(c *model.Config) bool {
	for l := range c.NumHiddenLayers {
		if c.IsMoELayer(l) {
			return true
		}
	}
	return false
}

// CheckMoEAuxLoss refuses a balance-loss weight that is negative, not
// finite, or positive for a model without mixture-of-experts layers (where
// it would silently do nothing).
func CheckMoEAuxLoss(c *model.Config, alpha float64) error {
	switch {
	case !(alpha >= 0) || math.IsInf(alpha, 0):
		return fmt.Errorf("%s must be a finite number ≥ 0 (0: off), got %g", train.KeyMoEAuxLossAlpha, alpha)
	case alpha > 0 && !HasMoE(c):
		return fmt.Errorf("%s is %g but the model (model_type %s) has no mixture-of-experts layer", train.KeyMoEAuxLossAlpha, alpha, c.ModelType)
	}
	return nil
}

// WithBalanceLoss returns loss plus DeepSeek-V2's expert balance loss
// weighted by alpha (model.Graph.MoEBalanceLoss), and the balance node;
// with alpha 0 or a dense model it returns loss unchanged and a nil node.
func WithBalanceLoss(g *model.Graph, loss *gorgonia.Node, alpha float64) (total, balance *gorgonia.Node, err error) {
	if alpha == 0 {
		return loss, nil, nil
	}
	if balance = g.MoEBalanceLoss(alpha); balance == nil {
		return loss, nil, nil
	}
	if total, err = gorgonia.Add(loss, balance); err != nil {
		return nil, nil, fmt.Errorf("balance loss: %w", err)
	}
	return total, balance, nil
}

// TrainGraph is a graph a training step may run, with its balance-loss node
// (nil when the balance loss is off).
type TrainGraph struct {
	Graph   *model.Graph
	Balance *gorgonia.Node
}

// LogMoE wraps a training step so that its metrics carry the expert load
// of the graphs it ran (those of graphs() whose MoE layers routed tokens
// during the step; loads of several graphs are pooled by token slots) and,
// where a graph has a balance-loss node, that term: it is added to the
// step's loss, which is then the objective the gradients descend, and
// logged alone as MetricMoEAuxLoss. For a dense model it adds nothing.
func LogMoE(step train.StepFunc, graphs func() []TrainGraph) train.StepFunc {
	return func(ctx context.Context, s, micro int) (train.Metrics, error) {
		for _, tg := range graphs() {
			tg.Graph.ResetExpertLoad()
		}
		met, err := step(ctx, s, micro)
		if err != nil || met == nil {
			return met, err
		}
		// Again: the step may have built a program (a new batch shape),
		// whose graph has run only in this step.
		gs := graphs()
		var (
			aux    float64
			hasAux bool
			pooled = map[int][]float64{} // layer → Σ fraction·slots per expert
			slots  = map[int]int{}
			layers []int
		)
		for _, tg := range gs {
			loads := tg.Graph.ExpertLoad()
			if len(loads) == 0 {
				continue // the graph did not run in this step
			}
			for _, ld := range loads {
				acc, ok := pooled[ld.Layer]
				if !ok {
					acc = make([]float64, len(ld.Fractions))
					pooled[ld.Layer] = acc
					layers = append(layers, ld.Layer)
				}
				for e, f := range ld.Fractions {
					acc[e] += f * float64(ld.Slots)
				}
				slots[ld.Layer] += ld.Slots
			}
			if tg.Balance != nil {
				aux += float64(model.Value32(tg.Balance)[0])
				hasAux = true
			}
		}
		for _, l := range layers {
			cv, mx := loadStats(pooled[l], slots[l])
			met[MetricLoadCV(l)] = cv
			met[MetricLoadMax(l)] = mx
		}
		if hasAux {
			met[MetricMoEAuxLoss] = aux
			met[train.KeyLoss] += aux
		}
		return met, nil
	}
}

// loadStats turns pooled per-expert slot counts into the coefficient of
// variation of the fractions and the largest fraction.
func loadStats(counts []float64, slots int) (cv, maxFrac float64) {
	if slots == 0 || len(counts) == 0 {
		return 0, 0
	}
	fr := make([]float64, len(counts))
	var mean float64
	for e, c := range counts {
		fr[e] = c / float64(slots)
		mean += fr[e]
		maxFrac = max(maxFrac, fr[e])
	}
	mean /= float64(len(fr))
	var sq float64
	for _, f := range fr {
		sq += (f - mean) * (f - mean)
	}
	if mean > 0 {
		cv = math.Sqrt(sq/float64(len(fr))) / mean
	}
	return cv, maxFrac
}

// SetMoEAuxLoss sets the weight of the expert balance loss that every
// trainable program built afterwards adds to its loss (0, the default:
// none). It refuses a positive weight for a model without experts and is
// called before the first program is built.
func (m *Model) SetMoEAuxLoss(alpha float64) error {
	if len(m.programs) > 0 {
		return fmt.Errorf("finetune: set %s before building programs", train.KeyMoEAuxLossAlpha)
	}
	if err := CheckMoEAuxLoss(&m.Weights.Config, alpha); err != nil {
		return fmt.Errorf("%s: %w", m.BaseDir, err)
	}
	m.moeAlpha = alpha
	return nil
}

// LogMoE wraps a training step of this model with LogMoE over its trainable
// programs (those built so far and those the step builds).
func (m *Model) LogMoE(step train.StepFunc) train.StepFunc {
	if !HasMoE(&m.Weights.Config) {
		return step
	}
	return LogMoE(step, func() []TrainGraph {
		var gs []TrainGraph
		for _, p := range m.order {
			if p.trainable {
				gs = append(gs, TrainGraph{Graph: p.Graph, Balance: p.balance})
			}
		}
		return gs
	})
}
