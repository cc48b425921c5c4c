package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/mpi"
)

// TestEnvMPI requires `gotune env` to say whether MPI is built in and that
// a process not started by mpirun runs one rank.
func TestEnvMPI(t *testing.T) {
	if launched, _ := mpi.Launched(); launched {
		t.Skip("started by mpirun")
	}
	var out bytes.Buffer
	envCmd.SetOut(&out)
	defer envCmd.SetOut(nil)
	if err := envCmd.RunE(envCmd, nil); err != nil {
		t.Fatal(err)
	}
	want := "mpi:         not built in (build with -tags mpi); 1 rank\n"
	if mpi.BuiltIn() {
		want = "mpi:         built in; 1 rank (not started by mpirun)\n"
	}
	if !strings.Contains(out.String(), want) {
		t.Errorf("gotune env printed\n%s\nwant the line %q", out.String(), want)
	}
}
