package ppo

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The chain world, a model-free check of the PPO core with the same shapes
// as language-model RLHF: an episode is a "response" of action tokens, its
// score arrives at the last token, an episode that runs out of time is a
// response without EOS, and the reference policy is the initial (uniform)
// one.
//
// Positions 0…5, start at 1. Action 1 moves right, action 0 left. Reaching 5
// ends the episode with score 1; moving left from 0 ends it with score 0.2
// (a tempting early exit: a uniform policy takes it more often than it
// reaches the goal); every step costs 0.02; after 10 steps the episode is cut
// off. The optimum walks right four times: score 1 − 4·0.02 = 0.92.
const (
	chainGoal    = 5
	chainStart   = 1
	chainHorizon = 10
	chainStep    = 0.02
	chainOptimum = 1 - 4*chainStep
	chainActions = 2
)

type episode struct {
	states, actions []int
	done            bool
	score           float64
}

// softmaxRow returns π(·|s) for a row of logits.
func softmaxRow(logits []float64) []float64 {
	m := math.Max(logits[0], logits[1])
	e0, e1 := math.Exp(logits[0]-m), math.Exp(logits[1]-m)
	return []float64{e0 / (e0 + e1), e1 / (e0 + e1)}
}

func play(theta [][]float64, r *rand.Rand, greedy bool) episode {
	var ep episode
	pos := chainStart
	for step := 1; step <= chainHorizon; step++ {
		p := softmaxRow(theta[pos])
		a := 0
		if greedy && p[1] > p[0] || !greedy && r.Float64() < p[1] {
			a = 1
		}
		ep.states = append(ep.states, pos)
		ep.actions = append(ep.actions, a)
		switch {
		case a == 1 && pos+1 == chainGoal:
			ep.done, ep.score = true, 1-chainStep*float64(step)
		case a == 0 && pos == 0:
			ep.done, ep.score = true, 0.2-chainStep*float64(step)
		case a == 1:
			pos++
		default:
			pos--
		}
		if ep.done {
			return ep
		}
	}
	ep.score = -chainStep * chainHorizon
	return ep
}

// adam is a minimal Adam (Kingma & Ba 2015, Algorithm 1) over flat tables.
type adam struct {
	lr, b1, b2 float64
	m, v       []float64
	t          int
}

func (o *adam) step(x, g []float64) {
	if o.m == nil {
		o.m, o.v = make([]float64, len(x)), make([]float64, len(x))
	}
	o.t++
	for i := range x {
		o.m[i] = o.b1*o.m[i] + (1-o.b1)*g[i]
		o.v[i] = o.b2*o.v[i] + (1-o.b2)*g[i]*g[i]
		mh := o.m[i] / (1 - math.Pow(o.b1, float64(o.t)))
		vh := o.v[i] / (1 - math.Pow(o.b2, float64(o.t)))
		x[i] -= o.lr * mh / (math.Sqrt(vh) + 1e-8)
	}
}

type chainConfig struct {
	name   string
	lambda float64
	est    KLEstimator
	ctl    KLController
}

func TestPPOChainWorld(t *testing.T) {
	for _, c := range []chainConfig{
		{"gae-k1-fixed", 0.95, K1, &FixedKL{Value: 0.01}},
		{"mc-k3-adaptive", 1, K3, &AdaptiveKL{Value: 0.05, Target: 2, Horizon: 2000}},
	} {
		t.Run(c.name, func(t *testing.T) { trainChain(t, c) })
	}
}

