package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// localGroup runs the collectives of n ranks that are goroutines of one
// process, so that the data-parallel loop is tested without MPI.
type localGroup struct {
	n        int
	mu       sync.Mutex
	cond     *sync.Cond
	arrived  int
	gen      int
	bufs     []any
	err      error
	gathered [][]byte // the last allgather's buffers, by rank
}

func newLocalGroup(n int) *localGroup {
	g := &localGroup{n: n, bufs: make([]any, n)}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// localComm is one rank of a localGroup.
type localComm struct {
	g    *localGroup
	rank int
}

// collective waits until every rank has deposited its buffer, then runs
// combine (once, on the last rank to arrive) over all of them.
func (c localComm) collective(buf any, combine func(bufs []any) error, read ...func()) error {
	g := c.g
	g.mu.Lock()
	defer g.mu.Unlock()
	gen := g.gen
	g.bufs[c.rank] = buf
	g.arrived++
	if g.arrived == g.n {
		g.err = combine(g.bufs)
		g.arrived = 0
		g.gen++
		g.cond.Broadcast()
	} else {
		for gen == g.gen {
			g.cond.Wait()
		}
	}
	// Under the lock: the next collective cannot combine before this rank
	// arrives at it.
	for _, f := range read {
		f()
	}
	return g.err
}

func (c localComm) Rank() int { return c.rank }
func (c localComm) Size() int { return c.g.n }

func sumInto[T float32 | float64](bufs []any) error {
	first := bufs[0].([]T)
	sum := make([]T, len(first))
	for r, b := range bufs {
		v := b.([]T)
		if len(v) != len(sum) {
			return fmt.Errorf("rank %d allreduces %d values, rank 0 %d", r, len(v), len(sum))
		}
		for i, x := range v {
			sum[i] += x
		}
	}
	for _, b := range bufs {
		copy(b.([]T), sum)
	}
	return nil
}

func (c localComm) AllreduceFloat32(buf []float32) error {
	return c.collective(buf, sumInto[float32])
}

func (c localComm) AllreduceFloat64(buf []float64) error {
	return c.collective(buf, sumInto[float64])
}

func (c localComm) Bcast(buf []byte, root int) error {
	return c.collective(buf, func(bufs []any) error {
		for _, b := range bufs {
			copy(b.([]byte), bufs[root].([]byte))
		}
		return nil
	})
}

func (c localComm) AllgatherBytes(mine []byte) ([][]byte, error) {
	var out [][]byte
	err := c.collective(slices.Clone(mine), func(bufs []any) error {
		g := make([][]byte, len(bufs))
		for r, b := range bufs {
			g[r] = b.([]byte)
		}
		c.g.gathered = g
		return nil
	}, func() { out = c.g.gathered })
	return out, err
}

// dpConfig is the configuration the data-parallel tests share: four
// micro-batches per update, a checkpoint every 4 updates.
func dpConfig(c *Config) {
	c.Steps, c.GradAccum, c.CheckpointEvery, c.EvalEvery = 12, 4, 4, 5
}

// runRanks trains n linreg ranks on goroutines; rank 0 writes to dir, the
// others to directories of their own. cancelAt, when positive, cancels
// the context of the last rank at that update. It returns each rank's
// error and model.
func runRanks(t *testing.T, n int, dir string, resume bool, cancelAt int) ([]error, []*linreg) {
	t.Helper()
	g := newLocalGroup(n)
	errs := make([]error, n)
	models := make([]*linreg, n)
	var wg sync.WaitGroup
	for r := range n {
		m := newLinreg(64, 4, 4)
		models[r] = m
		d := dir
		if r > 0 {
			d = filepath.Join(t.TempDir(), "rank")
		}
		l := newLoop(m, d, dpConfig)
		l.Comm = localComm{g: g, rank: r}
		l.Hooks.Skip = func(step, micro int) error {
			m.cursor = (m.cursor + m.batch) % len(m.x)
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		if cancelAt > 0 && r == n-1 {
			m.fault = func(step, micro int) (float64, error) {
				if step == cancelAt {
					cancel()
				}
				return 0, ctx.Err()
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			if resume && r == 0 {
				if errs[r] = l.Resume(); errs[r] != nil {
					return
				}
			}
			errs[r] = l.Run(ctx)
		}()
	}
	wg.Wait()
	return errs, models
}

func closeRel(a, b float64) bool {
	return math.Abs(a-b) <= 1e-5*math.Max(math.Abs(a), math.Abs(b))+1e-12
}

// sameRun requires the losses of dir's metrics and the parameters of m to
// match those of the single-process run within 1e-5 relative (the ranks
// sum gradients in another order).
func sameRun(t *testing.T, what string, wantLoss, gotLoss []float64, want, got *linreg) {
	t.Helper()
	if len(gotLoss) != len(wantLoss) {
		t.Fatalf("%s: %d logged losses, want %d", what, len(gotLoss), len(wantLoss))
	}
	for i := range wantLoss {
		if !closeRel(wantLoss[i], gotLoss[i]) {
			t.Errorf("%s: loss record %d = %.9g, single process %.9g", what, i, gotLoss[i], wantLoss[i])
		}
	}
	for j := range want.w {
		if !closeRel(float64(want.w[j]), float64(got.w[j])) {
			t.Errorf("%s: w[%d] = %.9g, single process %.9g", what, j, got.w[j], want.w[j])
		}
	}
	if !closeRel(float64(want.b[0]), float64(got.b[0])) {
		t.Errorf("%s: b = %.9g, single process %.9g", what, got.b[0], want.b[0])
	}
}

// TestDataParallelMatchesSingleProcess trains on 2, 3 and 4 ranks and
// requires the losses at every update and the final parameters of the
// single-process run with the same global batch; only rank 0 writes.
func TestDataParallelMatchesSingleProcess(t *testing.T) {
	single := t.TempDir()
	m := newLinreg(64, 4, 4)
	if err := newLoop(m, single, dpConfig).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := losses(t, single)
	if len(want) < 12 {
		t.Fatalf("the single run logged %d losses", len(want))
	}
	for _, n := range []int{2, 3, 4} {
		dir := t.TempDir()
		errs, models := runRanks(t, n, dir, false, 0)
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("%d ranks: %v", n, err)
		}
		for r, got := range models {
			sameRun(t, fmt.Sprintf("%d ranks, rank %d", n, r), want, losses(t, dir), m, got)
		}
		if !HasCheckpoint(dir) {
			t.Errorf("%d ranks: rank 0 wrote no checkpoint", n)
		}
	}
}

// TestDataParallelResume interrupts a 2-rank run on one rank, resumes it
// on 4 ranks (a checkpoint does not depend on the number of ranks) and
// requires the uninterrupted single-process run.
func TestDataParallelResume(t *testing.T) {
	single := t.TempDir()
	m := newLinreg(64, 4, 4)
	if err := newLoop(m, single, dpConfig).Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	errs, _ := runRanks(t, 2, dir, false, 6)
	for r, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("rank %d of the interrupted run: %v, want an interruption", r, err)
		}
	}
	if !errors.Is(errs[0], ErrPeerInterrupted) {
		t.Errorf("rank 0: %v, want %v", errs[0], ErrPeerInterrupted)
	}
	st, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 6 {
		t.Fatalf("the interrupted run's checkpoint is at update %d, want 6", st.Step)
	}
	errs, models := runRanks(t, 4, dir, true, 0)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for r, got := range models {
		sameRun(t, fmt.Sprintf("resumed rank %d", r), losses(t, single), losses(t, dir), m, got)
	}
}

