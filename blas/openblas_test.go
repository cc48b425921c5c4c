//go:build openblas

package blas

import (
	"slices"
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
