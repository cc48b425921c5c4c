//go:build openblas

package blas

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/gotune/gotune/internal/kernel"
)

const backend = "openblas"

// useOwn is set when the products run on gotune's kernels instead of
// OpenBLAS's (chooseOwn); settingErr is a GOTUNE_GEMM value chooseOwn
// refused, which leaves gotune to choose.
var useOwn, settingErr = chooseOwn(os.Getenv(GemmEnv), openblasKernel(), kernel.GemmKernel())

// SettingError is the error in the GOTUNE_GEMM setting, if any (the
// command refuses to start with it); nil when it is valid or unset.
func SettingError() error { return settingErr }

// UseOwn makes the products run on gotune's kernels (own) or on
// OpenBLAS's until restore is called, so that tests and benchmarks can
// compare the two in one process; an error where gotune has no kernel
// for this CPU.
func UseOwn(own bool) (restore func(), err error) {
	if own && !kernel.GemmAvailable() {
		return nil, fmt.Errorf("blas: no kernel of gotune's runs on this CPU")
	}
	old := useOwn
	useOwn = own
	return func() { useOwn = old }, nil
}

// oneThread records, once init has set the thread count, whether OpenBLAS
// runs each call on one thread (read on every product, so not asked of
// OpenBLAS each time).
var oneThread bool

func serial() bool { return !useOwn && oneThread }

// openblasKernel names the CPU kernels OpenBLAS chose (for example
// "Haswell").
func openblasKernel() string { return C.GoString(C.openblas_get_corename()) }

// The model's operations split each product across the cores themselves, so
// OpenBLAS's own threads would only compete with them: unless the user set
// a thread count, OpenBLAS runs one thread.
func init() {
	if threadsUnset() {
		C.openblas_set_num_threads(1)
	}
	oneThread = C.openblas_get_num_threads() == 1
}

func threadsUnset() bool {
	for _, v := range []string{"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"} {
		if os.Getenv(v) != "" {
			return false
		}
	}
	return true
}

// Kernel names the CPU kernels the products run on: OpenBLAS's (for
// example "Haswell"), or gotune's own, with the OpenBLAS kernels they
// replace.
func Kernel() string {
	if useOwn {
		return "gotune's " + kernel.GemmKernel() + " assembly (in place of OpenBLAS's " + openblasKernel() + ")"
	}
	return openblasKernel()
}

// PreferredEnv returns the environment settings (NAME=value) that make
// OpenBLAS faster in this process but that OpenBLAS only reads when it is
// loaded, so they take effect in a fresh process only; nil when there are
// none.
//
// OpenBLAS picks its kernels from the CPU's model number; on a CPU it does
// not know (virtual machines often report one) it falls back to SSE3
// kernels ("Prescott") even when the CPU and the OS support AVX2 or
// AVX-512. Then PreferredEnv names the kernels the CPU does support:
// measured on such a virtual machine, pretraining the tiny model ran at
// 9,600 tokens/s on SkylakeX kernels and 7,700 on Haswell's against 4,000
// on the fallback. An OPENBLAS_CORETYPE the user set is kept.
func PreferredEnv() []string {
	x := cpu.X86
	avx512 := x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ && x.HasAVX512CD
	return preferredEnv(os.Getenv("OPENBLAS_CORETYPE"), openblasKernel(), x.HasAVX2 && x.HasFMA, avx512)
}

// Advice names a faster setting when OpenBLAS runs kernels below what
// the CPU supports, as under OPENBLAS_CORETYPE=Haswell on an AVX-512 CPU
// with GOTUNE_GEMM=openblas (kernelAdvice); "" otherwise.
func Advice() string {
	if useOwn {
		return ""
	}
	x := cpu.X86
	avx512 := x.HasAVX512F && x.HasAVX512BW && x.HasAVX512VL && x.HasAVX512DQ && x.HasAVX512CD
	return kernelAdvice(openblasKernel(), os.Getenv("OPENBLAS_CORETYPE"), avx512)
}

func preferredEnv(coretype, kernel string, avx2, avx512 bool) []string {
	if coretype != "" {
		return nil
	}
	if openblasLevels[strings.ToLower(kernel)] >= 1 {
		return nil // OpenBLAS knows the CPU: AVX2 or AVX-512 kernels
	}
	switch {
	case avx512 && avx2:
		return []string{"OPENBLAS_CORETYPE=SkylakeX"}
	case avx2:
		return []string{"OPENBLAS_CORETYPE=Haswell"}
	}
	return nil
}
func sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if useOwn {
		ownSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	// Bounds are checked here because C will not check them.
	need := func(rows, cols, ld int) int { return (rows-1)*ld + cols }
	ra, ca := m, k
	if transA {
		ra, ca = k, m
	}
	rb, cb := k, n
	if transB {
		rb, cb = n, k
	}
	if k > 0 && (len(a) < need(ra, ca, lda) || len(b) < need(rb, cb, ldb)) || len(c) < need(m, n, ldc) {
		panic("blas: sgemm slice too short")
	}
	if k == 0 {
		gonumSgemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	C.cblas_sgemm(C.CblasRowMajor, cTrans(transA), cTrans(transB), C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

func cTrans(t bool) C.enum_CBLAS_TRANSPOSE {
	if t {
		return C.CblasTrans
	}
	return C.CblasNoTrans
}
