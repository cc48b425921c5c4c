package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/gotune/gotune/internal/mpi"
)

// Metric names written to metrics.jsonl (Hugging Face / TRL names).
const (
	KeyStep         = "step"
	KeyEpoch        = "epoch"
	KeyLoss         = "loss"
	KeyLR           = "learning_rate"
	KeyGradNorm     = "grad_norm"
	KeyTokensPerSec = "tokens_per_second"
	// KeyTokens is reported by a StepFunc as the number of tokens in its
	// micro-batch; it is summed (not averaged) and logged cumulatively.
	KeyTokens = "num_tokens"
)

// Metrics are named scalars. A StepFunc returns the metrics of one
// micro-batch, which must include KeyLoss; the loop averages every key over
// micro-batches and logged steps, except KeyTokens which it sums.
type Metrics map[string]float64

// Param is one trainable tensor.
type Param struct {
	Name    string
	Shape   []int            // for checkpoints; nil means [len(Value)]
	Value   []float32        // updated in place by the optimizer
	Grad    func() []float32 // the gradient accumulated since the last ZeroGrad; the loop scales and clips it in place
	NoDecay bool             // exempt from weight decay (norms, biases)
}

// StepFunc runs forward and backward on micro-batch micro of update step
// (both 0-based), adding its gradients to the accumulated ones. The loss it
// reports, and the gradients it adds, are the micro-batch mean: the loop
// divides the accumulated gradient by GradAccum, which makes accumulation
// equal to one large batch when micro-batches are the same size. A StepFunc
// draws its randomness from Loop.Rand so that a resumed run repeats it.
type StepFunc func(ctx context.Context, step, micro int) (Metrics, error)

// Hooks let a stage save and restore what the loop does not own.
type Hooks struct {
	// State returns the stage's resumable position (data cursor, shuffling
	// order, …) as JSON; it is called before every update, and the value
	// from the start of an update is what a checkpoint stores.
	State func() (json.RawMessage, error)
	// Restore puts back a position returned by State.
	Restore func(json.RawMessage) error
	// SaveFiles writes extra artifacts (an adapter, tokenizer, …) into a
	// checkpoint directory while it is being written.
	SaveFiles func(dir string) error
	// Epoch reports the fractional number of passes over the data, logged
	// as "epoch" when set.
	Epoch func() float64
	// Skip moves the stage's data past micro-batch micro of update step
	// without computing it: on more than one rank, each rank computes its
	// share of an update's micro-batches and skips the others' (see Comm).
	// It must advance all that Step would, so a Step that draws from
	// Loop.Rand cannot run on several ranks. A loop on several ranks
	// without Skip is an error.
	Skip func(step, micro int) error
}

// Config holds the loop's hyperparameters and where it writes.
type Config struct {
	Steps       int     // optimizer updates in total
	GradAccum   int     // micro-batches per update
	LR          float64 // peak learning rate
	Schedule    string  // "cosine", "linear" or "constant"
	WarmupSteps int     // linear warmup updates
	MinLRRatio  float64 // schedule floor as a fraction of LR
	Beta1       float64 // AdamW β₁
	Beta2       float64 // AdamW β₂
	Eps         float64 // AdamW ε
	WeightDecay float64 // AdamW λ (decoupled)
	MaxGradNorm float64 // clip the global gradient norm to this; 0 = off
	Seed        uint64  // seeds Loop.Rand
	// MoEAuxLossAlpha weights DeepSeek-V2's expert balance loss added to
	// the training loss of a mixture-of-experts model (0: off). The loop
	// does not read it: finetune adds the term to the programs it builds
	// (finetune.Model.SetMoEAuxLoss). Omitted from JSON when 0, so that
	// configurations without it keep their fingerprints.
	MoEAuxLossAlpha float64 `json:",omitempty"`
	// GradientCheckpointing recomputes each decoder layer's activations
	// in the backward pass instead of keeping them (model.GraphOptions.
	// Checkpoint): less memory, one more forward pass of compute, the
	// same results bit for bit. The loop does not read it: the stages
	// build their graphs with it. Not part of the fingerprint, since it
	// changes no result: a run may resume with it switched.
	GradientCheckpointing bool `json:"-"`

	Dir             string // metrics.jsonl and the state/ checkpoint go here
	LogEvery        int    // log every this many updates (and the last)
	EvalEvery       int    // run Eval every this many updates and at the end; 0 = only at the end
	CheckpointEvery int    // checkpoint every this many updates; 0 = only at the end or on interruption
	Quiet           bool   // no progress bar
	// Progress receives the progress bar (default os.Stderr); the bar is
	// drawn only when it is a terminal.
	Progress io.Writer
}

