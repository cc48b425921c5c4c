// Package mpi is a thin binding of the MPI C API (Open MPI's libmpi) for
// data-parallel training: the ranks of the world communicator, in-place sum
// allreduce of float32 and float64 buffers, broadcast and allgather of
// bytes, abort and finalize. It is built over cgo only with the build tag "mpi"; without the
// tag, or when the process was not started by mpirun, World is one rank
// (rank 0), an allreduce leaves its buffer as it is and a broadcast does
// nothing, so a plain build stays pure Go and runs single-process.
//
// May import: the standard library only (it is part of internal/).
package mpi

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// LaunchedEnv is the variable Open MPI's mpirun sets in every process it
// starts: the number of ranks of the job.
const LaunchedEnv = "OMPI_COMM_WORLD_SIZE"

// Comm is the world communicator of the job. Its methods may be called
// from any goroutine; calls are serialised.
type Comm struct {
	rank, size int
	mu         sync.Mutex
	single     bool // no MPI underneath: one rank
}

var (
	worldMu sync.Mutex
	world   = &Comm{rank: 0, size: 1, single: true}
	inited  bool
)

// BuiltIn reports whether this binary was built with MPI (the build tag
// "mpi").
func BuiltIn() bool { return builtIn }

// Launched reports whether the process was started by mpirun (Open MPI's
// OMPI_COMM_WORLD_SIZE is set), and the job's size it announces.
func Launched() (bool, int) {
	s := os.Getenv(LaunchedEnv)
	if s == "" {
		return false, 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return false, 0
	}
	return true, n
}

// Init joins the MPI job when the binary has MPI built in and the process
// was started by mpirun; otherwise World stays one rank. It is called once,
// first thing in main; calling it again returns the same world.
func Init() (*Comm, error) {
	worldMu.Lock()
	defer worldMu.Unlock()
	if inited {
		return world, nil
	}
	inited = true
	launched, n := Launched()
	if !launched {
		return world, nil
	}
	if !builtIn {
		if n > 1 {
			return world, fmt.Errorf("mpi: started by mpirun with %s=%d, but this gotune was built without MPI (build it with -tags mpi)", LaunchedEnv, n)
		}
		return world, nil
	}
	rank, size, err := initC()
	if err != nil {
		return world, err
	}
	world = &Comm{rank: rank, size: size}
	return world, nil
}

// World is the job's communicator: one rank before Init or without MPI.
func World() *Comm {
	worldMu.Lock()
	defer worldMu.Unlock()
	return world
}

// Rank is this process's 0-based rank.
func (c *Comm) Rank() int { return c.rank }

// Size is the number of ranks.
func (c *Comm) Size() int { return c.size }

// MPI reports whether the communicator runs over MPI (false: one rank, no
// library underneath).
func (c *Comm) MPI() bool { return !c.single }

// AllreduceFloat32 replaces buf, on every rank, by the element-wise sum of
// the bufs of all ranks (MPI_Allreduce, MPI_FLOAT, MPI_SUM, in place).
// Every rank must pass a buffer of the same length.
func (c *Comm) AllreduceFloat32(buf []float32) error {
	if c.single || len(buf) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return allreduceFloat32(buf)
}

// AllreduceFloat64 is AllreduceFloat32 for float64 (MPI_DOUBLE).
func (c *Comm) AllreduceFloat64(buf []float64) error {
	if c.single || len(buf) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return allreduceFloat64(buf)
}

// Bcast copies root's buf into the bufs of the other ranks (MPI_Bcast,
// MPI_BYTE); every rank passes a buffer of the same length.
func (c *Comm) Bcast(buf []byte, root int) error {
	if root < 0 || root >= c.size {
		return fmt.Errorf("mpi: broadcast root %d is not a rank of %d", root, c.size)
	}
	if c.single || len(buf) == 0 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return bcast(buf, root)
}

// AllgatherBytes gives every rank the buffers of all ranks, indexed by
// rank (MPI_Allgather of the lengths, then MPI_Allgatherv, MPI_BYTE); the
// ranks' buffers may differ in length. On one rank it returns mine alone.
func (c *Comm) AllgatherBytes(mine []byte) ([][]byte, error) {
	if c.single {
		return [][]byte{mine}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return allgatherBytes(mine, c.size)
}

// Abort ends every rank of the job with the exit code (MPI_Abort); without
// MPI it exits the process. It does not return.
func (c *Comm) Abort(code int) {
	if !c.single {
		abort(code)
	}
	os.Exit(code)
}

// Finalize leaves the MPI job (MPI_Finalize); without MPI it does nothing.
// No other method may be called after it.
func (c *Comm) Finalize() error {
	if c.single {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return finalize()
}

// errNotBuilt is returned by the C calls of a build without MPI; World
// never reaches them.
var errNotBuilt = errors.New("mpi: this binary was built without MPI (build tag mpi)")
