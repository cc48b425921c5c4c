//go:build openblas

package generate

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import "unsafe"

// matvec computes y = w·x for w (out, in) with OpenBLAS's threaded sgemv,
// which streams the weights once at close to memory bandwidth.
func matvec(y, x, w []float32, in, out int) {
	if len(w) < out*in || len(x) < in || len(y) < out {
		panic("generate: matvec slice too short")
	}
	if out == 0 || in == 0 {
		clear(y[:out])
		return
	}
	C.cblas_sgemv(C.CblasRowMajor, C.CblasNoTrans, C.blasint(out), C.blasint(in), 1,
		(*C.float)(unsafe.Pointer(&w[0])), C.blasint(in),
		(*C.float)(unsafe.Pointer(&x[0])), 1, 0,
		(*C.float)(unsafe.Pointer(&y[0])), 1)
}
