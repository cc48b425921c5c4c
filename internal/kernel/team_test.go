package kernel

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chunks records which worker ran which part of [0, n): owner[i] is the
// worker that covered index i (-1 if none), and a second cover is an error.
func chunks(t *testing.T, n int, call func(fn func(worker, lo, hi int))) []int {
	t.Helper()
	owner := make([]atomic.Int64, n)
	for i := range owner {
		owner[i].Store(-1)
	}
	var twice atomic.Int64
	call(func(worker, lo, hi int) {
		for i := lo; i < hi; i++ {
			if !owner[i].CompareAndSwap(-1, int64(worker)) {
				twice.Add(1)
			}
		}
	})
	if twice.Load() != 0 {
		t.Fatalf("%d indices covered twice", twice.Load())
	}
	out := make([]int, n)
	for i := range owner {
		out[i] = int(owner[i].Load())
	}
	return out
}

// withTimeout fails the test if f has not returned within d (a lost
// wake-up would hang it).
func withTimeout(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("no return within %v", d)
	}
}

// TestSpinTeamSplitsAsParallel checks that a team of several workers
// covers every index once, in Parallel's chunks, on calls in quick
// succession and on calls spaced so that the workers have gone to sleep.
func TestSpinTeamSplitsAsParallel(t *testing.T) {
	team := newSpinTeam(3)
	for _, n := range []int{0, 1, 3, 4, 10, 1001} {
		want := chunks(t, n, func(fn func(worker, lo, hi int)) { Parallel(n, 4, fn) })
		for call := range 40 {
			if call%10 == 9 {
				time.Sleep(2 * spinFor) // the workers park
			}
			var got []int
			withTimeout(t, 10*time.Second, func() {
				got = chunks(t, n, func(fn func(worker, lo, hi int)) { team.run(n, fn) })
			})
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("n=%d call %d: index %d ran on worker %d, Parallel's split gives %d", n, call, i, got[i], want[i])
				}
			}
		}
	}
}

// TestSpinParallelConcurrentCallers has several goroutines call
// SpinParallel at once (all but one fall back to Parallel) and with other
// worker counts; every call must cover its range exactly once.
func TestSpinParallelConcurrentCallers(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for call := range 200 {
				n := 17 + g*13 + call%5
				workers := []int{1, 2, procs, procs + 1}[call%4]
				var sum atomic.Int64
				SpinParallel(n, workers, func(_, lo, hi int) {
					for i := lo; i < hi; i++ {
						sum.Add(int64(i))
					}
				})
				if want := int64(n * (n - 1) / 2); sum.Load() != want {
					t.Errorf("goroutine %d call %d: indices sum to %d, want %d", g, call, sum.Load(), want)
					return
				}
			}
		}()
	}
	withTimeout(t, 30*time.Second, wg.Wait)
}
