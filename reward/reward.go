package reward

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"path/filepath"

	"gorgonia.org/gorgonia"
	"gorgonia.org/tensor"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/train"
)

// Keys of Config: the flags of `gotune reward` and the keys under `reward:`
// in a --config file. The adapter's and the loop's settings have lora's and
// train's keys; HeadSeed is train.KeySeed's value. KeyHeadStd has no flag
// and names its field in errors.
const (
	KeyBase          = "base"
	KeySFTAdapter    = "sft-adapter"
	KeyData          = "data"
	KeyEvalData      = "eval-data"
	KeyHeldOut       = "held-out"
	KeyEvalPairs     = "eval-pairs"
	KeyOut           = "out"
	KeyResume        = "resume"
	KeyBatchSize     = "batch-size"
	KeyMaxLength     = "max-length"
	KeyEpochs        = "epochs"
	KeyCenterRewards = "center-rewards-coefficient"
	KeyHeadStd       = "head-std"
	KeyBaseDtype     = finetune.KeyBaseDtype
)

// Config is a reward-model training run. The model is the base (with the
// SFT adapter merged into it when one is given, the usual start of RLHF:
// Ouyang et al. 2022, §3.5) plus a fresh LoRA adapter on the backbone and a
// scalar head trained in full.
type Config struct {
	Base       string // base model directory (Hugging Face layout)
	SFTAdapter string // SFT adapter merged into the base first ("" for none)

	// Training pairs: Rows when given, else the preferences dataset at
	// Data (prompt, chosen, rejected, optional margin).
	Rows []data.Preference
	Data string
	// Held-out pairs: EvalRows when given, else the dataset at EvalData,
	// else a HeldOut share of the training pairs' prompts (0: none).
	EvalRows []data.Preference
	EvalData string
	HeldOut  float64

	EvalMax int    // held-out pairs evaluated at most (0: all)
	Out     string // stage directory: adapter/, state/, metrics.jsonl
	Resume  bool   // continue from the checkpoint in Out

	BatchSize int     // pairs per micro-batch (each pair is two sequences)
	MaxLength int     // tokens of prompt + completion + EOS at most; longer pairs are dropped, as TRL does (0: the model's positions)
	Epochs    float64 // passes over the training pairs when Train.Steps is 0
	HeadStd   float64 // standard deviation of the score head's initial weights (transformers' initializer_range)
	HeadSeed  uint64  // seed of the score head's initial weights
	// BaseDtype is how the frozen backbone (merged with the SFT adapter)
	// is held while training: finetune.BaseFloat32 (also "") or
	// finetune.BaseBFloat16 (half the memory of its matrices).
	BaseDtype string

	LoRA  lora.Config
	Loss  LossConfig
	Train train.Config // Steps 0 means Epochs passes
}

// DefaultConfig is the embedded default: 8 pairs per step for one epoch at a
// learning rate of 10⁻³ (a LoRA adapter of rank 8 on every linear module),
// a held-out tenth of the prompts, evaluated every 50 updates.
func DefaultConfig() Config {
	tc := train.DefaultConfig()
	tc.Steps, tc.LR, tc.WarmupSteps, tc.MinLRRatio = 0, 1e-3, 10, 0.1
	tc.LogEvery, tc.EvalEvery, tc.CheckpointEvery = 10, 50, 50
	lc := lora.DefaultConfig()
	lc.Targets = []string{lora.AllLinear}
	return Config{
		HeldOut: 0.1, BatchSize: 8, Epochs: 1, HeadStd: 0.02, HeadSeed: 1,
		BaseDtype: finetune.BaseFloat32, LoRA: lc, Train: tc,
	}
}

