// Package mpitest helps tests start ranks under mpirun: it finds mpirun, skips
// (or, with GOTUNE_REQUIRE_MPI set, fails) when MPI is missing, and gives
// the arguments that work on one machine and as root.
//
// May import: internal/mpi and the standard library (imported by tests only).
package mpitest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/gotune/gotune/internal/mpi"
)

// RequireEnv, when set, turns the skips of the tests that need mpirun and
// an MPI build into failures (CI sets it).
const RequireEnv = "GOTUNE_REQUIRE_MPI"

// Mpirun returns the path of mpirun for a test that starts ranks; it skips
// the test when mpirun is absent or the test binary lacks MPI, or fails it
// when RequireEnv is set.
func Mpirun(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("mpirun")
	switch {
	case err != nil:
		skipOrFail(t, "mpirun is not installed (apt-get install openmpi-bin libopenmpi-dev)")
	case !mpi.BuiltIn():
		skipOrFail(t, "built without MPI (go test -tags mpi)")
	}
	return path
}

func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s is set but %s", RequireEnv, why)
	}
	t.Skip(why)
}

// MpirunArgs are mpirun's arguments for n ranks on this machine: more ranks
// than cores allowed, and, when run as root (containers, CI), Open MPI's
// consent to it.
func MpirunArgs(n int) []string {
	args := []string{"-np", strconv.Itoa(n), "--oversubscribe"}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-run-as-root")
	}
	return args
}
