package mpi

import (
	"slices"
	"strings"
	"testing"
)

// TestSingleRank checks the world of a process not started by mpirun: one
// rank, an allreduce that leaves its buffer unchanged, a broadcast that
// does nothing and refuses a root that is no rank.
func TestSingleRank(t *testing.T) {
	if launched, _ := Launched(); launched {
		t.Skip("started by mpirun")
	}
	w, err := Init()
	if err != nil {
		t.Fatal(err)
	}
	if w.Rank() != 0 || w.Size() != 1 || w.MPI() {
		t.Fatalf("world = rank %d of %d (MPI %v), want rank 0 of 1 without MPI", w.Rank(), w.Size(), w.MPI())
	}
	if World() != w {
		t.Fatal("World differs from what Init returned")
	}
	f := []float32{1, -2, 3.5}
	if err := w.AllreduceFloat32(f); err != nil || !slices.Equal(f, []float32{1, -2, 3.5}) {
		t.Fatalf("AllreduceFloat32 = %v, %v; want the buffer unchanged", f, err)
	}
	d := []float64{0.25, 7}
	if err := w.AllreduceFloat64(d); err != nil || !slices.Equal(d, []float64{0.25, 7}) {
		t.Fatalf("AllreduceFloat64 = %v, %v; want the buffer unchanged", d, err)
	}
	b := []byte("abc")
	if err := w.Bcast(b, 0); err != nil || string(b) != "abc" {
		t.Fatalf("Bcast = %q, %v", b, err)
	}
	if g, err := w.AllgatherBytes(b); err != nil || len(g) != 1 || string(g[0]) != "abc" {
		t.Fatalf("AllgatherBytes = %q, %v; want [abc]", g, err)
	}
	if err := w.Bcast(b, 1); err == nil {
		t.Fatal("Bcast from root 1 of a one-rank world succeeded")
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
}

func TestLaunched(t *testing.T) {
	for _, c := range []struct {
		env  string
		ok   bool
		size int
	}{{"", false, 0}, {"4", true, 4}, {"x", false, 0}, {"0", false, 0}} {
		t.Setenv(LaunchedEnv, c.env)
		if ok, n := Launched(); ok != c.ok || n != c.size {
			t.Errorf("%s=%q: Launched() = %v, %d; want %v, %d", LaunchedEnv, c.env, ok, n, c.ok, c.size)
		}
	}
}

// TestInitWithoutMPI: a binary built without MPI but started by mpirun on
// several ranks refuses to run (each rank would train alone), and runs on
// one rank when mpirun starts just one.
func TestInitWithoutMPI(t *testing.T) {
	if BuiltIn() {
		t.Skip("built with MPI")
	}
	defer func() { inited = false }()
	t.Setenv(LaunchedEnv, "2")
	inited = false
	if _, err := Init(); err == nil || !strings.Contains(err.Error(), "-tags mpi") {
		t.Errorf("Init on 2 ranks without MPI: %v, want an error naming -tags mpi", err)
	}
	t.Setenv(LaunchedEnv, "1")
	inited = false
	if w, err := Init(); err != nil || w.Size() != 1 {
		t.Errorf("Init on 1 rank without MPI: size %d, %v", w.Size(), err)
	}
}