// Validate reports the first unusable setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Base == "":
		return fmt.Errorf("reward: %s (the base model directory) is not set", KeyBase)
	case finetune.CheckBaseDtype(c.BaseDtype) != nil:
		return fmt.Errorf("reward: %w", finetune.CheckBaseDtype(c.BaseDtype))
	case c.Rows == nil && c.Data == "":
		return fmt.Errorf("reward: %s (a preferences dataset) is not set and no pairs are given", KeyData)
	case c.Out == "":
		return fmt.Errorf("reward: %s (the output directory) is not set", KeyOut)
	case c.BatchSize <= 0:
		return fmt.Errorf("reward: %s must be positive, got %d", KeyBatchSize, c.BatchSize)
	case c.MaxLength < 0:
		return fmt.Errorf("reward: %s must be ≥ 0 (0: the model's positions), got %d", KeyMaxLength, c.MaxLength)
	case c.EvalMax < 0:
		return fmt.Errorf("reward: %s must be ≥ 0 (0: all), got %d", KeyEvalPairs, c.EvalMax)
	case !(c.HeldOut >= 0 && c.HeldOut < 1):
		return fmt.Errorf("reward: %s must lie in [0, 1), got %v", KeyHeldOut, c.HeldOut)
	case c.Train.Steps < 0:
		return fmt.Errorf("reward: %s must be ≥ 0 (0: %s passes), got %d", train.KeySteps, KeyEpochs, c.Train.Steps)
	case c.Train.Steps == 0 && !(c.Epochs > 0 && !math.IsInf(c.Epochs, 0)):
		return fmt.Errorf("reward: %s must be positive and finite when %s is 0, got %v", KeyEpochs, train.KeySteps, c.Epochs)
	case !(c.HeadStd >= 0) || math.IsInf(c.HeadStd, 0):
		return fmt.Errorf("reward: %s must be ≥ 0 and finite, got %v", KeyHeadStd, c.HeadStd)
	}
	if err := c.Loss.Validate(); err != nil {
		return err
	}
	if err := c.LoRA.Validate(); err != nil {
		return fmt.Errorf("reward: %w", err)
	}
	t := c.Train
	t.Dir = c.Out
	if t.Steps == 0 {
		t.Steps = 1 // Run sets the steps from Epochs once the pairs are counted
	}
	if err := t.Validate(); err != nil {
		return fmt.Errorf("reward: %w", err)
	}
	return nil
}

// Result summarises a finished run.
type Result struct {
	TrainPairs, EvalPairs int
	Dropped               int     // pairs longer than MaxLength, left out
	Steps                 int     // optimizer updates
	SeqLen                int     // T of the training graph
	Eval                  Metrics // final held-out metrics (zero without held-out pairs)
	AdapterDir            string
}

