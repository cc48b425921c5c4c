//go:build openblas

package blas

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/kernel"
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

// TestBothKernels runs the products' checks on OpenBLAS's kernels and on
// gotune's, which an OpenBLAS build runs in their place where OpenBLAS's
// are narrower (chooseOwn), and checks that Kernel and Serial say which
// runs.
func TestBothKernels(t *testing.T) {
	if !kernel.GemmAvailable() {
		t.Skip("no kernel of gotune's runs on this CPU")
	}
	for _, own := range []bool{false, true} {
		t.Run(fmt.Sprintf("own=%v", own), func(t *testing.T) {
			restore, err := UseOwn(own)
			if err != nil {
				t.Fatal(err)
			}
			defer restore()
			if strings.Contains(Kernel(), "in place of OpenBLAS's") != own {
				t.Fatalf("Kernel() = %q with own = %v", Kernel(), own)
			}
			if own && Serial() {
				t.Fatal("Serial() on gotune's kernels, which split their products themselves")
			}
			if !own && (threadsUnset() || os.Getenv("OPENBLAS_NUM_THREADS") == "1") && !Serial() {
				t.Fatal("Serial() false on OpenBLAS's kernels with one thread: the model would leave a core idle")
			}
			checkGemm(t)
			TestSgemmStrided(t)
			if own { // bit for bit gotune's product, not OpenBLAS's
				const m, n, k = 300, 257, 129
				a, b := make([]float32, m*k), make([]float32, k*n)
				for i := range a {
					a[i] = float32(math.Sin(float64(i)))
				}
				for i := range b {
					b[i] = float32(math.Cos(float64(i)))
				}
				got, want := make([]float32, m*n), make([]float32, m*n)
				Gemm(false, true, m, n, k, 1, a, b, 0, got)
				ownSgemm(false, true, m, n, k, 1, a, k, b, k, 0, want, n)
				if !slices.Equal(got, want) {
					t.Fatal("Gemm on gotune's kernels differs from ownSgemm")
				}
			}
		})
	}
}

// BenchmarkGEMMKernels times 2048³ on OpenBLAS's kernels and on gotune's
// in one process, what GOTUNE_GEMM chooses between under the kernels
// OPENBLAS_CORETYPE selects.
func BenchmarkGEMMKernels(b *testing.B) {
	const n = 2048
	for _, k := range []struct {
		name string
		own  bool
	}{{"openblas", false}, {"gotune", true}} {
		b.Run(fmt.Sprintf("%s/%d", k.name, n), func(b *testing.B) {
			restore, err := UseOwn(k.own)
			if err != nil {
				b.Skip(err)
			}
			defer restore()
			benchSquare(b, n)
		})
	}
}