// DefaultConfig returns the usual AdamW settings (β = 0.9, 0.999, ε = 10⁻⁸,
// no weight decay), clipping at 1, a cosine schedule, one micro-batch per
// update and a log line per update.
func DefaultConfig() Config {
	return Config{
		Steps: 100, GradAccum: 1, LR: 1e-3, Schedule: "cosine",
		Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, MaxGradNorm: 1,
		LogEvery: 1, Seed: 1,
	}
}

// Keys of Config's settings: the flags of the training commands and the
// keys of their sections in a --config file. KeyPeakLR is the peak
// learning rate's key (KeyLR is the metric of the rate at each update);
// KeyBeta1, KeyBeta2 and KeyEps have no flag and name their fields in
// errors.
const (
	KeySteps       = "steps"
	KeyGradAccum   = "grad-accum"
	KeyPeakLR      = "lr"
	KeyWarmup      = "warmup"
	KeySchedule    = "schedule"
	KeyMinLRRatio  = "min-lr-ratio"
	KeyWeightDecay = "weight-decay"
	KeyMaxGradNorm = "max-grad-norm"
	KeySeed        = "seed"
	KeyLogEvery    = "log-every"
	KeyEvalEvery   = "eval-every"
	KeySaveEvery   = "save-every"
	KeyQuiet       = "quiet"
	KeyBeta1       = "beta1"
	KeyBeta2       = "beta2"
	KeyEps         = "eps"
	// KeyMoEAuxLossAlpha is the weight of the expert balance loss.
	KeyMoEAuxLossAlpha = "moe-aux-loss-alpha"
	// KeyGradientCheckpointing switches gradient checkpointing on.
	KeyGradientCheckpointing = "gradient-checkpointing"
)

// The learning-rate schedules (Config.Schedule).
const (
	scheduleCosine = "cosine"
	scheduleLinear = "linear"
	scheduleConst  = "constant"
)

// Validate reports the first invalid setting, naming its key. A zero or
// negative value where a positive one is needed is an error, never
// replaced by a default; Schedule "" is the cosine schedule.
func (c Config) Validate() error {
	switch {
	case c.Steps <= 0:
		return fmt.Errorf("%s must be positive, got %d", KeySteps, c.Steps)
	case c.GradAccum <= 0:
		return fmt.Errorf("%s must be positive, got %d", KeyGradAccum, c.GradAccum)
	case !(c.LR > 0) || math.IsInf(c.LR, 0):
		return fmt.Errorf("%s must be a positive finite number, got %g", KeyPeakLR, c.LR)
	case c.Schedule != "" && c.Schedule != scheduleCosine && c.Schedule != scheduleLinear && c.Schedule != scheduleConst:
		return fmt.Errorf("%s %q is unknown (want %s, %s or %s)", KeySchedule, c.Schedule, scheduleCosine, scheduleLinear, scheduleConst)
	case c.WarmupSteps < 0:
		return fmt.Errorf("%s must be ≥ 0, got %d", KeyWarmup, c.WarmupSteps)
	case !(c.MinLRRatio >= 0 && c.MinLRRatio <= 1):
		return fmt.Errorf("%s must be in [0, 1], got %g", KeyMinLRRatio, c.MinLRRatio)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("%s must be in [0, 1), got %g", KeyBeta1, c.Beta1)
	case !(c.Beta2 > 0 && c.Beta2 < 1):
		return fmt.Errorf("%s must be in (0, 1), got %g", KeyBeta2, c.Beta2)
	case !(c.Eps > 0):
		return fmt.Errorf("%s must be positive, got %g", KeyEps, c.Eps)
	case !(c.WeightDecay >= 0):
		return fmt.Errorf("%s must be ≥ 0, got %g", KeyWeightDecay, c.WeightDecay)
	case !(c.MaxGradNorm >= 0):
		return fmt.Errorf("%s must be ≥ 0 (0: no clipping), got %g", KeyMaxGradNorm, c.MaxGradNorm)
	case !(c.MoEAuxLossAlpha >= 0) || math.IsInf(c.MoEAuxLossAlpha, 0):
		return fmt.Errorf("%s must be a finite number ≥ 0 (0: off), got %g", KeyMoEAuxLossAlpha, c.MoEAuxLossAlpha)
	case c.LogEvery <= 0:
		return fmt.Errorf("%s must be positive, got %d", KeyLogEvery, c.LogEvery)
	case c.EvalEvery < 0:
		return fmt.Errorf("%s must be ≥ 0 (0: only at the end), got %d", KeyEvalEvery, c.EvalEvery)
	case c.CheckpointEvery < 0:
		return fmt.Errorf("%s must be ≥ 0 (0: only at the end), got %d", KeySaveEvery, c.CheckpointEvery)
	case c.Dir == "":
		return errors.New("output directory is not set")
	}
	return c.schedule().Validate()
}

