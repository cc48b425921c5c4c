//go:build amd64 && !purego

package kernel

import "golang.org/x/sys/cpu"

// transpose8Rows sets dst[p·ldd + i] = src[i·lds + p] for i < 8 and
// p < 8·blocks: eight rows of src become eight columns of dst, an 8×8
// block at a time in ymm registers (AVX). Strides are in floats; the
// caller checks the bounds.
//
//go:noescape
func transpose8Rows(dst *float32, ldd int, src *float32, lds int, blocks int)

// haveTranspose8 reports whether transpose8Rows runs on this CPU.
var haveTranspose8 = cpu.X86.HasAVX