func trainChain(t *testing.T, c chainConfig) {
	const (
		iters, B, T    = 60, 64, chainHorizon
		epochs, nMinib = 4, 4
	)
	r := rand.New(rand.NewPCG(11, 12))
	// Policy logits θ[s][a] and values V[s], one flat slice each for Adam.
	thetaFlat := make([]float64, chainGoal*chainActions)
	theta := make([][]float64, chainGoal)
	for s := range theta {
		theta[s] = thetaFlat[s*chainActions : (s+1)*chainActions]
	}
	V := make([]float64, chainGoal)
	optP := &adam{lr: 0.05, b1: 0.9, b2: 0.999}
	optV := &adam{lr: 0.05, b1: 0.9, b2: 0.999}
	logRef := math.Log(0.5)

	var firstScore, lastScores, lastKL float64
	for it := range iters {
		// Rollout.
		eps := make([]episode, B)
		ro := Rollout{T: T, Lengths: make([]int, B), Logprobs: make([]float64, B*T), RefLogprobs: make([]float64, B*T),
			Scores: make([]float64, B), HasEOS: make([]bool, B)}
		values := make([]float64, B*T)
		for b := range B {
			eps[b] = play(theta, r, false)
			ro.Lengths[b] = len(eps[b].actions)
			ro.Scores[b], ro.HasEOS[b] = eps[b].score, eps[b].done
			for k, s := range eps[b].states {
				ro.Logprobs[b*T+k] = math.Log(softmaxRow(theta[s])[eps[b].actions[k]])
				ro.RefLogprobs[b*T+k] = logRef
				values[b*T+k] = V[s]
			}
		}
		shaped, err := Shape(ro, ShapeConfig{Estimator: c.est, KLCoef: c.ctl.Coef(), MissingEOSPenalty: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		c.ctl.Update(shaped.Stats.KL, B)
		adv, ret, err := GAE(shaped.Rewards, values, ro.Lengths, T, 1, c.lambda)
		if err != nil {
			t.Fatal(err)
		}
		mask := Mask(ro.Lengths, T)
		adv = Whiten(adv, mask, true)

		var avg UpdateAverager
		for range epochs {
			perm := r.Perm(B)
			for mb := range nMinib {
				rows := perm[mb*B/nMinib : (mb+1)*B/nMinib]
				m := &Minibatch{ClipRange: 0.2, ClipRangeValue: 0.2, VFCoef: 0.5}
				var logp, vals []float64
				var states, actions []int
				for _, b := range rows {
					for k := range T {
						i := b*T + k
						m.OldLogprobs = append(m.OldLogprobs, ro.Logprobs[i])
						m.Advantages = append(m.Advantages, adv[i])
						m.OldValues = append(m.OldValues, values[i])
						m.Returns = append(m.Returns, ret[i])
						m.Mask = append(m.Mask, mask[i])
						s, a := 0, 0
						if k < ro.Lengths[b] {
							s, a = eps[b].states[k], eps[b].actions[k]
						}
						states, actions = append(states, s), append(actions, a)
						logp = append(logp, math.Log(softmaxRow(theta[s])[a]))
						vals = append(vals, V[s])
					}
				}
				_, g := m.Loss([][]float64{logp, vals})
				avg.Add(m.Last)
				// Chain rule into the tables: ∂log π(a|s)/∂θ[s][a'] = 1[a'=a] − π(a'|s).
				gTheta := make([]float64, len(thetaFlat))
				gV := make([]float64, len(V))
				for i, s := range states {
					p := softmaxRow(theta[s])
					for a2 := range chainActions {
						ind := 0.0
						if a2 == actions[i] {
							ind = 1
						}
						gTheta[s*chainActions+a2] += g[0][i] * (ind - p[a2])
					}
					gV[s] += g[1][i]
				}
				optP.step(thetaFlat, gTheta)
				optV.step(V, gV)
			}
		}
		stats := avg.Map()
		for k, v := range stats {
			if math.IsNaN(v) {
				t.Fatalf("iteration %d: %s is NaN", it, k)
			}
		}
		if it == 0 {
			firstScore = shaped.Stats.Scores
		}
		if it >= iters-5 {
			lastScores += shaped.Stats.Scores / 5
			lastKL += shaped.Stats.KL / 5
		}
	}
	greedy := play(theta, nil, true)
	t.Logf("%s: mean score %.3f at the start, %.3f over the last 5 iterations; greedy %.3f (optimum %.2f); KL %.3f, β %.4f",
		c.name, firstScore, lastScores, greedy.score, chainOptimum, lastKL, c.ctl.Coef())
	if !greedy.done || math.Abs(greedy.score-chainOptimum) > 1e-12 {
		t.Errorf("greedy policy scores %v, want the optimum %v", greedy.score, chainOptimum)
	}
	if lastScores < 0.85 {
		t.Errorf("sampled policy scores %.3f, want ≥ 0.85 (optimum %.2f)", lastScores, chainOptimum)
	}
	if firstScore > 0.6 {
		t.Errorf("the uniform policy already scores %.3f: the world is too easy to test anything", firstScore)
	}
}