func (c Config) schedule() Schedule {
	return Schedule{Kind: c.Schedule, LR: c.LR, WarmupSteps: c.WarmupSteps, TotalSteps: c.Steps, MinLRRatio: c.MinLRRatio}
}

// Loop runs the optimisation. Fill the exported fields, optionally call
// Resume, then Run.
type Loop struct {
	Config
	Params   []Param
	Step     StepFunc
	ZeroGrad func()                                     // clears the accumulated gradients
	Eval     func(ctx context.Context) (Metrics, error) // optional held-out evaluation, logged with an "eval_" prefix
	Hooks
	// Comm is the job's communicator; nil is internal/mpi's World, which
	// is one rank unless the binary has MPI and was started by mpirun.
	Comm Comm

	ready  bool
	comm   Comm
	rank   int
	size   int
	flat   []float32 // the gradients of all parameters, allreduced
	step   int       // updates completed
	opt    *AdamW
	pcg    *rand.PCG
	rng    *rand.Rand
	tokens float64 // tokens seen (sum of KeyTokens)
	tail   []map[string]float64
	acc    *interval // updates since the last logged record
	saved  int       // step of the last checkpoint written or resumed; -1 if none
	log    *metricsLog
}

// maxTail is how many logged records a checkpoint keeps.
const maxTail = 50

// StateDir is the checkpoint directory of a stage directory.
func StateDir(dir string) string { return filepath.Join(dir, "state") }

// MetricsFile is the metrics log of a stage directory.
func MetricsFile(dir string) string { return filepath.Join(dir, "metrics.jsonl") }

func (l *Loop) init() error {
	if l.ready {
		return nil
	}
	if err := l.Config.Validate(); err != nil {
		return fmt.Errorf("train: %w", err)
	}
	if l.Step == nil || l.ZeroGrad == nil {
		return errors.New("train: Loop needs Step and ZeroGrad")
	}
	if (l.Hooks.State == nil) != (l.Hooks.Restore == nil) {
		return errors.New("train: Hooks.State and Hooks.Restore go together")
	}
	seen := map[string]bool{}
	sizes := make([]int, len(l.Params))
	for i, p := range l.Params {
		if p.Name == "" || seen[p.Name] {
			return fmt.Errorf("train: parameter %d has an empty or duplicate name %q", i, p.Name)
		}
		seen[p.Name] = true
		if p.Grad == nil {
			return fmt.Errorf("train: parameter %s has no Grad", p.Name)
		}
		if n := shapeSize(p.shape()); n != len(p.Value) {
			return fmt.Errorf("train: parameter %s has shape %v but %d values", p.Name, p.Shape, len(p.Value))
		}
		sizes[i] = len(p.Value)
	}
	l.comm = l.Comm
	if l.comm == nil {
		l.comm = mpi.World()
	}
	l.rank, l.size = l.comm.Rank(), l.comm.Size()
	if l.size > 1 {
		if l.Hooks.Skip == nil {
			return fmt.Errorf("train: %d ranks run, but this stage does not run data-parallel (Hooks.Skip is not set)", l.size)
		}
		if l.GradAccum < l.size {
			return fmt.Errorf("train: %s is %d, fewer than the %d ranks; the ranks share an update's micro-batches, so each needs at least one (raise %s to a multiple of %d)", KeyGradAccum, l.GradAccum, l.size, KeyGradAccum, l.size)
		}
	}
	l.opt = NewAdamW(l.Beta1, l.Beta2, l.Eps, l.WeightDecay, sizes)
	l.pcg = rand.NewPCG(l.Seed, 0x5851f42d4c957f2d)
	l.rng = rand.New(l.pcg)
	l.saved = -1
	l.ready = true
	return nil
}

