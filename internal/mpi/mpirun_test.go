//go:build mpi && cgo

package mpi_test

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gotune/gotune/internal/mpi"
	"github.com/gotune/gotune/internal/mpi/mpitest"
)

// childEnv marks the test binary started by mpirun in TestMPIRun as a rank.
const childEnv = "GOTUNE_MPI_TEST_CHILD"

// TestMPIRun starts this test binary as 3 ranks under mpirun and has
// TestRankChild check the collectives in each.
func TestMPIRun(t *testing.T) {
	mpirun := mpitest.Mpirun(t)
	cmd := exec.Command(mpirun, append(mpitest.MpirunArgs(3), os.Args[0], "-test.run=^TestRankChild$", "-test.v")...)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("mpirun: %v\n%s", err, out)
	}
	if n := strings.Count(string(out), "rank ok"); n != 3 {
		t.Fatalf("%d ranks reported success, want 3:\n%s", n, out)
	}
}

// TestRankChild runs inside one rank of TestMPIRun.
func TestRankChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("run by TestMPIRun under mpirun")
	}
	w, err := mpi.Init()
	if err != nil {
		t.Fatal(err)
	}
	if w.Size() != 3 || !w.MPI() {
		t.Fatalf("size %d (MPI %v), want 3 over MPI", w.Size(), w.MPI())
	}
	r := w.Rank()
	f := []float32{float32(r), 1, float32(r * r)}
	if err := w.AllreduceFloat32(f); err != nil {
		t.Fatal(err)
	}
	if f[0] != 3 || f[1] != 3 || f[2] != 5 {
		t.Fatalf("rank %d: float32 sum %v, want [3 3 5]", r, f)
	}
	d := []float64{0.5 * float64(r)}
	if err := w.AllreduceFloat64(d); err != nil || d[0] != 1.5 {
		t.Fatalf("rank %d: float64 sum %v, %v; want 1.5", r, d, err)
	}
	b := []byte(fmt.Sprintf("from %d", r))
	if err := w.Bcast(b, 2); err != nil || string(b) != "from 2" {
		t.Fatalf("rank %d: broadcast %q, %v; want \"from 2\"", r, b, err)
	}
	g, err := w.AllgatherBytes([]byte(strings.Repeat("x", r)))
	if err != nil || len(g) != 3 {
		t.Fatalf("rank %d: allgather %q, %v", r, g, err)
	}
	for k, b := range g {
		if string(b) != strings.Repeat("x", k) {
			t.Fatalf("rank %d: allgather gives rank %d's %q, want %d bytes x", r, k, b, k)
		}
	}
	if err := w.Finalize(); err != nil {
		t.Fatal(err)
	}
	fmt.Println("rank ok")
}
