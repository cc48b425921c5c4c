package dpo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"gorgonia.org/gorgonia"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/model/hf"
	"github.com/gotune/gotune/train"
)

// testHookStep, when set (by tests), is called before every micro-batch.
var testHookStep func(step, micro int)

// TaskType is the PEFT task type of the DPO adapter.
const TaskType = "CAUSAL_LM"

// BaseDir is where a run keeps the base with the SFT adapter merged.
func BaseDir(out string) string { return filepath.Join(out, "base") }

// DataDir is where a run keeps the datasets it made, imported or extended.
func DataDir(out string) string { return filepath.Join(out, "data") }

// Run trains a DPO adapter as cfg says and writes it to <Out>/adapter.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Base == "" && cfg.SFTAdapter != "" {
		pc, err := lora.ReadConfig(cfg.SFTAdapter)
		if err != nil {
			return nil, fmt.Errorf("dpo: SFT adapter: %w", err)
		}
		cfg.Base = pc.BaseModelNameOrPath
	}
	if cfg.Truncation == "" {
		cfg.Truncation = data.TruncateKeepStart
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// Under mpirun only rank 0 writes to Out (see train.Comm).
	out, cleanup, err := train.RankDir(cfg.Out)
	if err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	defer cleanup()
	cfg.Out = out
	cfg.Train.Dir = cfg.Out
	resuming := cfg.Resume && train.HasCheckpoint(cfg.Out)
	if !resuming && train.HasCheckpoint(cfg.Out) {
		return nil, fmt.Errorf("dpo: %s holds a training checkpoint; resume it or choose another output directory", cfg.Out)
	}
	if err := os.MkdirAll(DataDir(cfg.Out), 0o755); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	m, err := openPolicy(cfg)
	if err != nil {
		return nil, err
	}
	buckets := cfg.buckets()
	if mp := m.Weights.Config.MaxPositionEmbeddings; mp > 0 && buckets[len(buckets)-1] > mp {
		return nil, fmt.Errorf("dpo: rows of up to %d tokens exceed the model's %d positions (lower max length or buckets)", buckets[len(buckets)-1], mp)
	}
	ds, err := loadData(ctx, cfg, m, resuming)
	if err != nil {
		return nil, err
	}
	if err := m.SetMoEAuxLoss(cfg.Train.MoEAuxLossAlpha); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	if err := m.SetGradientCheckpointing(cfg.Train.GradientCheckpointing); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	tr := newTrainer(m, cfg.Loss, cfg.Pairs, buckets)
	tr.live = !cfg.PrecomputeRef && cfg.Loss.typ() != SimPO
	if cfg.PrecomputeRef && cfg.Loss.typ() != SimPO {
		if err := tr.precompute(ctx, ds.files); err != nil {
			return nil, err
		}
	}
	tr.order = &order{Seed: cfg.Train.Seed, N: len(ds.train)}
	tr.train, tr.eval = ds.train, ds.eval
	if cfg.EvalMax > 0 && len(tr.eval) > cfg.EvalMax {
		tr.eval = tr.eval[:cfg.EvalMax]
	}

	loop := &train.Loop{
		Config:   cfg.Train,
		Params:   m.Params(),
		ZeroGrad: m.ZeroGrad,
		Step: m.LogMoE(func(ctx context.Context, step, micro int) (train.Metrics, error) {
			// Dropout masks are a function of the update and micro-batch,
			// so a resumed run draws the ones an uninterrupted run would.
			m.Adapter.SeedDropout(cfg.Train.Seed, uint64(step)*uint64(cfg.Train.GradAccum)+uint64(micro))
			if testHookStep != nil {
				testHookStep(step, micro)
			}
			return tr.step(ctx)
		}),
		Hooks: train.Hooks{
			State:   tr.order.state,
			Restore: tr.order.restore,
			Epoch:   tr.order.epoch,
			// Another rank's micro-batch: take its pairs off the order unseen.
			Skip:      func(step, micro int) error { tr.order.take(tr.P); return nil },
			SaveFiles: func(dir string) error { return m.SaveAdapter(dir, TaskType) },
		},
	}
	if len(tr.eval) > 0 {
		loop.Eval = func(ctx context.Context) (train.Metrics, error) {
			ev, err := tr.evaluate(ctx, tr.eval)
			if err != nil {
				return nil, err
			}
			tr.last = ev
			return ev.Map(""), nil
		}
	}
	if resuming {
		if err := loop.Resume(); err != nil {
			return nil, fmt.Errorf("dpo: %w", err)
		}
	}
	if err := loop.Run(ctx); err != nil {
		return nil, err
	}
	if tr.last == nil && len(tr.eval) > 0 { // a finished run resumed: nothing ran
		if tr.last, err = tr.evaluate(ctx, tr.eval); err != nil {
			return nil, err
		}
	}
	adapter := finetune.AdapterDir(cfg.Out)
	if err := m.SaveAdapter(adapter, TaskType); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	if err := m.CopyTokenizer(adapter); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	return &Result{TrainPairs: len(tr.train), EvalPairs: len(tr.eval), Truncation: ds.report,
		Eval: tr.last, AdapterDir: adapter, BaseDir: m.BaseDir}, nil
}

