//go:build mpi && cgo

package mpi

// Debian's libopenmpi-dev installs ompi.pc; pkg-config gives its include
// and library directories.

/*
#cgo pkg-config: ompi
#include <mpi.h>
#include <stdlib.h>

static int gotune_init(int *rank, int *size, int *provided) {
	int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
	if (rc != MPI_SUCCESS) return rc;
	// Errors are returned, not fatal, so that they reach the caller with
	// context; a rank that dies is still detected by mpirun, which ends
	// the job.
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	rc = MPI_Comm_rank(MPI_COMM_WORLD, rank);
	if (rc != MPI_SUCCESS) return rc;
	return MPI_Comm_size(MPI_COMM_WORLD, size);
}
static int gotune_allreduce_float(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int gotune_allreduce_double(double *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
static int gotune_bcast(void *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int gotune_allgather_int64(long long mine, long long *all) {
	return MPI_Allgather(&mine, 1, MPI_LONG_LONG, all, 1, MPI_LONG_LONG, MPI_COMM_WORLD);
}
static int gotune_allgatherv_bytes(void *mine, int n, void *all, int *counts, int *displs) {
	return MPI_Allgatherv(mine, n, MPI_BYTE, all, counts, displs, MPI_BYTE, MPI_COMM_WORLD);
}
static void gotune_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }
static int gotune_finalize(void) { return MPI_Finalize(); }
static int gotune_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static void gotune_error_string(int rc, char *s) {
	int n = 0;
	MPI_Error_string(rc, s, &n);
	s[n] = 0;
}
*/
import "C"

import (
	"fmt"
	"math"
	"runtime"
	"unsafe"
)

const builtIn = true

// maxCount is the most elements one MPI call takes (its count is a C int);
// longer buffers go in chunks.
const maxCount = math.MaxInt32

func mpiError(what string, rc C.int) error {
	buf := (*C.char)(C.malloc(C.MPI_MAX_ERROR_STRING + 1))
	defer C.free(unsafe.Pointer(buf))
	C.gotune_error_string(rc, buf)
	return fmt.Errorf("mpi: %s: %s (error %d)", what, C.GoString(buf), int(rc))
}

func initC() (rank, size int, err error) {
	// Go moves goroutines between threads; MPI_THREAD_SERIALIZED lets any
	// thread call MPI as long as calls do not overlap, which Comm's mutex
	// ensures.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r, s, provided C.int
	if rc := C.gotune_init(&r, &s, &provided); rc != C.MPI_SUCCESS {
		return 0, 1, mpiError("MPI_Init_thread", rc)
	}
	if provided < C.gotune_thread_serialized() {
		C.gotune_abort(1)
		return 0, 1, fmt.Errorf("mpi: the MPI library provides thread level %d, gotune needs MPI_THREAD_SERIALIZED", int(provided))
	}
	return int(r), int(s), nil
}

func allreduceFloat32(buf []float32) error {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.gotune_allreduce_float((*C.float)(unsafe.Pointer(&buf[0])), C.int(n)); rc != C.MPI_SUCCESS {
			return mpiError("MPI_Allreduce", rc)
		}
		buf = buf[n:]
	}
	return nil
}

func allreduceFloat64(buf []float64) error {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.gotune_allreduce_double((*C.double)(unsafe.Pointer(&buf[0])), C.int(n)); rc != C.MPI_SUCCESS {
			return mpiError("MPI_Allreduce", rc)
		}
		buf = buf[n:]
	}
	return nil
}

func bcast(buf []byte, root int) error {
	for len(buf) > 0 {
		n := min(len(buf), maxCount)
		if rc := C.gotune_bcast(unsafe.Pointer(&buf[0]), C.int(n), C.int(root)); rc != C.MPI_SUCCESS {
			return mpiError("MPI_Bcast", rc)
		}
		buf = buf[n:]
	}
	return nil
}

func allgatherBytes(mine []byte, size int) ([][]byte, error) {
	lens := make([]C.longlong, size)
	if rc := C.gotune_allgather_int64(C.longlong(len(mine)), &lens[0]); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Allgather", rc)
	}
	counts, displs := make([]C.int, size), make([]C.int, size)
	total := int64(0)
	for r, n := range lens {
		if total+int64(n) > maxCount {
			return nil, fmt.Errorf("mpi: allgather of %d bytes exceeds one MPI call's %d", total+int64(n), maxCount)
		}
		counts[r], displs[r] = C.int(n), C.int(total)
		total += int64(n)
	}
	// Go memory without Go pointers may be passed to C for the call.
	all := make([]byte, total+1)
	src := unsafe.Pointer(&all[total]) // any valid address for an empty buffer
	if len(mine) > 0 {
		src = unsafe.Pointer(&mine[0])
	}
	if rc := C.gotune_allgatherv_bytes(src, C.int(len(mine)), unsafe.Pointer(&all[0]), &counts[0], &displs[0]); rc != C.MPI_SUCCESS {
		return nil, mpiError("MPI_Allgatherv", rc)
	}
	out := make([][]byte, size)
	for r := range out {
		lo, hi := int(displs[r]), int(displs[r])+int(counts[r])
		out[r] = all[lo:hi:hi]
	}
	return out, nil
}

func abort(code int) { C.gotune_abort(C.int(code)) }

func finalize() error {
	if rc := C.gotune_finalize(); rc != C.MPI_SUCCESS {
		return mpiError("MPI_Finalize", rc)
	}
	return nil
}
