//go:build openblas

package blas

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestPreferredEnv(t *testing.T) {
	cases := []struct {
		coretype, kernel string
		avx2, avx512     bool
		want             []string
	}{
		{"", "Prescott", true, true, []string{"OPENBLAS_CORETYPE=SkylakeX"}},
		{"", "Prescott", true, false, []string{"OPENBLAS_CORETYPE=Haswell"}},
		{"", "Nehalem", true, false, []string{"OPENBLAS_CORETYPE=Haswell"}},
		{"", "Prescott", false, false, nil},       // the CPU has nothing better
		{"Prescott", "Prescott", true, true, nil}, // the user's choice is kept
		{"", "Haswell", true, true, nil},          // OpenBLAS knew the CPU
		{"", "SkylakeX", true, true, nil},
		{"", "Zen", true, false, nil},
	}
	for _, c := range cases {
		if got := preferredEnv(c.coretype, c.kernel, c.avx2, c.avx512); !slices.Equal(got, c.want) {
			t.Errorf("preferredEnv(%q, %q, %v, %v) = %q, want %q", c.coretype, c.kernel, c.avx2, c.avx512, got, c.want)
		}
	}
	if Kernel() == "" {
		t.Error("Kernel() is empty")
	}
}

// TestPreferredKernels runs TestGemmMatchesNaive again in a fresh process
// under the kernels PreferredEnv picks, the kernels the gotune command
// restarts itself with, when they differ from this process's.
func TestPreferredKernels(t *testing.T) {
	env := PreferredEnv()
	if len(env) == 0 {
		t.Skipf("OpenBLAS's own choice (%s) is kept on this machine", Kernel())
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestGemmMatchesNaive$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	kernel := "kernels " + strings.TrimPrefix(env[0], "OPENBLAS_CORETYPE=")
	if err != nil || !strings.Contains(string(out), "--- PASS: TestGemmMatchesNaive") || !strings.Contains(string(out), kernel) {
		t.Fatalf("TestGemmMatchesNaive with %v: %v\n%s", env, err, out)
	}
	t.Logf("GEMM checked with %v", env)
}