// openPolicy loads the base, merges the SFT adapter into it (writing the
// merged model to <Out>/base, the DPO adapter's base) and attaches a fresh
// DPO adapter.
func openPolicy(cfg Config) (*finetune.Model, error) {
	m, err := finetune.Open(cfg.Base)
	if err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	if cfg.SFTAdapter != "" {
		if err := m.LoadAdapter(cfg.SFTAdapter); err != nil {
			return nil, fmt.Errorf("dpo: SFT adapter: %w", err)
		}
		if len(m.Extra) > 0 {
			names := make([]string, 0, len(m.Extra))
			for k := range m.Extra {
				names = append(names, k)
			}
			return nil, fmt.Errorf("dpo: SFT adapter %s has modules_to_save %v, which cannot be merged into a causal LM", cfg.SFTAdapter, names)
		}
		if err := m.MergeAdapter(); err != nil {
			return nil, fmt.Errorf("dpo: %w", err)
		}
		dir := BaseDir(cfg.Out)
		if err := hf.SaveModel(dir, m.Weights, hf.SaveOptions{}); err != nil {
			return nil, fmt.Errorf("dpo: merged base: %w", err)
		}
		if err := m.CopyTokenizer(dir); err != nil {
			return nil, fmt.Errorf("dpo: merged base: %w", err)
		}
		m.BaseDir = dir
	}
	if err := m.HoldBase(cfg.BaseDtype); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	if err := m.NewAdapter(cfg.LoRA); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	return m, nil
}

// dataset is one preference file of the run and its tokenized pairs.
type dataset struct {
	path  string // where the rows are read
	own   string // where the run writes its own copy (<Out>/data/<name>.arrow)
	rows  int
	pairs []*pair
}

// runData are a run's datasets and the pairs trained and evaluated on.
type runData struct {
	files       []*dataset
	train, eval []*pair
	report      data.TruncationReport
}

