//go:build mpi && !cgo

package mpi

// The mpi build tag binds Open MPI through cgo: with CGO_ENABLED=0 the
// build would silently fall back to the one-rank stub, so it fails here
// instead, naming the cause.
var _ = the_mpi_build_tag_needs_cgo_set_CGO_ENABLED_1
