package train

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// linreg is a small pure-Go model for exercising the loop: y = w·x + b with
// squared-error loss ½(ŷ−y)² averaged over a micro-batch, gradients by hand.
// Rows come from a cursor over a fixed data set, optionally offset at random
// by the loop's random source; the cursor is the stage position saved through
// Hooks.
type linreg struct {
	x      [][]float64
	y      []float64
	w, b   []float32
	gw, gb []float32
	batch  int
	random bool
	cursor int
	loop   *Loop
	// fault, when set, runs first in every step and may return an error or
	// corrupt the loss.
	fault func(step, micro int) (float64, error)
}

func newLinreg(n, d, batch int) *linreg {
	r := rand.New(rand.NewPCG(42, 7))
	m := &linreg{batch: batch, w: make([]float32, d), b: make([]float32, 1), gw: make([]float32, d), gb: make([]float32, 1)}
	truth := make([]float64, d)
	for j := range truth {
		truth[j] = r.NormFloat64()
	}
	for range n {
		row := make([]float64, d)
		y := 0.5
		for j := range row {
			row[j] = r.NormFloat64()
			y += truth[j] * row[j]
		}
		m.x = append(m.x, row)
		m.y = append(m.y, y+0.01*r.NormFloat64())
	}
	return m
}

func (m *linreg) step(ctx context.Context, step, micro int) (Metrics, error) {
	bad := 0.0
	if m.fault != nil {
		v, err := m.fault(step, micro)
		if err != nil {
			return nil, err
		}
		bad = v
	}
	var loss float64
	inv := 1 / float64(m.batch)
	for range m.batch {
		i := m.cursor
		if m.random {
			// an offset from the cursor, so both the random source and the
			// stage position decide the row
			i = (m.cursor + m.loop.Rand().IntN(len(m.x)/2)) % len(m.x)
		}
		m.cursor = (m.cursor + 1) % len(m.x)
		pred := float64(m.b[0])
		for j, xj := range m.x[i] {
			pred += float64(m.w[j]) * xj
		}
		e := pred - m.y[i]
		loss += 0.5 * e * e * inv
		for j, xj := range m.x[i] {
			m.gw[j] += float32(e * xj * inv)
		}
		m.gb[0] += float32(e * inv)
	}
	return Metrics{KeyLoss: loss + bad, KeyTokens: float64(m.batch), "mean_pred": float64(m.b[0])}, nil
}

func (m *linreg) zero() {
	clear(m.gw)
	clear(m.gb)
}

func (m *linreg) eval(context.Context) (Metrics, error) {
	var loss float64
	for i, row := range m.x {
		pred := float64(m.b[0])
		for j, xj := range row {
			pred += float64(m.w[j]) * xj
		}
		loss += 0.5 * (pred - m.y[i]) * (pred - m.y[i])
	}
	return Metrics{KeyLoss: loss / float64(len(m.x))}, nil
}

// newLoop wires a linreg model into a Loop writing to dir.
func newLoop(m *linreg, dir string, edit func(*Config)) *Loop {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Steps, cfg.LR, cfg.WarmupSteps, cfg.WeightDecay = dir, 30, 0.05, 3, 0.01
	cfg.Quiet = true
	if edit != nil {
		edit(&cfg)
	}
	l := &Loop{
		Config: cfg,
		Params: []Param{
			{Name: "w", Value: m.w, Grad: func() []float32 { return m.gw }},
			{Name: "b", Value: m.b, Grad: func() []float32 { return m.gb }, NoDecay: true},
		},
		Step:     m.step,
		ZeroGrad: m.zero,
		Eval:     m.eval,
		Hooks: Hooks{
			State:   func() (json.RawMessage, error) { return json.Marshal(m.cursor) },
			Restore: func(raw json.RawMessage) error { return json.Unmarshal(raw, &m.cursor) },
			Epoch:   func() float64 { return 0 },
		},
	}
	m.loop = l
	return l
}