// loadData reads (making, importing or reusing as needed) the training and
// held-out preference datasets and tokenizes them.
func loadData(ctx context.Context, cfg Config, m *finetune.Model, resuming bool) (*runData, error) {
	// materialize returns the path of a dataset: the run's own copy when
	// resuming with one, the given rows written into the run, the given
	// Arrow dataset, or the given file imported.
	materialize := func(rows []data.Preference, src, name string) (*dataset, error) {
		own := filepath.Join(DataDir(cfg.Out), name+".arrow")
		d := &dataset{path: own, own: own}
		_, err := os.Stat(own)
		switch {
		case resuming && err == nil:
		case rows != nil:
			if err := data.WritePreferences(own, rows); err != nil {
				return nil, fmt.Errorf("dpo: %w", err)
			}
		case isArrow(src):
			d.path = src
		default:
			opts := data.DefaultImportOptions()
			opts.Kind = data.KindPreferences
			if _, err := data.ImportContext(ctx, src, own, opts); err != nil {
				return nil, fmt.Errorf("dpo: import %s: %w", src, err)
			}
		}
		return d, nil
	}
	rd := &runData{}
	tf, err := materialize(cfg.Rows, cfg.Data, "train")
	if err != nil {
		return nil, err
	}
	rd.files = append(rd.files, tf)
	var ef *dataset
	if cfg.EvalRows != nil || cfg.EvalData != "" {
		if ef, err = materialize(cfg.EvalRows, cfg.EvalData, "eval"); err != nil {
			return nil, err
		}
		rd.files = append(rd.files, ef)
	}

	enc := &encoder{tok: m.Tokenizer, template: cfg.ChatTemplate}
	fit := data.BatchOptions{MaxLen: cfg.MaxLen, PadID: m.Tokenizer.PAD(), Truncation: cfg.Truncation}
	for i, d := range rd.files {
		rows, err := data.ReadPreferences(d.path)
		if err != nil {
			return nil, fmt.Errorf("dpo: %w", err)
		}
		ps, err := encodePairs(i, rows, enc, fit, &rd.report)
		if err != nil {
			return nil, fmt.Errorf("dpo: %s: %w", d.path, err)
		}
		d.rows = len(rows)
		for j := range ps {
			d.pairs = append(d.pairs, &ps[j])
		}
	}
	rd.train = tf.pairs
	if ef != nil {
		rd.eval = ef.pairs
	} else if cfg.HeldOut > 0 && len(tf.pairs) > 1 {
		// Hold out a seeded random subset of the pairs.
		n := max(1, int(math.Round(cfg.HeldOut*float64(len(tf.pairs)))))
		perm := rand.New(rand.NewPCG(cfg.Train.Seed, 0x4e1d)).Perm(len(tf.pairs))
		held := make([]bool, len(tf.pairs))
		for _, j := range perm[:n] {
			held[j] = true
		}
		rd.train = nil
		for j, p := range tf.pairs {
			if held[j] {
				rd.eval = append(rd.eval, p)
			} else {
				rd.train = append(rd.train, p)
			}
		}
	}
	if len(rd.train) == 0 {
		return nil, fmt.Errorf("dpo: no training pairs left in %s (%d rows; %v)", tf.path, tf.rows, rd.report)
	}
	return rd, nil
}

// isArrow reports whether path is an Arrow dataset (a .arrow file or a
// directory of shards) rather than a file to import.
func isArrow(path string) bool {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return true
	}
	return strings.EqualFold(filepath.Ext(path), ".arrow")
}

// trainer holds the model's DPO programs (one per length bucket) and the
// state of the loss.
type trainer struct {
	m       *finetune.Model
	loss    LossConfig
	P       int
	buckets []int
	pad     int
	live    bool // run the reference beside every training step

	st          Step // the loss function's batch, shared by the training programs
	order       *order
	train, eval []*pair
	evalRef     [][2]float64 // reference sums of the eval pairs, computed once
	last        *Evaluation

	ref []float64 // reference per-token log-probs of the current batch
}

func newTrainer(m *finetune.Model, loss LossConfig, P int, buckets []int) *trainer {
	return &trainer{m: m, loss: loss, P: P, buckets: buckets, pad: m.Tokenizer.PAD(), st: Step{Config: loss}}
}

// lossHead puts the DPO loss on a graph of 2P rows: the per-token target
// log-probabilities, summed over each row's completion and combined into
// the pairs' loss by s.TokenLoss.
func lossHead(g *model.Graph, s *Step) *gorgonia.Node {
	return g.FuncLoss("dpo", s.TokenLoss, g.TargetLogProbs())
}

// trainProgram is the training program for rows of T tokens.
func (tr *trainer) trainProgram(T int) (*finetune.Program, error) {
	return tr.m.Program("dpo", 2*tr.P, T, true, func(g *model.Graph, _ map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		return lossHead(g, &tr.st), nil, nil
	})
}

// logpsProgram is the forward-only program giving per-token log-probs.
func (tr *trainer) logpsProgram(T int) (*finetune.Program, error) {
	return tr.m.Program("dpo-logps", 2*tr.P, T, false, func(g *model.Graph, _ map[string]*gorgonia.Node) (*gorgonia.Node, []*gorgonia.Node, error) {
		return nil, []*gorgonia.Node{g.TargetLogProbs()}, nil
	})
}

// batch gathers pairs into one batch of a bucket's length.
func (tr *trainer) batch(ps []*pair) (data.Batch, int) {
	n := 0
	for _, p := range ps {
		n = max(n, p.maxLen())
	}
	T := bucket(tr.buckets, n)
	return collate(ps, T, tr.pad), T
}

func fill(p *finetune.Program, b data.Batch) {
	copy(p.Graph.In.Tokens, b.Inputs)
	copy(p.Graph.In.Targets, b.Targets)
}

func maskOf(b data.Batch, dst []float64) []float64 {
	dst = grow(dst, len(b.Weights))
	for i, w := range b.Weights {
		dst[i] = float64(w)
	}
	return dst
}

