package selfinstruct

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"

	"github.com/gotune/gotune/train"
)

// Under mpirun the ranks share the teacher's work: rank 0 runs the
// generation loop (prompts, filters, similarity, state and output, as one
// process does) with a sharedTeacher, which broadcasts every batch's
// prompts; every rank, rank 0 included, completes its contiguous part of
// them with its own teacher, and all gather the replies in order
// (train.ShareWork). Prompt i of a batch is sampled with Seed+i whichever
// rank completes it, so N ranks write what one process writes, N times
// faster when the teacher is a local model.

// teacherRequest is what rank 0 broadcasts before each batch.
type teacherRequest struct {
	Stop    bool // the run is over: the other ranks return
	Prompts []string
	Params  Params
}

// sharedTeacher is rank 0's side of a shared teacher.
type sharedTeacher struct {
	t    Teacher
	comm train.Comm
	gone bool // the ranks left together (an agreed interruption): no stop to send
}

// Complete broadcasts the batch and completes rank 0's part of it.
func (s *sharedTeacher) Complete(ctx context.Context, prompts []string, p Params) ([]Completion, error) {
	if err := bcastGob(s.comm, &teacherRequest{Prompts: prompts, Params: p}); err != nil {
		return nil, err
	}
	out, err := completeShare(ctx, s.comm, s.t, prompts, p)
	if err != nil && errors.Is(err, context.Canceled) {
		s.gone = true
	}
	return out, err
}

// close tells the other ranks that the run is over.
func (s *sharedTeacher) close() error {
	if s.gone {
		return nil
	}
	return bcastGob(s.comm, &teacherRequest{Stop: true})
}

// completeShare is the collective completion of a batch's prompts.
func completeShare(ctx context.Context, comm train.Comm, t Teacher, prompts []string, p Params) ([]Completion, error) {
	return train.ShareWork(ctx, comm, len(prompts), func(lo, hi int) ([]Completion, error) {
		if lo == hi {
			return []Completion{}, nil
		}
		q := p
		q.Seed = p.Seed + uint64(lo)
		return t.Complete(ctx, prompts[lo:hi], q)
	})
}

// serveTeacher is the loop of the ranks other than 0: complete their part
// of every batch rank 0 broadcasts, until it says stop.
func serveTeacher(ctx context.Context, comm train.Comm, t Teacher) error {
	for {
		var req teacherRequest
		if err := recvGob(comm, &req); err != nil {
			return err
		}
		if req.Stop {
			return ctx.Err()
		}
		if _, err := completeShare(ctx, comm, t, req.Prompts, req.Params); err != nil {
			return fmt.Errorf("self-instruct: rank %d: %w", comm.Rank(), err)
		}
	}
}

// bcastGob sends v from rank 0 to the others (recvGob), gob-encoded.
func bcastGob(comm train.Comm, v any) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(v); err != nil {
		return fmt.Errorf("self-instruct: encoding a request: %w", err)
	}
	if _, err := train.BcastFromRoot(comm, buf.Bytes()); err != nil {
		return fmt.Errorf("self-instruct: broadcasting a request: %w", err)
	}
	return nil
}

// recvGob receives what rank 0 sends with bcastGob.
func recvGob(comm train.Comm, v any) error {
	raw, err := train.BcastFromRoot(comm, nil)
	if err != nil {
		return fmt.Errorf("self-instruct: waiting for rank 0's request: %w", err)
	}
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(v); err != nil {
		return fmt.Errorf("self-instruct: rank %d: rank 0's request: %w", comm.Rank(), err)
	}
	return nil
}