func (p Param) shape() []int {
	if p.Shape == nil {
		return []int{len(p.Value)}
	}
	return p.Shape
}

func shapeSize(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Rand is the loop's seeded random source, saved in checkpoints; a stage's
// data order and sampling must come from it for resumption to be exact.
func (l *Loop) Rand() *rand.Rand {
	if l.rng == nil {
		l.pcg = rand.NewPCG(l.Seed, 0x5851f42d4c957f2d)
		l.rng = rand.New(l.pcg)
	}
	return l.rng
}

// StepsDone is the number of updates completed (restored by Resume).
func (l *Loop) StepsDone() int { return l.step }

// Optimizer exposes the AdamW state (moments and update count).
func (l *Loop) Optimizer() *AdamW { return l.opt }

// LR is the learning rate of update step (0-based).
func (l *Loop) LR(step int) float64 { return l.Config.schedule().At(step) }

// snapshot is what a checkpoint records besides tensors, taken at the
// start of an update.
type snapshot struct {
	rng    []byte
	data   json.RawMessage
	tokens float64
	acc    LogInterval
}

func (l *Loop) snap() (snapshot, error) {
	b, err := l.pcg.MarshalBinary()
	if err != nil {
		return snapshot{}, err
	}
	s := snapshot{rng: b, tokens: l.tokens, acc: l.acc.save()}
	if l.Hooks.State != nil {
		if s.data, err = l.Hooks.State(); err != nil {
			return s, fmt.Errorf("train: saving stage state: %w", err)
		}
	}
	return s, nil
}

// Run trains until Config.Steps updates are done. Cancelling ctx writes a
// checkpoint of the last completed update and returns ctx.Err(). A
// non-finite loss or gradient norm stops the run with an error naming the
// update, without applying it and without overwriting the last good
// checkpoint.
func (l *Loop) Run(ctx context.Context) error {
	if err := l.init(); err != nil {
		return err
	}
	if l.size > 1 {
		if err := l.syncFromRoot(); err != nil {
			return err
		}
	}
	lead := l.rank == 0 // writes metrics, progress and checkpoints
	if lead {
		if err := os.MkdirAll(l.Dir, 0o755); err != nil {
			return fmt.Errorf("train: %w", err)
		}
		if l.step == 0 && l.saved < 0 {
			// A fresh run: lines left by an earlier attempt that never reached
			// a checkpoint are not part of this run.
			if err := truncateMetrics(MetricsFile(l.Dir), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		ml, err := openMetricsLog(MetricsFile(l.Dir))
		if err != nil {
			return err
		}
		l.log = ml
		defer func() { ml.Close(); l.log = nil }()
	}
	if lead && l.size > 1 && !l.Quiet {
		out := l.Progress
		if out == nil {
			out = os.Stderr
		}
		fmt.Fprintf(out, "train: %d ranks share each update's %d micro-batches; %d bytes allreduced per update\n", l.size, l.GradAccum, l.AllreduceBytes())
	}
	barCfg := l.Config
	barCfg.Quiet = barCfg.Quiet || !lead
	bar := newProgress(barCfg, l.step)
	defer bar.finish()

	grads := make([][]float32, len(l.Params))
	values := make([][]float32, len(l.Params))
	decay := make([]bool, len(l.Params))
	for i, p := range l.Params {
		values[i], decay[i] = p.Value, !p.NoDecay
	}
	if l.acc == nil {
		l.acc = newInterval()
	}
	for l.step < l.Steps {
		start, err := l.snap()
		if err != nil {
			return err
		}
		// On several ranks an interruption is agreed on after the
		// micro-batches (reduceMetrics), so that no rank is left waiting
		// in a collective call.
		if ctx.Err() != nil && l.size == 1 {
			return l.interrupted(ctx, start)
		}
		t0 := time.Now()
		sum := Metrics{}
		stopped := false
		for micro := range l.GradAccum {
			if l.size > 1 && micro%l.size != l.rank {
				if err := l.Hooks.Skip(l.step, micro); err != nil {
					return fmt.Errorf("train: update %d, skipping micro-batch %d: %w", l.step+1, micro, err)
				}
				continue
			}
			if stopped {
				continue
			}
			m, err := l.Step(ctx, l.step, micro)
			if err != nil {
				l.ZeroGrad()
				if ctx.Err() != nil && errors.Is(err, ctx.Err()) || l.size > 1 && errors.Is(err, ErrPeerInterrupted) {
					if l.size == 1 {
						return l.interrupted(ctx, start)
					}
					stopped = true
					continue
				}
				return fmt.Errorf("train: update %d, micro-batch %d: %w", l.step+1, micro, err)
			}
			if _, ok := m[KeyLoss]; !ok {
				return fmt.Errorf("train: update %d: the step function reported no %q", l.step+1, KeyLoss)
			}
			for k, v := range m {
				sum[k] += v
			}
		}
		if l.size > 1 {
			stop, err := l.reduceMetrics(sum, stopped || ctx.Err() != nil)
			if err != nil {
				return err
			}
			if stop {
				l.ZeroGrad()
				err := ctx.Err()
				if err == nil {
					err = ErrPeerInterrupted
				}
				return l.interruptedWith(err, start)
			}
		}
		step := Metrics{}
		for k, v := range sum {
			if k == KeyTokens {
				step[k] = v
			} else {
				step[k] = v / float64(l.GradAccum)
			}
		}
		loss := step[KeyLoss]
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			l.ZeroGrad()
			return l.nonFinite("loss", loss)
		}
		for i, p := range l.Params {
			grads[i] = p.Grad()
			if len(grads[i]) != len(p.Value) {
				return fmt.Errorf("train: parameter %s: gradient has %d values, want %d", p.Name, len(grads[i]), len(p.Value))
			}
		}
		if l.size > 1 {
			if err := l.reduceGrads(grads); err != nil {
				return err
			}
		}
		if l.GradAccum > 1 {
			scale(grads, 1/float64(l.GradAccum))
		}
		norm := ClipGlobalNorm(grads, l.MaxGradNorm)
		if math.IsNaN(norm) || math.IsInf(norm, 0) {
			l.ZeroGrad()
			return l.nonFinite("gradient norm", norm)
		}
		lr := l.LR(l.step)
		l.opt.Update(values, grads, decay, lr)
		l.ZeroGrad()
		l.step++
		l.tokens += step[KeyTokens]
		step[KeyLR] = lr
		step[KeyGradNorm] = norm
		l.acc.add(step, time.Since(t0))
		bar.update(l.step, loss, lr, l.acc.rate())

		last := l.step == l.Steps
		if l.step%l.LogEvery == 0 || last {
			if err := l.writeRecord(l.acc.record()); err != nil {
				return err
			}
			l.acc = newInterval()
		}
		if l.Eval != nil && ((l.EvalEvery > 0 && l.step%l.EvalEvery == 0) || last) {
			err := l.evaluate(ctx)
			if err != nil && !(ctx.Err() != nil && errors.Is(err, ctx.Err()) || l.size > 1 && errors.Is(err, ErrPeerInterrupted)) {
				return err
			}
			// The ranks agree on an interruption during the evaluation, so
			// that all of them stop here (and none waits for the others in
			// the next update).
			stop, aerr := l.agreeStop(ctx)
			if aerr != nil {
				return aerr
			}
			if stop || err != nil {
				cause := ctx.Err()
				if cause == nil {
					cause = ErrPeerInterrupted
				}
				return l.interruptedAfterStep(cause)
			}
		}
		if (l.CheckpointEvery > 0 && l.step%l.CheckpointEvery == 0) || last {
			if err := l.checkpointNow(); err != nil {
				return err
			}
		}
	}
	return nil
}

// interrupted writes a checkpoint of the state at the start of the update
// that was cut off (parameters and moments are untouched until an update
// completes) and returns the context's error.
func (l *Loop) interrupted(ctx context.Context, start snapshot) error {
	return l.interruptedWith(ctx.Err(), start)
}

// interruptedWith is interrupted returning cause; only rank 0 writes.
func (l *Loop) interruptedWith(cause error, start snapshot) error {
	var err error
	if l.saved != l.step && l.rank == 0 {
		err = l.writeCheckpoint(start)
	}
	if l.size > 1 {
		// The other ranks wait for rank 0's checkpoint: the job ends as
		// soon as any rank exits.
		if berr := l.comm.Bcast(make([]byte, 1), 0); berr != nil {
			err = errors.Join(err, fmt.Errorf("train: waiting for rank 0's checkpoint: %w", berr))
		}
	}
	if err != nil {
		return errors.Join(cause, err)
	}
	return cause
}

func (l *Loop) interruptedAfterStep(cause error) error {
	start, err := l.snap()
	if err != nil {
		return errors.Join(cause, err)
	}
	return l.interruptedWith(cause, start)
}

func (l *Loop) nonFinite(what string, v float64) error {
	where := "no checkpoint was written"
	if l.saved >= 0 {
		where = fmt.Sprintf("the last good checkpoint (update %d) is kept in %s", l.saved, StateDir(l.Dir))
	}
	return fmt.Errorf("train: update %d: %s is %v; stopped without applying it, %s", l.step+1, what, v, where)
}

func (l *Loop) evaluate(ctx context.Context) error {
	m, err := l.Eval(ctx)
	if err != nil {
		return fmt.Errorf("train: evaluation after update %d: %w", l.step, err)
	}
	rec := map[string]float64{KeyStep: float64(l.step)}
	if l.Hooks.Epoch != nil {
		rec[KeyEpoch] = l.Hooks.Epoch()
	}
	for k, v := range m {
		rec["eval_"+k] = v
	}
	return l.writeRecord(rec)
}

func (l *Loop) writeRecord(rec map[string]float64) error {
	rec[KeyStep] = float64(l.step)
	if l.Hooks.Epoch != nil {
		if _, ok := rec[KeyEpoch]; !ok {
			rec[KeyEpoch] = l.Hooks.Epoch()
		}
	}
	if _, ok := rec[KeyTokens]; ok {
		rec[KeyTokens] = l.tokens // cumulative, as TRL logs it
	}
	l.tail = append(l.tail, rec)
	if len(l.tail) > maxTail {
		l.tail = l.tail[len(l.tail)-maxTail:]
	}
	if l.log == nil { // not rank 0
		return nil
	}
	return l.log.Write(rec)
}

// checkpointNow writes a checkpoint of the current (between updates) state.
func (l *Loop) checkpointNow() error {
	if l.rank != 0 {
		return nil
	}
	s, err := l.snap()
	if err != nil {
		return err
	}
	return l.writeCheckpoint(s)
}

// Tail returns the most recent logged records (also kept in checkpoints).
func (l *Loop) Tail() []map[string]float64 { return l.tail }

// interval accumulates per-update metrics between two log lines.
type interval struct {
	sum     Metrics
	n       int
	tokens  float64
	elapsed time.Duration
}

func newInterval() *interval { return &interval{sum: Metrics{}} }

// save copies the interval into its checkpoint form, dropping non-finite
// sums, which JSON cannot hold. A nil interval is empty.
func (a *interval) save() LogInterval {
	if a == nil {
		return LogInterval{}
	}
	s := LogInterval{Updates: a.n, Seconds: a.elapsed.Seconds()}
	if a.n > 0 {
		s.Sums = finiteRecords([]map[string]float64{a.sum})[0]
	}
	return s
}

// restoreInterval rebuilds an interval saved by save; the zero LogInterval
// (absent from older checkpoints) gives an empty one.
func restoreInterval(s LogInterval) *interval {
	a := newInterval()
	maps.Copy(a.sum, s.Sums)
	a.n = s.Updates
	a.tokens = s.Sums[KeyTokens]
	a.elapsed = time.Duration(s.Seconds * float64(time.Second))
	return a
}

func (a *interval) add(m Metrics, d time.Duration) {
	for k, v := range m {
		a.sum[k] += v
	}
	a.n++
	a.tokens += m[KeyTokens]
	a.elapsed += d
}

// rate is tokens per second of compute time in the interval (0 if unknown).
func (a *interval) rate() float64 {
	if a.tokens == 0 || a.elapsed <= 0 {
		return 0
	}
	return a.tokens / a.elapsed.Seconds()
}

func (a *interval) record() map[string]float64 {
	rec := map[string]float64{}
	for k, v := range a.sum {
		rec[k] = v / float64(a.n)
	}
	if a.tokens > 0 {
		rec[KeyTokensPerSec] = a.rate()
		rec[KeyTokens] = a.tokens
	}
	return rec
}