func grow(s []float64, n int) []float64 {
	if cap(s) < n {
		return make([]float64, n)
	}
	return s[:n]
}

// logps runs the forward-only program on a batch, with the adapter on or
// off, and returns the per-token log-probs (valid until the next run) and
// the graph's per-token mean logits.
func (tr *trainer) logps(b data.Batch, T int, adapter bool) ([]float32, []float32, error) {
	p, err := tr.logpsProgram(T)
	if err != nil {
		return nil, nil, err
	}
	fill(p, b)
	if !adapter {
		tr.m.Adapter.SetEnabled(false)
		defer tr.m.Adapter.SetEnabled(true)
	}
	if err := p.Run(); err != nil {
		return nil, nil, err
	}
	ml, _ := p.Graph.TokenStats()
	return model.Value32(p.Out[0]), ml, nil
}

// step runs forward and backward on the next P pairs.
func (tr *trainer) step(ctx context.Context) (train.Metrics, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	idx := tr.order.take(tr.P)
	ps := make([]*pair, len(idx))
	for i, j := range idx {
		ps[i] = tr.train[j]
	}
	b, T := tr.batch(ps)
	s := &tr.st
	s.T, s.Mask = T, maskOf(b, s.Mask)
	s.Ref, s.RefTokenLogps = Pairs{}, nil
	switch {
	case tr.loss.typ() == SimPO: // reference-free
	case tr.live:
		ref, _, err := tr.logps(b, T, false)
		if err != nil {
			return nil, err
		}
		tr.ref = grow(tr.ref, len(ref))
		for i, v := range ref {
			tr.ref[i] = float64(v)
		}
		s.RefTokenLogps = tr.ref
	default:
		for _, p := range ps {
			s.Ref.RefChosen = append(s.Ref.RefChosen, p.refChosen)
			s.Ref.RefRejected = append(s.Ref.RefRejected, p.refRejected)
		}
	}
	prog, err := tr.trainProgram(T)
	if err != nil {
		return nil, err
	}
	fill(prog, b)
	tr.m.Adapter.ResampleDropout()
	if err := prog.Run(); err != nil {
		return nil, err
	}
	met := train.Metrics(s.Last.Metrics.Map(""))
	ml, _ := prog.Graph.TokenStats()
	met["logits/chosen"], met["logits/rejected"] = sideMeans(ml, s.Mask, T, len(ps))
	tokens := 0
	for _, n := range b.Lengths {
		tokens += n
	}
	met[train.KeyTokens] = float64(tokens)
	return met, nil
}

// sideMeans returns the mean of per-token values over the completion tokens
// of the chosen rows (0…P−1) and of the rejected rows (P…2P−1).
func sideMeans(v []float32, mask []float64, T, P int) (chosen, rejected float64) {
	var sum, n [2]float64
	for i, w := range mask {
		side := 0
		if i/T >= P {
			side = 1
		}
		sum[side] += w * float64(v[i])
		n[side] += w
	}
	return sum[0] / max(n[0], 1), sum[1] / max(n[1], 1)
}

// sideSums are per-pair summed completion log-probs and token counts, and
// the summed mean logits over completion tokens, of a set of pairs.
type sideSums struct {
	chosen, rejected []float64
	nc, nr           []float64
	logit            [2]float64 // Σ mean logit over chosen / rejected completion tokens
}

// sums runs the forward-only program over pairs, P at a time (the last
// batch padded with repeats of the first pair, which are ignored).
func (tr *trainer) sums(ctx context.Context, pairs []*pair, adapter bool) (*sideSums, error) {
	out := &sideSums{}
	var mask []float64
	for k := 0; k < len(pairs); k += tr.P {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ps := make([]*pair, tr.P)
		for i := range ps {
			ps[i] = pairs[0]
			if k+i < len(pairs) {
				ps[i] = pairs[k+i]
			}
		}
		b, T := tr.batch(ps)
		lp, ml, err := tr.logps(b, T, adapter)
		if err != nil {
			return nil, err
		}
		mask = maskOf(b, mask)
		vals := make([]float64, len(lp))
		for i, v := range lp {
			vals[i] = float64(v)
		}
		s, c := RowSums(vals, mask, T)
		n := min(tr.P, len(pairs)-k)
		out.chosen = append(out.chosen, s[:n]...)
		out.rejected = append(out.rejected, s[tr.P:tr.P+n]...)
		out.nc = append(out.nc, c[:n]...)
		out.nr = append(out.nr, c[tr.P:tr.P+n]...)
		for r := range 2 * tr.P {
			if r%tr.P >= n {
				continue
			}
			side := r / tr.P
			for j := r * T; j < (r+1)*T; j++ {
				out.logit[side] += mask[j] * float64(ml[j])
			}
		}
	}
	return out, nil
}