// TestDataParallelRefusals requires the errors of a loop that cannot run
// on several ranks.
func TestDataParallelRefusals(t *testing.T) {
	g := newLocalGroup(2)
	m := newLinreg(64, 4, 4)
	l := newLoop(m, t.TempDir(), dpConfig)
	l.Comm = localComm{g: g}
	if err := l.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Hooks.Skip") {
		t.Errorf("a loop without Skip on 2 ranks: %v, want an error naming Hooks.Skip", err)
	}
	l = newLoop(m, t.TempDir(), func(c *Config) { dpConfig(c); c.GradAccum = 1 })
	l.Comm = localComm{g: g}
	l.Hooks.Skip = func(int, int) error { return nil }
	if err := l.Run(context.Background()); err == nil || !strings.Contains(err.Error(), KeyGradAccum) {
		t.Errorf("grad-accum 1 on 2 ranks: %v, want an error naming %s", err, KeyGradAccum)
	}
}

// TestDataParallelAnnounces: rank 0 of a loop on several ranks that is not
// quiet says how the ranks share the work and the bytes of its allreduce
// (4 per trainable value: linreg's 4 weights and bias), the others nothing.
func TestDataParallelAnnounces(t *testing.T) {
	g := newLocalGroup(2)
	var outs [2]strings.Builder
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for r := range 2 {
		m := newLinreg(64, 4, 4)
		l := newLoop(m, filepath.Join(t.TempDir(), "run"), func(c *Config) { dpConfig(c); c.Steps = 1; c.Quiet = false; c.Progress = &outs[r] })
		l.Comm = localComm{g: g, rank: r}
		l.Hooks.Skip = func(int, int) error { return nil }
		if got := l.AllreduceBytes(); got != 20 {
			t.Errorf("AllreduceBytes = %d, want 20", got)
		}
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = l.Run(context.Background()) }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	want := "train: 2 ranks share each update's 4 micro-batches; 20 bytes allreduced per update\n"
	if outs[0].String() != want || outs[1].String() != "" {
		t.Errorf("rank 0 wrote %q, rank 1 %q; want %q and nothing", outs[0].String(), outs[1].String(), want)
	}
}