func losses(t *testing.T, dir string) []float64 {
	t.Helper()
	recs, err := ReadMetrics(MetricsFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, r := range recs {
		if v, ok := r[KeyLoss]; ok {
			out = append(out, v)
		}
	}
	return out
}

func TestLoopLearnsAndLogs(t *testing.T) {
	dir := t.TempDir()
	m := newLinreg(64, 4, 8)
	l := newLoop(m, dir, func(c *Config) { c.Steps, c.LR, c.EvalEvery = 60, 0.1, 20 })
	before, _ := m.eval(context.Background())
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	after, _ := m.eval(context.Background())
	if after[KeyLoss] > before[KeyLoss]/20 {
		t.Errorf("eval loss %g → %g: did not fall twentyfold", before[KeyLoss], after[KeyLoss])
	}
	recs, err := ReadMetrics(MetricsFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	// A fresh run in the same directory replaces the log rather than
	// appending to it.
	if err := newLoop(newLinreg(64, 4, 8), dir, func(c *Config) { c.Steps, c.LR, c.EvalEvery = 60, 0.1, 20 }).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if again, _ := ReadMetrics(MetricsFile(dir)); len(again) != len(recs) {
		t.Errorf("second fresh run left %d records, want %d", len(again), len(recs))
	}
	var train, eval int
	for _, r := range recs {
		if _, ok := r["eval_loss"]; ok {
			eval++
			continue
		}
		train++
		for _, k := range []string{KeyStep, KeyEpoch, KeyLoss, KeyLR, KeyGradNorm, KeyTokensPerSec, KeyTokens, "mean_pred"} {
			if _, ok := r[k]; !ok {
				t.Fatalf("record %v lacks %s", r, k)
			}
		}
		if want := 8 * r[KeyStep]; r[KeyTokens] != want {
			t.Errorf("num_tokens %g at step %g, want cumulative %g", r[KeyTokens], r[KeyStep], want)
		}
		if want := l.LR(int(r[KeyStep]) - 1); r[KeyLR] != want {
			t.Errorf("learning_rate %g at step %g, want %g", r[KeyLR], r[KeyStep], want)
		}
	}
	if train != 60 || eval != 3 {
		t.Errorf("%d train and %d eval records, want 60 and 3", train, eval)
	}
	if st, err := LoadState(dir); err != nil || st.Step != 60 || st.OptimizerStep != 60 {
		t.Errorf("final checkpoint %+v, %v", st, err)
	}
	// The line format: step first, as an integer.
	raw, _ := os.ReadFile(MetricsFile(dir))
	if !strings.HasPrefix(string(raw), `{"step":1,"epoch":0,"loss":`) {
		t.Errorf("first line %q", strings.SplitN(string(raw), "\n", 2)[0])
	}
}

func TestLogEveryAverages(t *testing.T) {
	every := t.TempDir()
	if err := newLoop(newLinreg(64, 4, 8), every, nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	five := t.TempDir()
	if err := newLoop(newLinreg(64, 4, 8), five, func(c *Config) { c.LogEvery = 5 }).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	per, grouped := losses(t, every), losses(t, five)
	if len(per) != 30 || len(grouped) != 6 {
		t.Fatalf("%d and %d loss records", len(per), len(grouped))
	}
	for g := range 6 {
		var mean float64
		for _, v := range per[5*g : 5*g+5] {
			mean += v / 5
		}
		if !near(grouped[g], mean, 1e-12) {
			t.Errorf("interval %d: logged %g, mean of steps %g", g, grouped[g], mean)
		}
	}
}

func TestAccumulationEqualsBigBatch(t *testing.T) {
	big := newLinreg(96, 5, 16)
	if err := newLoop(big, t.TempDir(), nil).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	small := newLinreg(96, 5, 4)
	if err := newLoop(small, t.TempDir(), func(c *Config) { c.GradAccum = 4 }).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for j := range big.w {
		if !near(float64(small.w[j]), float64(big.w[j]), 1e-5) {
			t.Errorf("w[%d]: 4×4 accumulated %g, batch of 16 %g", j, small.w[j], big.w[j])
		}
	}
	if !near(float64(small.b[0]), float64(big.b[0]), 1e-5) {
		t.Errorf("b: %g vs %g", small.b[0], big.b[0])
	}
}

func TestClippingInLoop(t *testing.T) {
	// With a tiny clip threshold the first update of every parameter is
	// still ±lr (Adam normalises), but the logged norm is the unclipped one.
	dir := t.TempDir()
	m := newLinreg(32, 3, 8)
	l := newLoop(m, dir, func(c *Config) { c.Steps, c.MaxGradNorm, c.WarmupSteps, c.WeightDecay = 1, 1e-3, 0, 0 })
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	recs, _ := ReadMetrics(MetricsFile(dir))
	if recs[0][KeyGradNorm] < 0.1 {
		t.Errorf("logged grad norm %g looks clipped", recs[0][KeyGradNorm])
	}
	// Clipping scales gradients, so Adam's first moment shows the clipped
	// size: |m| = (1−β₁)·|g_clipped| and ‖g_clipped‖ ≤ 10⁻³.
	var s float64
	for _, mm := range l.Optimizer().M {
		for _, v := range mm {
			s += float64(v) * float64(v) / 0.01
		}
	}
	if n := math.Sqrt(s); n > 1.0001e-3 || n < 0.999e-3 {
		t.Errorf("norm of the clipped gradient = %g, want 1e-3", n)
	}
}

// TestResumeExact interrupts runs in two ways, resumes them, and requires
// the loss sequence and final weights to equal an uninterrupted run's
// bit for bit.
func TestResumeExact(t *testing.T) {
	cfg := func(c *Config) { c.GradAccum, c.CheckpointEvery, c.EvalEvery = 2, 7, 10 }
	ref := newLinreg(50, 4, 5)
	ref.random = true
	refDir := t.TempDir()
	if err := newLoop(ref, refDir, cfg).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := losses(t, refDir)

	t.Run("cancel", func(t *testing.T) {
		dir := t.TempDir()
		m := newLinreg(50, 4, 5)
		m.random = true
		ctx, cancel := context.WithCancel(context.Background())
		m.fault = func(step, micro int) (float64, error) {
			if step == 16 && micro == 1 { // Ctrl-C in the middle of update 17
				cancel()
				return 0, ctx.Err()
			}
			return 0, nil
		}
		err := newLoop(m, dir, cfg).Run(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
		if st, err := LoadState(dir); err != nil || st.Step != 16 {
			t.Fatalf("checkpoint after Ctrl-C: %+v %v, want step 16", st, err)
		}
		resumeAndCompare(t, dir, cfg, want, ref)
	})
	t.Run("crash", func(t *testing.T) {
		dir := t.TempDir()
		m := newLinreg(50, 4, 5)
		m.random = true
		m.fault = func(step, micro int) (float64, error) {
			if step == 19 {
				return 0, errors.New("machine lost")
			}
			return 0, nil
		}
		if err := newLoop(m, dir, cfg).Run(context.Background()); err == nil || !strings.Contains(err.Error(), "machine lost") {
			t.Fatalf("Run returned %v", err)
		}
		// A crash may also cut a metrics line in half.
		f, _ := os.OpenFile(MetricsFile(dir), os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString(`{"step":20,"lo`)
		f.Close()
		if st, err := LoadState(dir); err != nil || st.Step != 14 {
			t.Fatalf("checkpoint: %+v %v, want step 14", st, err)
		}
		resumeAndCompare(t, dir, cfg, want, ref)
	})
}

func resumeAndCompare(t *testing.T, dir string, cfg func(*Config), want []float64, ref *linreg) {
	t.Helper()
	m := newLinreg(50, 4, 5) // fresh weights: everything must come from the checkpoint
	m.random = true
	m.cursor = 3
	l := newLoop(m, dir, cfg)
	if err := l.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := losses(t, dir)
	if !slices.Equal(got, want) {
		t.Fatalf("resumed losses differ:\n got %v\nwant %v", got, want)
	}
	if !slices.Equal(m.w, ref.w) || !slices.Equal(m.b, ref.b) {
		t.Errorf("resumed weights %v %v, uninterrupted %v %v", m.w, m.b, ref.w, ref.b)
	}
}

func TestNaNGuard(t *testing.T) {
	dir := t.TempDir()
	m := newLinreg(32, 3, 4)
	m.fault = func(step, micro int) (float64, error) {
		if step == 11 {
			return math.NaN(), nil
		}
		return 0, nil
	}
	l := newLoop(m, dir, func(c *Config) { c.CheckpointEvery = 5 })
	err := l.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "update 12: loss is NaN") || !strings.Contains(err.Error(), "last good checkpoint (update 10)") {
		t.Fatalf("error %v", err)
	}
	if st, err := LoadState(dir); err != nil || st.Step != 10 {
		t.Errorf("checkpoint %+v %v, want the one of update 10", st, err)
	}
	if l.StepsDone() != 11 || l.Optimizer().T != 11 {
		t.Errorf("the bad update was applied: %d steps, t = %d", l.StepsDone(), l.Optimizer().T)
	}

	// An infinite gradient before any checkpoint.
	dir = t.TempDir()
	m = newLinreg(32, 3, 4)
	m.fault = func(step, micro int) (float64, error) {
		if step == 2 {
			m.gw[0] = float32(math.Inf(1))
		}
		return 0, nil
	}
	err = newLoop(m, dir, nil).Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "update 3: gradient norm is +Inf") || !strings.Contains(err.Error(), "no checkpoint was written") {
		t.Fatalf("error %v", err)
	}
	if HasCheckpoint(dir) {
		t.Error("a checkpoint was written")
	}
}

func TestResumeErrors(t *testing.T) {
	dir := t.TempDir()
	if err := newLoop(newLinreg(16, 3, 4), dir, nil).Resume(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no checkpoint: %v", err)
	}
	if err := newLoop(newLinreg(16, 3, 4), dir, func(c *Config) { c.Steps = 3 }).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := newLoop(newLinreg(16, 4, 4), dir, nil).Resume(); err == nil || !strings.Contains(err.Error(), "w has shape [3] in the checkpoint, the run has [4]") {
		t.Errorf("shape mismatch: %v", err)
	}
	m := newLinreg(16, 3, 4)
	l := newLoop(m, dir, nil)
	l.Params = l.Params[:1]
	if err := l.Resume(); err == nil || !strings.Contains(err.Error(), "holds parameter b") {
		t.Errorf("extra parameter: %v", err)
	}
	bad := newLoop(newLinreg(16, 3, 4), dir, func(c *Config) { c.Beta2 = 1 })
	if err := bad.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "beta2") {
		t.Errorf("invalid config: %v", err)
	}
}

func TestCheckpointFiles(t *testing.T) {
	dir := t.TempDir()
	m := newLinreg(16, 3, 4)
	l := newLoop(m, dir, func(c *Config) { c.Steps = 4 })
	l.Hooks.SaveFiles = func(d string) error { return os.WriteFile(filepath.Join(d, "adapter.txt"), []byte("x"), 0o644) }
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{StateFile, ParamsFile, OptimizerFile, "adapter.txt"} {
		if _, err := os.Stat(filepath.Join(StateDir(dir), f)); err != nil {
			t.Errorf("checkpoint lacks %s", f)
		}
	}
	st, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Schedule.WarmupSteps != 3 || st.Optimizer.Beta2 != 0.999 || string(st.Data) != "0" || len(st.MetricsTail) != 5 || st.NumTokens != 16 {
		t.Errorf("state %+v", st)
	}
}

// TestResumeMidLogInterval resumes from checkpoints that fall inside a
// logging interval (LogEvery 3, CheckpointEvery 2, and a Ctrl-C during
// update 8) and requires every metrics.jsonl record, averages included, to
// equal an uninterrupted run's; only tokens_per_second, a wall-clock
// figure, may differ.
func TestResumeMidLogInterval(t *testing.T) {
	cfg := func(c *Config) { c.Steps, c.LogEvery, c.CheckpointEvery, c.EvalEvery = 12, 3, 2, 5 }
	refDir := t.TempDir()
	ref := newLinreg(40, 3, 4)
	ref.random = true
	if err := newLoop(ref, refDir, cfg).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, err := ReadMetrics(MetricsFile(refDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		stop  int // 0-based update whose first micro-batch fails
		saved int // the checkpoint it resumes from
	}{{"cancel", 7, 7}, {"crash", 9, 8}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			m := newLinreg(40, 3, 4)
			m.random = true
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			m.fault = func(step, micro int) (float64, error) {
				if step != tc.stop {
					return 0, nil
				}
				if tc.name == "cancel" {
					cancel()
					return 0, ctx.Err()
				}
				return 0, errors.New("machine lost")
			}
			if err := newLoop(m, dir, cfg).Run(ctx); err == nil {
				t.Fatal("the interrupted run succeeded")
			}
			if st, err := LoadState(dir); err != nil || st.Step != tc.saved || st.Step%3 == 0 {
				t.Fatalf("checkpoint %+v %v, want step %d (inside an interval)", st, err, tc.saved)
			}
			r := newLinreg(40, 3, 4)
			r.random = true
			l := newLoop(r, dir, cfg)
			if err := l.Resume(); err != nil {
				t.Fatal(err)
			}
			if err := l.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			got, err := ReadMetrics(MetricsFile(dir))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d records, want %d", len(got), len(want))
			}
			for i := range want {
				g, w := maps.Clone(got[i]), maps.Clone(want[i])
				delete(g, KeyTokensPerSec)
				delete(w, KeyTokensPerSec)
				if !maps.Equal(g, w) {
					t.Errorf("record %d:\n got %v\nwant %v", i, g, w)
				}
			}
		})
	}
}

// TestResumeWithoutLogInterval reads a checkpoint written before the
// logging interval was saved: the interval starts empty.
func TestResumeWithoutLogInterval(t *testing.T) {
	dir := t.TempDir()
	cfg := func(c *Config) { c.Steps, c.LogEvery = 4, 3 }
	if err := newLoop(newLinreg(16, 3, 4), dir, cfg).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(StateDir(dir), StateFile)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st["log_interval"]; !ok {
		t.Fatalf("state has no log_interval: %s", raw)
	}
	delete(st, "log_interval")
	st["step"] = json.RawMessage("2")
	if raw, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	l := newLoop(newLinreg(16, 3, 4), dir, cfg)
	if err := l.Resume(); err != nil {
		t.Fatal(err)
	}
	if l.acc == nil || l.acc.n != 0 || len(l.acc.sum) != 0 {
		t.Errorf("interval after resuming an old state: %+v", l.acc)
	}
	// An interval longer than the run so far is corrupt.
	st["log_interval"] = json.RawMessage(`{"sums":{"loss":1},"updates":3,"seconds":0}`)
	if raw, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(dir); err == nil || !strings.Contains(err.Error(), "log interval of 3 updates") {
		t.Errorf("corrupt interval: %v", err)
	}
}
