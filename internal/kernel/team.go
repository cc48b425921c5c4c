package kernel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// spinFor is how long a team worker keeps spinning for the next call
// before it sleeps. Decoding a token makes about 170 calls a few
// microseconds apart, so the workers stay awake for the whole of a
// generation and sleep within a fraction of a millisecond of its end.
const spinFor = 200 * time.Microsecond

// SpinParallel is Parallel on a team of goroutines kept between calls
// (one fewer than GOMAXPROCS, started on first use): the workers spin for
// a moment after each call before they sleep, so a call that follows soon
// after the last starts at once, where Parallel's new goroutine waits tens
// of microseconds for the scheduler to wake a thread. Decoding makes many
// short products in a row (a matrix-vector product of a few hundred
// microseconds for each linear module), where that wait costs a third of
// the memory bandwidth. One call runs at a time; a call made while another
// runs (or with more workers than the team has) falls back to Parallel.
func SpinParallel(n, workers int, fn func(worker, lo, hi int)) {
	if workers <= 1 {
		fn(0, 0, n)
		return
	}
	t := sharedTeam()
	if workers != len(t.workers)+1 || !t.mu.TryLock() {
		Parallel(n, workers, fn)
		return
	}
	defer t.mu.Unlock()
	t.run(n, fn)
}

var (
	teamOnce sync.Once
	team     *spinTeam
)

// sharedTeam returns the process's team, starting it on first use.
func sharedTeam() *spinTeam {
	teamOnce.Do(func() { team = newSpinTeam(runtime.GOMAXPROCS(0) - 1) })
	return team
}

// spinTeam is SpinParallel's workers. A call publishes its work and bumps
// seq; each worker, seeing seq change, runs its chunk and bumps done.
type spinTeam struct {
	mu      sync.Mutex // held by the running call
	seq     atomic.Uint64
	done    atomic.Int64
	n       int
	fn      func(worker, lo, hi int)
	workers []*teamWorker
}

// teamWorker is one goroutine of a team: parked is set while it sleeps
// on wake.
type teamWorker struct {
	parked atomic.Bool
	wake   chan struct{}
}

// newSpinTeam starts a team of size workers.
func newSpinTeam(size int) *spinTeam {
	t := &spinTeam{workers: make([]*teamWorker, max(0, size))}
	for i := range t.workers {
		t.workers[i] = &teamWorker{wake: make(chan struct{}, 1)}
	}
	for i, w := range t.workers {
		go t.loop(i, w)
	}
	return t
}

// run splits [0, n) as Parallel does, the workers taking the first chunks
// and the caller the last.
func (t *spinTeam) run(n int, fn func(worker, lo, hi int)) {
	k := len(t.workers) + 1
	t.n, t.fn = n, fn
	t.done.Store(0)
	t.seq.Add(1) // publishes n and fn
	for _, w := range t.workers {
		// A worker that set parked before this load re-reads seq after
		// setting it, or is woken here: no call is missed.
		if w.parked.Load() {
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}
	}
	defer t.await() // even if fn panics, no worker is left running it
	fn(k-1, (k-1)*n/k, n)
}

// await waits until every worker has run its chunk of the current call.
func (t *spinTeam) await() {
	for spins := 0; t.done.Load() != int64(len(t.workers)); spins++ {
		if spins&63 == 63 {
			runtime.Gosched() // let a worker without a P run
		}
	}
	t.fn = nil
}

// loop is worker i: wait for a new call, spinning for spinFor and then
// sleeping, run chunk i, report.
func (t *spinTeam) loop(i int, w *teamWorker) {
	k := len(t.workers) + 1
	var seen uint64
	for {
		deadline := time.Now().Add(spinFor)
		for spins := 0; t.seq.Load() == seen; spins++ {
			if spins&255 != 255 {
				continue
			}
			if time.Now().Before(deadline) {
				runtime.Gosched() // give way to other goroutines now and then
				continue
			}
			w.parked.Store(true)
			if t.seq.Load() == seen {
				<-w.wake
			}
			w.parked.Store(false)
			deadline = time.Now().Add(spinFor)
		}
		seen = t.seq.Load()
		n, fn := t.n, t.fn
		fn(i, i*n/k, (i+1)*n/k)
		t.done.Add(1)
	}
}