// Run trains a reward model and writes its adapter (LoRA + score head, PEFT
// task type SEQ_CLS) to <Out>/adapter.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if err := cfg.Validate(); err != nil {
		return Result{}, err
	}
	// Under mpirun only rank 0 writes to Out (see train.Comm).
	out, cleanup, err := train.RankDir(cfg.Out)
	if err != nil {
		return Result{}, fmt.Errorf("reward: %w", err)
	}
	defer cleanup()
	cfg.Out = out
	cfg.Train.Dir = cfg.Out
	resuming := cfg.Resume && train.HasCheckpoint(cfg.Out)
	if !resuming && train.HasCheckpoint(cfg.Out) {
		return Result{}, fmt.Errorf("reward: %s holds a training checkpoint; resume it or choose another output directory", cfg.Out)
	}
	m, err := finetune.OpenMerged(cfg.Base, cfg.SFTAdapter)
	if err != nil {
		return Result{}, err
	}
	if err := m.HoldBase(cfg.BaseDtype); err != nil {
		return Result{}, fmt.Errorf("reward: %w", err)
	}
	enc, err := finetune.NewSequenceEncoder(m.Tokenizer)
	if err != nil {
		return Result{}, err
	}
	limit := cfg.MaxLength
	if pos := m.Weights.Config.MaxPositionEmbeddings; limit == 0 || (pos > 0 && limit > pos) {
		limit = pos
	}
	ds, err := loadPairs(cfg, enc, limit)
	if err != nil {
		return Result{}, err
	}
	res := Result{TrainPairs: len(ds.train), EvalPairs: len(ds.eval), Dropped: ds.dropped, SeqLen: ds.T,
		AdapterDir: finetune.AdapterDir(cfg.Out)}

	if err := m.NewAdapter(cfg.LoRA); err != nil {
		return res, fmt.Errorf("reward: %w", err)
	}
	m.Extra[finetune.ScoreHead] = newHead(m.Weights.Config.HiddenSize, cfg.HeadStd, cfg.HeadSeed)
	if err := m.SetMoEAuxLoss(cfg.Train.MoEAuxLossAlpha); err != nil {
		return res, fmt.Errorf("reward: %w", err)
	}
	if err := m.SetGradientCheckpointing(cfg.Train.GradientCheckpointing); err != nil {
		return res, fmt.Errorf("reward: %w", err)
	}
	tr, err := newTrainer(m, cfg.Loss, cfg.BatchSize, ds.T)
	if err != nil {
		return res, err
	}
	if cfg.Train.Steps == 0 {
		perStep := float64(cfg.BatchSize * max(cfg.Train.GradAccum, 1))
		cfg.Train.Steps = max(1, int(math.Ceil(cfg.Epochs*float64(len(ds.train))/perStep)))
	}
	res.Steps = cfg.Train.Steps
	order := &pairOrder{N: len(ds.train), Seed: cfg.Train.Seed}
	loop := &train.Loop{
		Config:   cfg.Train,
		Params:   m.Params(),
		ZeroGrad: m.ZeroGrad,
		Step: m.LogMoE(func(ctx context.Context, step, micro int) (train.Metrics, error) {
			// Dropout masks are a function of the micro-batch's number, so
			// a resumed run draws the ones an uninterrupted run would.
			m.Adapter.SeedDropout(cfg.Train.Seed, uint64(step*cfg.Train.GradAccum+micro)+1)
			m.Adapter.ResampleDropout()
			batch := make([]Pair, cfg.BatchSize)
			for i := range batch {
				batch[i] = ds.train[order.Next()]
			}
			return tr.step(batch, ds.margins)
		}),
		Hooks: train.Hooks{
			State:   order.State,
			Restore: order.Restore,
			Epoch:   order.Progress,
			// Another rank's micro-batch: take its pairs off the order unseen.
			Skip: func(step, micro int) error {
				for range cfg.BatchSize {
					order.Next()
				}
				return nil
			},
			// Each checkpoint holds a loadable adapter too.
			SaveFiles: func(dir string) error { return m.SaveAdapter(filepath.Join(dir, "adapter"), finetune.RewardTaskType) },
		},
	}
	if len(ds.eval) > 0 {
		sc, err := finetune.NewScorer(m, 2*cfg.BatchSize, ds.T)
		if err != nil {
			return res, err
		}
		evalPairs := ds.eval
		if cfg.EvalMax > 0 && len(evalPairs) > cfg.EvalMax {
			evalPairs = evalPairs[:cfg.EvalMax]
		}
		loop.Eval = func(ctx context.Context) (train.Metrics, error) {
			met, err := Evaluate(ctx, sc, cfg.Loss, evalPairs, ds.margins)
			if err != nil {
				return nil, err
			}
			res.Eval = met
			return met.Map(""), nil
		}
	}
	if resuming {
		if err := loop.Resume(); err != nil {
			return res, fmt.Errorf("reward: %w", err)
		}
	}
	if err := loop.Run(ctx); err != nil {
		return res, err
	}
	if err := m.SaveAdapter(res.AdapterDir, finetune.RewardTaskType); err != nil {
		return res, fmt.Errorf("reward: %w", err)
	}
	if err := m.CopyTokenizer(res.AdapterDir); err != nil {
		return res, fmt.Errorf("reward: %w", err)
	}
	return res, nil
}

// newHead returns a (1, C) score head drawn from N(0, std²).
func newHead(C int, std float64, seed uint64) *tensor.Dense {
	t := model.NewTensor(1, C)
	r := rand.New(rand.NewPCG(seed, 0x5c0e))
	w := model.F32(t)
	for i := range w {
		w[i] = float32(r.NormFloat64() * std)
	}
	return t
}

// pairSet is a run's encoded data.
type pairSet struct {
	train, eval []Pair
	dropped     int
	margins     bool // the data has a margin column
	T           int  // longest sequence kept
}

// rowSource calls fn with every preference row of a dataset.
type rowSource struct {
	name   string
	stream func(fn func(row int, p data.Preference) error) error
}

