package train

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/gotune/gotune/internal/mpi"
)

// Comm is the communicator of a data-parallel run: internal/mpi's World
// satisfies it, and so does one rank alone.
//
// Data parallelism keeps the global batch of a single-process run: the
// GradAccum micro-batches of an update are dealt round-robin to the ranks
// (rank r computes micro-batches r, r+N, r+2N, … of every update and skips
// the others' through Hooks.Skip), so a run on N ranks sees the same
// micro-batches in the same order as one process with the same settings.
// Each rank sums its micro-batches' gradients; one allreduce over a flat
// float32 buffer of every trainable parameter sums them over the ranks,
// and the loop divides by GradAccum, as one process does. Clipping and the
// AdamW step then run identically on every rank. Metrics are summed the same
// way (in float64). Rank 0 alone writes metrics, the progress bar and
// checkpoints; at the start of Run it broadcasts its parameters, moments,
// random state and data position, so that every rank starts where rank 0
// does (the start of a fresh run or a resumed checkpoint), as PyTorch's
// DistributedDataParallel broadcasts rank 0's parameters.
type Comm interface {
	Rank() int
	Size() int
	AllreduceFloat32(buf []float32) error // in-place element-wise sum over the ranks
	AllreduceFloat64(buf []float64) error
	Bcast(buf []byte, root int) error // root's buf into every rank's
	// AllgatherBytes gives every rank the buffers of all ranks, by rank.
	AllgatherBytes(mine []byte) ([][]byte, error)
}

// World is the job's communicator (internal/mpi's World): one rank
// without MPI or when not started by mpirun.
func World() Comm { return mpi.World() }

// Share is the part [lo, hi) of n items that rank takes when size ranks
// share them: contiguous runs in rank order, the first n%size ranks one
// item more, so that concatenating the ranks' parts in rank order gives
// the n items in order.
func Share(n, rank, size int) (lo, hi int) {
	q, r := n/size, n%size
	lo = rank*q + min(rank, r)
	hi = lo + q
	if rank < r {
		hi++
	}
	return lo, hi
}

