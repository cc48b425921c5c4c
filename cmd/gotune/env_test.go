package main

import (
	"bytes"
	"os"
	"os/exec"
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

// TestGemmSettingRefused: a GOTUNE_GEMM value gotune does not know stops
// every command before it runs, naming the variable and the value (in a
// child process, since the setting is read when the process starts).
func TestGemmSettingRefused(t *testing.T) {
	if os.Getenv("GOTUNE_TEST_GEMM_CHILD") == "1" {
		err := rootCmd.PersistentPreRunE(envCmd, nil)
		if err == nil || !strings.Contains(err.Error(), `GOTUNE_GEMM="bogus"`) {
			t.Fatalf("GOTUNE_GEMM=bogus: PersistentPreRunE returned %v", err)
		}
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestGemmSettingRefused$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), "GOTUNE_TEST_GEMM_CHILD=1", "GOTUNE_GEMM=bogus")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestGemmSettingRefused") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}