func fileRows(path string) rowSource {
	return rowSource{path, func(fn func(int, data.Preference) error) error { return data.StreamPreferences(path, fn) }}
}

func givenRows(name string, rows []data.Preference) rowSource {
	return rowSource{name, func(fn func(int, data.Preference) error) error {
		for i, p := range rows {
			if err := fn(i, p); err != nil {
				return err
			}
		}
		return nil
	}}
}

// loadPairs encodes the training and held-out pairs, dropping pairs longer
// than limit tokens.
func loadPairs(cfg Config, enc *finetune.SequenceEncoder, limit int) (pairSet, error) {
	var ps pairSet
	read := func(src rowSource, split bool) (trainPairs, heldPairs []Pair, err error) {
		err = src.stream(func(row int, p data.Preference) error {
			pr, err := encodePair(enc, p, row)
			if err != nil {
				return fmt.Errorf("%s: row %d: %w", src.name, row+1, err)
			}
			if p.Margin != nil {
				ps.margins = true
			}
			if limit > 0 && (len(pr.Chosen) > limit || len(pr.Rejected) > limit) {
				ps.dropped++
				return nil
			}
			ps.T = max(ps.T, len(pr.Chosen), len(pr.Rejected))
			if split && heldOut(p, cfg.HeldOut) {
				heldPairs = append(heldPairs, pr)
			} else {
				trainPairs = append(trainPairs, pr)
			}
			return nil
		})
		return trainPairs, heldPairs, err
	}
	src := fileRows(cfg.Data)
	if cfg.Rows != nil {
		src = givenRows("the training pairs", cfg.Rows)
	}
	var evalSrc *rowSource
	switch {
	case cfg.EvalRows != nil:
		s := givenRows("the held-out pairs", cfg.EvalRows)
		evalSrc = &s
	case cfg.EvalData != "":
		s := fileRows(cfg.EvalData)
		evalSrc = &s
	}
	var err error
	if ps.train, ps.eval, err = read(src, evalSrc == nil); err != nil {
		return ps, fmt.Errorf("reward: %w", err)
	}
	if evalSrc != nil {
		// Without splitting, read returns every row as its first result.
		if ps.eval, _, err = read(*evalSrc, false); err != nil {
			return ps, fmt.Errorf("reward: %w", err)
		}
	}
	if len(ps.train) == 0 {
		return ps, fmt.Errorf("reward: no training pairs left in %s (%d longer than %d tokens)", src.name, ps.dropped, limit)
	}
	return ps, nil
}

// heldOut decides a pair's side by a hash of its prompt, so that all pairs
// of one prompt fall on the same side.
func heldOut(p data.Preference, share float64) bool {
	if share <= 0 {
		return false
	}
	h := fnv.New64a()
	h.Write([]byte(p.Prompt))
	h.Write([]byte(data.JoinContents(p.PromptMessages)))
	return float64(h.Sum64()>>11)/(1<<53) < share
}

// trainer is the training program: 2P sequences per run, the P chosen
// ones first, scored at their last tokens and fed to the Bradley–Terry
// loss.
type trainer struct {
	prog *finetune.Program
	loss *Step
	last []int // (2P) index in the (B·T) scores of each sequence's last token
	P, T int
	pad  int32
}