// ShareWork runs the data-parallel part of a sampling stage (generation,
// scoring, evaluation): every rank of comm calls it with the same n, runs
// work on its Share of the n items and gets the n results of all ranks in
// order, as one process running work(0, n) would. Results travel encoded
// with encoding/gob, which keeps float64 values (NaN included) exact.
//
// A rank whose work is interrupted (its error wraps ctx's) still takes
// part in the collective calls: every rank then returns an error wrapping
// context.Canceled — ctx.Err() where ctx was cancelled, ErrPeerInterrupted
// on the others — so that all leave together and none is left waiting. Any
// other error is returned at once; the command then ends the whole job
// (mpi.Comm.Abort).
func ShareWork[T any](ctx context.Context, comm Comm, n int, work func(lo, hi int) ([]T, error)) ([]T, error) {
	if comm == nil {
		comm = World()
	}
	size := comm.Size()
	lo, hi := Share(n, comm.Rank(), size)
	mine, err := work(lo, hi)
	stopped := false
	if err != nil {
		if ctx.Err() == nil || !errors.Is(err, ctx.Err()) || size == 1 {
			return nil, err
		}
		stopped = true
	} else if len(mine) != hi-lo {
		return nil, fmt.Errorf("train: rank %d made %d results for items %d…%d", comm.Rank(), len(mine), lo, hi-1)
	}
	if size == 1 {
		return mine, nil
	}
	flag := []float64{0}
	if stopped || ctx.Err() != nil {
		flag[0] = 1
	}
	if err := comm.AllreduceFloat64(flag); err != nil {
		return nil, fmt.Errorf("train: rank %d: %w", comm.Rank(), err)
	}
	if flag[0] > 0 {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, ErrPeerInterrupted
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(mine); err != nil {
		return nil, fmt.Errorf("train: rank %d: encoding its results: %w", comm.Rank(), err)
	}
	parts, err := comm.AllgatherBytes(buf.Bytes())
	if err != nil {
		return nil, fmt.Errorf("train: rank %d: gathering results: %w", comm.Rank(), err)
	}
	all := make([]T, 0, n)
	for r, p := range parts {
		var got []T
		if err := gob.NewDecoder(bytes.NewReader(p)).Decode(&got); err != nil {
			return nil, fmt.Errorf("train: rank %d: decoding rank %d's results: %w", comm.Rank(), r, err)
		}
		if l, h := Share(n, r, size); len(got) != h-l {
			return nil, fmt.Errorf("train: rank %d sent %d results for items %d…%d", r, len(got), l, h-1)
		}
		all = append(all, got...)
	}
	return all, nil
}

// BcastFromRoot gives every rank of comm rank 0's blob (the other ranks'
// argument is ignored): its length, then its bytes (MPI_Bcast).
func BcastFromRoot(comm Comm, blob []byte) ([]byte, error) {
	if comm == nil {
		comm = World()
	}
	if comm.Size() == 1 {
		return blob, nil
	}
	n := make([]byte, 8)
	if comm.Rank() == 0 {
		binary.LittleEndian.PutUint64(n, uint64(len(blob)))
	}
	if err := comm.Bcast(n, 0); err != nil {
		return nil, fmt.Errorf("train: rank %d: broadcast from rank 0: %w", comm.Rank(), err)
	}
	size := binary.LittleEndian.Uint64(n)
	if size > math.MaxInt32 {
		return nil, fmt.Errorf("train: rank %d: rank 0 broadcasts %d bytes, more than one call takes", comm.Rank(), size)
	}
	if comm.Rank() != 0 {
		blob = make([]byte, size)
	}
	if err := comm.Bcast(blob, 0); err != nil {
		return nil, fmt.Errorf("train: rank %d: broadcast from rank 0: %w", comm.Rank(), err)
	}
	return blob, nil
}

// agreeStop tells every rank whether any rank was interrupted (a
// collective call: every rank of the loop makes it at the same point).
func (l *Loop) agreeStop(ctx context.Context) (bool, error) {
	if l.size == 1 {
		return false, nil // one rank stops where its own error says
	}
	flag := []float64{0}
	if ctx.Err() != nil {
		flag[0] = 1
	}
	if err := l.comm.AllreduceFloat64(flag); err != nil {
		return false, fmt.Errorf("train: after update %d: %w", l.step, err)
	}
	return flag[0] > 0, nil
}

// Communicator is the loop's communicator (Config's Comm, or World), valid
// once Run or Resume has started.
func (l *Loop) Communicator() Comm {
	if l.comm != nil {
		return l.comm
	}
	if l.Comm != nil {
		return l.Comm
	}
	return World()
}

// RankDir returns the directory a stage writes its outputs to on this
// rank of the job (mpi.World): dir itself on rank 0, a fresh temporary
// directory on the other ranks, so that only rank 0 writes outputs while
// the stage code stays the same on every rank. The returned function
// removes the temporary directory.
func RankDir(dir string) (string, func(), error) {
	w := mpi.World()
	if w.Rank() == 0 {
		return dir, func() {}, nil
	}
	tmp, err := os.MkdirTemp("", fmt.Sprintf("gotune-rank%d-", w.Rank()))
	if err != nil {
		return "", nil, fmt.Errorf("train: rank %d scratch directory: %w", w.Rank(), err)
	}
	return tmp, func() { os.RemoveAll(tmp) }, nil
}

// ErrPeerInterrupted is returned by Run on a rank whose own context is not
// cancelled when another rank's was: the job stops as a whole. It wraps
// context.Canceled, so callers treat it as an interruption.
var ErrPeerInterrupted = fmt.Errorf("train: another rank was interrupted: %w", context.Canceled)

// keyHash is a 20-bit hash of a sorted key list: its square, summed over
// thousands of ranks, stays an exact float64.
func keyHash(keys []string) float64 {
	h := fnv.New32a()
	h.Write([]byte(strings.Join(keys, "\x00")))
	return float64(h.Sum32() >> 12)
}

// reduceMetrics sums sum over the ranks, in place. Every rank must report
// the same keys; it also reports whether any rank was interrupted.
func (l *Loop) reduceMetrics(sum Metrics, interrupted bool) (anyInterrupted bool, err error) {
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range sum {
			if !yield(k) {
				return
			}
		}
	})
	n, h := float64(len(keys)), keyHash(keys)
	var stop float64
	if interrupted {
		stop = 1
	}
	head := []float64{stop, n, n * n, h, h * h}
	if err := l.comm.AllreduceFloat64(head); err != nil {
		return false, fmt.Errorf("train: update %d: metrics: %w", l.step+1, err)
	}
	if head[0] > 0 {
		return true, nil
	}
	// Equal sums of x and x² over the ranks mean every rank has the same x.
	r := float64(l.size)
	if head[1] != r*n || head[2] != r*n*n || head[3] != r*h || head[4] != r*h*h {
		return false, fmt.Errorf("train: update %d: rank %d reports metrics %v, another rank reports others", l.step+1, l.rank, keys)
	}
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = sum[k]
	}
	if err := l.comm.AllreduceFloat64(vals); err != nil {
		return false, fmt.Errorf("train: update %d: metrics: %w", l.step+1, err)
	}
	for i, k := range keys {
		sum[k] = vals[i]
	}
	return false, nil
}