// TestShare: the ranks' parts cover the items once, in order, as evenly
// as they can.
func TestShare(t *testing.T) {
	for _, c := range []struct{ n, size int }{{7, 3}, {2, 4}, {8, 2}, {0, 3}, {5, 1}} {
		next := 0
		for r := range c.size {
			lo, hi := Share(c.n, r, c.size)
			if lo != next || hi < lo || hi-lo > c.n/c.size+1 || hi-lo < c.n/c.size {
				t.Fatalf("Share(%d, %d, %d) = %d, %d after %d", c.n, r, c.size, lo, hi, next)
			}
			next = hi
		}
		if next != c.n {
			t.Fatalf("the %d ranks' parts of %d items end at %d", c.size, c.n, next)
		}
	}
}

// TestShareWork: ranks on goroutines each work on their share and all get
// every result in order; an interrupted rank makes every rank stop with an
// error wrapping context.Canceled, none waiting.
func TestShareWork(t *testing.T) {
	const n, size = 7, 3
	for _, cancelRank := range []int{-1, 1} {
		g := newLocalGroup(size)
		got := make([][]float64, size)
		errs := make([]error, size)
		var wg sync.WaitGroup
		for r := range size {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				got[r], errs[r] = ShareWork(ctx, localComm{g: g, rank: r}, n, func(lo, hi int) ([]float64, error) {
					if r == cancelRank {
						cancel()
						return nil, fmt.Errorf("sampling: %w", ctx.Err())
					}
					out := []float64{}
					for i := lo; i < hi; i++ {
						out = append(out, float64(i)*1.5)
					}
					if r == 0 && lo < hi {
						out[0] = math.NaN() // travels exactly
					}
					return out, nil
				})
			}()
		}
		wg.Wait()
		for r := range size {
			if cancelRank >= 0 {
				if !errors.Is(errs[r], context.Canceled) {
					t.Errorf("rank %d, rank %d interrupted: error %v, want one wrapping context.Canceled", r, cancelRank, errs[r])
				}
				continue
			}
			if errs[r] != nil || len(got[r]) != n || !math.IsNaN(got[r][0]) {
				t.Fatalf("rank %d: %v, %v", r, got[r], errs[r])
			}
			for i := 1; i < n; i++ {
				if got[r][i] != float64(i)*1.5 {
					t.Fatalf("rank %d: result %d = %v, want %v", r, i, got[r][i], float64(i)*1.5)
				}
			}
		}
	}
}

// TestDataParallelInterruptedEvaluation interrupts one rank of three
// during the evaluation after update 5: every rank stops there together
// (none waits for the others in the next update), with an error wrapping
// context.Canceled, and rank 0 checkpoints update 5.
func TestDataParallelInterruptedEvaluation(t *testing.T) {
	const n = 3
	dir := t.TempDir()
	g := newLocalGroup(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		m := newLinreg(64, 4, 4)
		d := dir
		if r > 0 {
			d = filepath.Join(t.TempDir(), "rank")
		}
		l := newLoop(m, d, dpConfig)
		l.Comm = localComm{g: g, rank: r}
		l.Hooks.Skip = func(step, micro int) error {
			m.cursor = (m.cursor + m.batch) % len(m.x)
			return nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		if r == n-1 {
			l.Eval = func(ctx context.Context) (Metrics, error) {
				cancel()
				return nil, fmt.Errorf("evaluating: %w", ctx.Err())
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			errs[r] = l.Run(ctx)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("rank %d: %v, want an interruption", r, err)
		}
	}
	if !errors.Is(errs[0], ErrPeerInterrupted) {
		t.Errorf("rank 0: %v, want %v", errs[0], ErrPeerInterrupted)
	}
	st, err := LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != 5 {
		t.Fatalf("the checkpoint is at update %d, want 5 (the evaluation's)", st.Step)
	}
}
