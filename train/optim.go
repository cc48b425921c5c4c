// Package train is the optimisation loop every stage shares (pretraining,
// SFT, reward modelling, DPO, PPO): AdamW with decoupled weight decay, a
// warmup + cosine learning-rate schedule, global-norm gradient clipping,
// gradient accumulation over micro-batches, seeded determinism, periodic
// checkpoints that resume exactly, a NaN/Inf guard, a progress bar and one
// JSON line of metrics per logged step.
//
// A stage supplies its trainable tensors as Params and a StepFunc that runs
// forward and backward on one micro-batch; the Loop does the rest:
//
//	l := &train.Loop{Config: cfg, Params: params, Step: step, ZeroGrad: prog.ZeroGrad}
//	if resume {
//		if err := l.Resume(); err != nil { … }
//	}
//	err := l.Run(ctx)
//
// May import: the rest of the shared fine-tuning layer (finetune, train,
// lora), model/..., tokenizer/..., data/..., checkpoints/..., internal/blas,
// internal/kernel and internal/mpi; never a stage, the pipeline, serve or cmd.
package train

import (
	"fmt"
	"math"
)

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled
// Weight Decay Regularization", ICLR 2019, Algorithm 2), with bias-corrected
// moments (Kingma & Ba 2015, Algorithm 1). For each parameter θ with
// gradient g at update t (1-based):
//
//	m ← β₁·m + (1−β₁)·g                  first moment
//	v ← β₂·v + (1−β₂)·g²                 second moment
//	m̂ = m/(1−β₁ᵗ),  v̂ = v/(1−β₂ᵗ)        bias correction
//	θ ← θ − lr·(m̂/(√v̂ + ε) + λ·θ)
//
// As in PyTorch's torch.optim.AdamW, the decay is scaled by the scheduled
// learning rate lr (Algorithm 2's η_t·α), so weight_decay means the same as
// in Hugging Face trainers. Moments are stored in float32, the update is
// computed in float64.
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float64
	M, V                           [][]float32 // per parameter, same lengths as the values
	T                              int         // updates applied so far
}

// NewAdamW returns an optimizer with zero moments for parameters of the
// given sizes.
func NewAdamW(beta1, beta2, eps, weightDecay float64, sizes []int) *AdamW {
	o := &AdamW{Beta1: beta1, Beta2: beta2, Eps: eps, WeightDecay: weightDecay}
	for _, n := range sizes {
		o.M = append(o.M, make([]float32, n))
		o.V = append(o.V, make([]float32, n))
	}
	return o
}

// Update applies one AdamW step with learning rate lr to values given
// their gradients; decay[i] false exempts parameter i from weight decay.
func (o *AdamW) Update(values, grads [][]float32, decay []bool, lr float64) {
	if len(values) != len(o.M) || len(grads) != len(o.M) || len(decay) != len(o.M) {
		panic(fmt.Sprintf("train: AdamW.Update with %d values, %d grads, %d decay flags for %d parameters", len(values), len(grads), len(decay), len(o.M)))
	}
	o.T++
	b1, b2 := o.Beta1, o.Beta2
	bc1 := 1 - math.Pow(b1, float64(o.T))
	bc2 := 1 - math.Pow(b2, float64(o.T))
	for i, theta := range values {
		g, m, v := grads[i], o.M[i], o.V[i]
		if len(g) != len(theta) || len(m) != len(theta) {
			panic(fmt.Sprintf("train: AdamW parameter %d has %d values, %d gradients, %d moments", i, len(theta), len(g), len(m)))
		}
		shrink := 1.0
		if decay[i] {
			shrink = 1 - lr*o.WeightDecay // decoupled decay: θ·(1 − lr·λ)
		}
		for j := range theta {
			gj := float64(g[j])
			mj := b1*float64(m[j]) + (1-b1)*gj
			vj := b2*float64(v[j]) + (1-b2)*gj*gj
			m[j], v[j] = float32(mj), float32(vj)
			mhat, vhat := mj/bc1, vj/bc2
			theta[j] = float32(float64(theta[j])*shrink - lr*mhat/(math.Sqrt(vhat)+o.Eps))
		}
	}
}

// GlobalNorm is the Euclidean norm of all gradients taken together,
// ‖g‖ = √(Σᵢ Σⱼ gᵢⱼ²), accumulated in float64.
func GlobalNorm(grads [][]float32) float64 {
	var s float64
	for _, g := range grads {
		for _, x := range g {
			s += float64(x) * float64(x)
		}
	}
	return math.Sqrt(s)
}

// ClipGlobalNorm scales all gradients by maxNorm/(‖g‖+10⁻⁶) when their
// global norm exceeds maxNorm (Pascanu et al. 2013, §3.2; the constant is
// torch.nn.utils.clip_grad_norm_'s), and returns the norm before clipping.
// maxNorm ≤ 0 disables clipping.
func ClipGlobalNorm(grads [][]float32, maxNorm float64) float64 {
	norm := GlobalNorm(grads)
	if maxNorm <= 0 || norm <= maxNorm || math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm
	}
	scale(grads, maxNorm/(norm+1e-6))
	return norm
}

func scale(grads [][]float32, c float64) {
	f := float32(c)
	for _, g := range grads {
		for j := range g {
			g[j] *= f
		}
	}
}

// Schedule is a learning-rate schedule with linear warmup, following
// Hugging Face transformers' get_*_schedule_with_warmup: the rate used for
// update s (0-based; s updates already done) is LR·f(s) with
//
//	f(s) = s/W                                       for s < W (warmup)
//	cosine:   r + (1−r)·½(1 + cos(π·p))              p = (s−W)/max(1, N−W)
//	linear:   r + (1−r)·max(0, 1 − p)
//	constant: 1
//
// where W = WarmupSteps, N = TotalSteps and r = MinLRRatio (cosine with a
// floor is transformers' cosine_with_min_lr; Loshchilov & Hutter, SGDR,
// ICLR 2017, Eq. 5, without restarts).
type Schedule struct {
	Kind        string  `json:"kind"` // "cosine" (default), "linear" or "constant"
	LR          float64 `json:"lr"`
	WarmupSteps int     `json:"warmup_steps"`
	TotalSteps  int     `json:"total_steps"`
	MinLRRatio  float64 `json:"min_lr_ratio"`
}

// Validate reports an unknown kind or out-of-range value.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "", "cosine", "linear", "constant":
	default:
		return fmt.Errorf("unknown learning-rate schedule %q (want cosine, linear or constant)", s.Kind)
	}
	switch {
	case s.LR < 0 || math.IsNaN(s.LR) || math.IsInf(s.LR, 0):
		return fmt.Errorf("learning rate %g must be a finite non-negative number", s.LR)
	case s.WarmupSteps < 0:
		return fmt.Errorf("warmup steps %d must be ≥ 0", s.WarmupSteps)
	case s.MinLRRatio < 0 || s.MinLRRatio > 1:
		return fmt.Errorf("min_lr_ratio %g must be in [0, 1]", s.MinLRRatio)
	}
	return nil
}

// At returns the learning rate for update s (0-based).
func (s Schedule) At(step int) float64 {
	if step < s.WarmupSteps {
		return s.LR * float64(step) / float64(s.WarmupSteps)
	}
	p := float64(step-s.WarmupSteps) / float64(max(1, s.TotalSteps-s.WarmupSteps))
	r := s.MinLRRatio
	switch s.Kind {
	case "constant":
		return s.LR
	case "linear":
		return s.LR * (r + (1-r)*max(0, 1-p))
	}
	return s.LR * (r + (1-r)*0.5*(1+math.Cos(math.Pi*min(p, 1))))
}