// evaluate measures the policy on pairs against the reference (stored
// reference values when every pair has them, else the adapter-off model,
// computed once).
func (tr *trainer) evaluate(ctx context.Context, pairs []*pair) (*Evaluation, error) {
	if len(pairs) == 0 {
		return nil, errors.New("dpo: no pairs to evaluate")
	}
	tr.m.Adapter.SetDropoutActive(false)
	defer tr.m.Adapter.SetDropoutActive(true)
	pol, err := tr.sums(ctx, pairs, true)
	if err != nil {
		return nil, err
	}
	if len(tr.evalRef) != len(pairs) {
		tr.evalRef = make([][2]float64, len(pairs))
		stored := true
		for _, p := range pairs {
			stored = stored && p.hasRef()
		}
		if stored && !tr.live {
			for i, p := range pairs {
				tr.evalRef[i] = [2]float64{p.refChosen, p.refRejected}
			}
		} else {
			ref, err := tr.sums(ctx, pairs, false)
			if err != nil {
				tr.evalRef = nil
				return nil, err
			}
			for i := range pairs {
				tr.evalRef[i] = [2]float64{ref.chosen[i], ref.rejected[i]}
			}
		}
	}
	in := Pairs{PolicyChosen: pol.chosen, PolicyRejected: pol.rejected, ChosenTokens: pol.nc, RejectedTokens: pol.nr}
	ev := &Evaluation{Pairs: len(pairs)}
	var tc, tj float64
	for i := range pairs {
		in.RefChosen = append(in.RefChosen, tr.evalRef[i][0])
		in.RefRejected = append(in.RefRejected, tr.evalRef[i][1])
		if pol.chosen[i] > pol.rejected[i] {
			ev.PolicyPrefersChosen++
		}
		if tr.evalRef[i][0] > tr.evalRef[i][1] {
			ev.ReferencePrefersChosen++
		}
		tc += pol.nc[i]
		tj += pol.nr[i]
	}
	n := float64(len(pairs))
	ev.PolicyPrefersChosen /= n
	ev.ReferencePrefersChosen /= n
	ev.LogitsChosen, ev.LogitsRejected = pol.logit[0]/max(tc, 1), pol.logit[1]/max(tj, 1)
	out, err := tr.loss.Compute(in)
	if err != nil {
		return nil, err
	}
	ev.Metrics = out.Metrics
	return ev, nil
}

// precompute gives every pair its reference log-probabilities (TRL's
// precompute_ref_log_probs): a file whose pairs all carry them already is
// used as it is; otherwise one pass with the adapter off computes them and
// they are stored as the ref_chosen_logps and ref_rejected_logps columns of
// the run's copy of the file (NaN on rows dropped by truncation).
func (tr *trainer) precompute(ctx context.Context, files []*dataset) error {
	for _, f := range files {
		stored := true
		for _, p := range f.pairs {
			stored = stored && p.hasRef()
		}
		if stored || len(f.pairs) == 0 {
			continue
		}
		ref, err := tr.sums(ctx, f.pairs, false)
		if err != nil {
			return fmt.Errorf("dpo: reference log-probs of %s: %w", f.path, err)
		}
		rc, rr := make([]float64, f.rows), make([]float64, f.rows)
		for i := range rc {
			rc[i], rr[i] = math.NaN(), math.NaN()
		}
		for i, p := range f.pairs {
			p.refChosen, p.refRejected = ref.chosen[i], ref.rejected[i]
			rc[p.row], rr[p.row] = p.refChosen, p.refRejected
		}
		cols := map[string][]float64{data.ColRefChosenLogps: rc, data.ColRefRejectedLogps: rr}
		if err := data.AddFloat64Columns(f.path, f.own, cols); err != nil {
			return fmt.Errorf("dpo: %w", err)
		}
		f.path = f.own
	}
	return nil
}