func newTrainer(m *finetune.Model, lc LossConfig, P, T int) (*trainer, error) {
	tr := &trainer{loss: &Step{Config: lc}, last: make([]int, 2*P), P: P, T: T, pad: int32(m.Tokenizer.PAD())}
	p, err := m.Program("reward-train", 2*P, T, true, func(g *model.Graph, extra map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		s, err := finetune.ScoreNode(g, extra)
		if err != nil {
			return nil, nil, err
		}
		return g.FuncLoss("bradley-terry", tr.lossFunc, s), nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reward: %w", err)
	}
	tr.prog = p
	return tr, nil
}

// lossFunc gathers the (2P) rewards from the scores at every position and
// scatters their gradient back.
func (tr *trainer) lossFunc(in [][]float64) (float64, [][]float64) {
	s := in[0]
	r := make([]float64, len(tr.last))
	for i, at := range tr.last {
		r[i] = s[at]
	}
	loss, g := tr.loss.StackedLoss([][]float64{r})
	grad := make([]float64, len(s))
	for i, at := range tr.last {
		grad[at] = g[0][i]
	}
	return loss, [][]float64{grad}
}

// step runs forward and backward on one micro-batch of pairs.
func (tr *trainer) step(batch []Pair, margins bool) (train.Metrics, error) {
	in := tr.prog.Graph.In
	tr.loss.Margin = nil
	if margins {
		tr.loss.Margin = make([]float64, tr.P)
	}
	tokens := 0
	for p, pr := range batch {
		finetune.FillRow(in, tr.T, p, pr.Chosen, tr.pad)
		finetune.FillRow(in, tr.T, tr.P+p, pr.Rejected, tr.pad)
		tr.last[p] = p*tr.T + len(pr.Chosen) - 1
		tr.last[tr.P+p] = (tr.P+p)*tr.T + len(pr.Rejected) - 1
		if margins {
			tr.loss.Margin[p] = pr.Margin
		}
		tokens += len(pr.Chosen) + len(pr.Rejected)
	}
	if err := tr.prog.Run(); err != nil {
		return nil, fmt.Errorf("reward: %w", err)
	}
	met := train.Metrics(tr.loss.Last.Metrics.Map(""))
	met[train.KeyTokens] = float64(tokens)
	return met, nil
}

// Evaluate scores held-out pairs with sc and returns the loss and metrics
// over all of them (margins are used when the data has them).
func Evaluate(ctx context.Context, sc *finetune.Scorer, lc LossConfig, pairs []Pair, margins bool) (Metrics, error) {
	if len(pairs) == 0 {
		return Metrics{}, errors.New("reward: no pairs to evaluate")
	}
	seqs := make([][]int, 0, 2*len(pairs))
	for _, p := range pairs {
		seqs = append(seqs, p.Chosen)
	}
	for _, p := range pairs {
		seqs = append(seqs, p.Rejected)
	}
	s, err := sc.Score(ctx, seqs)
	if err != nil {
		return Metrics{}, err
	}
	var m []float64
	if margins {
		m = make([]float64, len(pairs))
		for i, p := range pairs {
			m[i] = p.Margin
		}
	}
	out, err := lc.Compute(s[:len(pairs)], s[len(pairs):], m)
	if err != nil {
		return Metrics{}, err
	}
	return out.Metrics, nil
}

// pairOrder walks the training pairs in a fresh seeded permutation every
// epoch; Epoch and Pos are its resumable state.
type pairOrder struct {
	N     int    `json:"-"`
	Seed  uint64 `json:"-"`
	Epoch int    `json:"epoch"`
	Pos   int    `json:"pos"`
	perm  []int
	of    int // epoch of perm
}

// Next returns the index of the next pair.
func (o *pairOrder) Next() int {
	if o.Pos >= o.N {
		o.Epoch, o.Pos = o.Epoch+1, 0
	}
	if o.perm == nil || o.of != o.Epoch {
		o.perm = rand.New(rand.NewPCG(o.Seed, uint64(o.Epoch))).Perm(o.N)
		o.of = o.Epoch
	}
	i := o.perm[o.Pos]
	o.Pos++
	return i
}

// Progress is the fractional number of epochs done.
func (o *pairOrder) Progress() float64 { return float64(o.Epoch) + float64(o.Pos)/float64(o.N) }

// State returns the position as JSON.
func (o *pairOrder) State() (json.RawMessage, error) { return json.Marshal(o) }

// Restore puts back a position from State.
func (o *pairOrder) Restore(raw json.RawMessage) error {
	var s pairOrder
	if err := json.Unmarshal(raw, &s); err != nil {
		return err
	}
	if s.Epoch < 0 || s.Pos < 0 || s.Pos > o.N {
		return fmt.Errorf("pair position (epoch %d, pos %d) is outside %d pairs", s.Epoch, s.Pos, o.N)
	}
	o.Epoch, o.Pos, o.perm = s.Epoch, s.Pos, nil
	return nil
}
