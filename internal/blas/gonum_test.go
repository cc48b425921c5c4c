//go:build !openblas

package blas

import (
	"strings"
	"testing"
)

// TestPureGoSetting: the build without OpenBLAS follows every GOTUNE_GEMM
// value but "openblas", which it refuses by name, as it does values it
// does not know.
func TestPureGoSetting(t *testing.T) {
	for setting, want := range map[string]string{
		"": "", "auto": "", "gotune": "",
		"openblas": "GOTUNE_GEMM=openblas: this build has no OpenBLAS",
		"blas":     `GOTUNE_GEMM="blas"`,
	} {
		err := pureGoSetting(setting)
		if (err == nil) != (want == "") || err != nil && !strings.Contains(err.Error(), want) {
			t.Errorf("pureGoSetting(%q) = %v, want an error with %q", setting, err, want)
		}
	}
	if Serial() {
		t.Error("Serial() in the pure-Go build, whose kernels split their products themselves")
	}
}
