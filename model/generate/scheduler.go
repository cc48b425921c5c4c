package generate

import (
	"context"
	"errors"
	"fmt"
)

// ErrStopped is returned for requests a Scheduler can no longer serve.
var ErrStopped = errors.New("generate: scheduler stopped")

// Scheduler shares one Engine among concurrent callers by continuous
// batching: every step runs one forward call over all sequences in flight,
// a new request joins at the next step (its prompt prefilled alongside the
// others' decoding) and a finished one leaves at once. Requests beyond
// MaxBatch wait in line.
type Scheduler struct {
	e        *Engine
	maxBatch int
	jobs     chan *job
	stopped  chan struct{}
}

type job struct {
	ctx  context.Context
	req  Request
	done chan jobResult // buffered: the scheduler never blocks on delivery
}

type jobResult struct {
	res Result
	err error
}

// NewScheduler returns a scheduler running at most maxBatch sequences at a
// time. Call Run to start it.
func NewScheduler(e *Engine, maxBatch int) *Scheduler {
	return &Scheduler{e: e, maxBatch: max(1, maxBatch), jobs: make(chan *job), stopped: make(chan struct{})}
}

// Engine is the engine the scheduler drives.
func (s *Scheduler) Engine() *Engine { return s.e }

// Generate queues req and waits for its result. A cancelled ctx withdraws
// the request, also mid-generation.
func (s *Scheduler) Generate(ctx context.Context, req Request) (Result, error) {
	j := &job{ctx: ctx, req: req, done: make(chan jobResult, 1)}
	select {
	case s.jobs <- j:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-s.stopped:
		return Result{}, ErrStopped
	}
	select {
	case r := <-j.done:
		return r.res, r.err
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-s.stopped:
		// Run may have delivered just before stopping.
		select {
		case r := <-j.done:
			return r.res, r.err
		default:
			return Result{}, ErrStopped
		}
	}
}

type running struct {
	j      *job
	s      *seq
	primed bool // prompt already fed
}

// Run serves requests until ctx is done; requests in flight then fail with
// ErrStopped. It returns ctx's error.
func (s *Scheduler) Run(ctx context.Context) error {
	defer close(s.stopped)
	var active []*running
	fail := func(r *running, err error) {
		r.j.done <- jobResult{err: err}
		s.e.putState(r.s.st)
	}
	admit := func(j *job) {
		sq, err := s.e.start(&j.req)
		if err != nil {
			j.done <- jobResult{err: err}
			return
		}
		active = append(active, &running{j: j, s: sq})
	}
	var states []*State
	var feeds [][]int
	for {
		if len(active) == 0 {
			select {
			case j := <-s.jobs:
				admit(j)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	fill:
		for len(active) < s.maxBatch {
			select {
			case j := <-s.jobs:
				admit(j)
			default:
				break fill
			}
		}
		if ctx.Err() != nil {
			for _, r := range active {
				fail(r, ErrStopped)
			}
			return ctx.Err()
		}
		// Withdrawn requests leave before the step.
		kept := active[:0]
		for _, r := range active {
			if err := r.j.ctx.Err(); err != nil {
				fail(r, err)
				continue
			}
			kept = append(kept, r)
		}
		active = kept
		if len(active) == 0 {
			continue
		}
		states, feeds = states[:0], feeds[:0]
		for _, r := range active {
			states = append(states, r.s.st)
			if r.primed {
				feeds = append(feeds, r.s.next())
			} else {
				feeds = append(feeds, r.s.req.Prompt)
				r.primed = true
			}
		}
		logits, err := s.e.Forward(states, feeds)
		if err != nil {
			for _, r := range active {
				fail(r, fmt.Errorf("forward: %w", err))
			}
			active = active[:0]
			continue
		}
		kept = active[:0]
		for i, r := range active {
			tok, lp := r.s.smp.next(logits[i])
			s.e.push(r.s, tok, lp)
			if r.s.done {
				r.j.done <- jobResult{res: r.s.res}
				s.e.putState(r.s.st)
				continue
			}
			kept = append(kept, r)
		}
		active = kept
	}
}
