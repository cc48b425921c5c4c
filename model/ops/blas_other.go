//go:build !openblas

package ops

// serialBLAS is false for the pure-Go kernel, which parallelises itself.
const serialBLAS = false
