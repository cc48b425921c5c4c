//go:build !amd64 || purego

package kernel

// gemmVariants is empty: there are no GEMM micro-kernels for this
// architecture (or the purego build asked for none).
var gemmVariants []*gemmVariant
