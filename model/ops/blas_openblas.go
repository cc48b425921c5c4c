//go:build openblas

package ops

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

// serialBLAS reports that OpenBLAS runs each call on one thread (as with
// OPENBLAS_NUM_THREADS=1), so gemm splits large products between
// goroutines itself. OpenBLAS's own worker threads busy-wait between calls
// and compete with the Go code that runs between them; goroutines do not.
var serialBLAS = C.openblas_get_num_threads() == 1