// reduceGrads sums the gradients over the ranks with one allreduce of a
// flat buffer holding all of them.
func (l *Loop) reduceGrads(grads [][]float32) error {
	if l.flat == nil {
		n := 0
		for _, g := range grads {
			n += len(g)
		}
		l.flat = make([]float32, n)
	}
	off := 0
	for _, g := range grads {
		off += copy(l.flat[off:], g)
	}
	if err := l.comm.AllreduceFloat32(l.flat); err != nil {
		return fmt.Errorf("train: update %d: gradients: %w", l.step+1, err)
	}
	off = 0
	for _, g := range grads {
		off += copy(g, l.flat[off:off+len(g)])
	}
	return nil
}

// AllreduceBytes is the number of bytes one update's gradient allreduce
// moves in (and out of) each rank: 4 bytes per trainable value.
func (l *Loop) AllreduceBytes() int {
	n := 0
	for _, p := range l.Params {
		n += 4 * len(p.Value)
	}
	return n
}

// rankState is what rank 0 broadcasts at the start of Run besides tensors.
type rankState struct {
	Step   int             `json:"step"`
	T      int             `json:"t"`
	RNG    []byte          `json:"rng"`
	Data   json.RawMessage `json:"data,omitempty"`
	Tokens float64         `json:"tokens"`
}

// syncFromRoot makes every rank's parameters, moments, random source and
// data position those of rank 0.
func (l *Loop) syncFromRoot() error {
	var blob []byte
	if l.rank == 0 {
		s, err := l.snap()
		if err != nil {
			return err
		}
		head, err := json.Marshal(rankState{Step: l.step, T: l.opt.T, RNG: s.rng, Data: s.data, Tokens: l.tokens})
		if err != nil {
			return fmt.Errorf("train: rank state: %w", err)
		}
		blob = binary.LittleEndian.AppendUint64(nil, uint64(len(head)))
		blob = append(blob, head...)
		for i, p := range l.Params {
			for _, t := range [][]float32{p.Value, l.opt.M[i], l.opt.V[i]} {
				for _, v := range t {
					blob = binary.LittleEndian.AppendUint32(blob, math.Float32bits(v))
				}
			}
		}
	}
	size := make([]byte, 8)
	binary.LittleEndian.PutUint64(size, uint64(len(blob)))
	if err := l.comm.Bcast(size, 0); err != nil {
		return fmt.Errorf("train: broadcasting rank 0's state: %w", err)
	}
	want := 8
	for _, p := range l.Params {
		want += 3 * 4 * len(p.Value)
	}
	n := int(binary.LittleEndian.Uint64(size))
	if l.rank != 0 {
		blob = make([]byte, n)
	}
	if err := l.comm.Bcast(blob, 0); err != nil {
		return fmt.Errorf("train: broadcasting rank 0's state: %w", err)
	}
	if l.rank == 0 {
		return nil
	}
	hn := int(binary.LittleEndian.Uint64(blob))
	if n < 8 || hn > n-8 || n-hn != want {
		return fmt.Errorf("train: rank %d: rank 0's state has %d bytes, this rank's %d parameters need %d besides the header; do all ranks train the same model?", l.rank, n, len(l.Params), want-8)
	}
	var st rankState
	if err := json.Unmarshal(blob[8:8+hn], &st); err != nil {
		return fmt.Errorf("train: rank %d: rank 0's state: %w", l.rank, err)
	}
	rest := blob[8+hn:]
	for i, p := range l.Params {
		for _, t := range [][]float32{p.Value, l.opt.M[i], l.opt.V[i]} {
			for j := range t {
				t[j] = math.Float32frombits(binary.LittleEndian.Uint32(rest))
				rest = rest[4:]
			}
		}
	}
	if err := l.pcg.UnmarshalBinary(st.RNG); err != nil {
		return fmt.Errorf("train: rank %d: rank 0's random state: %w", l.rank, err)
	}
	if len(st.Data) > 0 && l.Hooks.Restore != nil {
		if err := l.Hooks.Restore(st.Data); err != nil {
			return fmt.Errorf("train: rank %d: rank 0's data position: %w", l.rank, err)
		}
	}
	l.step, l.opt.T, l.tokens = st.Step, st.T, st.Tokens
	return nil
}
