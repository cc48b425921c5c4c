//go:build !openblas

package blas

import (
	"fmt"
	"os"
)

const backend = "purego"

// sgemm runs the products on gotune's own kernels (ownSgemm).
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ownSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// Kernel names the kernels in use: the AVX-512 or AVX2 micro-kernels
// where the CPU has them, else gonum's pure-Go code.
func Kernel() string { return ownKernelName() }

func serial() bool { return false }

// settingErr is a GOTUNE_GEMM value this build cannot follow.
var settingErr = pureGoSetting(os.Getenv(GemmEnv))

// pureGoSetting checks a GOTUNE_GEMM setting in the build without
// OpenBLAS, where every value but "openblas" means gotune's kernels.
func pureGoSetting(setting string) error {
	switch setting {
	case "", "auto", "gotune":
		return nil
	case "openblas":
		return fmt.Errorf("%s=openblas: this build has no OpenBLAS (build with -tags openblas, or unset it)", GemmEnv)
	}
	return fmt.Errorf("%s=%q: want auto, openblas or gotune", GemmEnv, setting)
}

// UseOwn is the OpenBLAS build's switch between OpenBLAS's kernels and
// gotune's; this build has only gotune's, so own = false is an error.
func UseOwn(own bool) (restore func(), err error) {
	if !own {
		return nil, fmt.Errorf("blas: this build has no OpenBLAS")
	}
	return func() {}, nil
}

// SettingError is the error in the GOTUNE_GEMM setting, if any (the
// command refuses to start with it); nil when it is valid or unset.
func SettingError() error { return settingErr }

// PreferredEnv returns nil: the pure-Go kernels read no environment.
func PreferredEnv() []string { return nil }

// Advice returns "": the pure-Go build runs its own kernels.
func Advice() string { return "" }
