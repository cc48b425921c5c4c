//go:build amd64 && !purego

package kernel

//go:generate go run gen_sgemm.go

import "golang.org/x/sys/cpu"

// gemmKernelAVX512 is the 12×32 micro-kernel on AVX-512F (zmm registers,
// 16 floats a vector); see sgemm_amd64.s.
//
//go:noescape
func gemmKernelAVX512(k int, a, b, c *float32, ldc int, alpha float32, accumulate int)

// gemmKernelAVX2 is the 6×16 micro-kernel on AVX2 + FMA (ymm registers,
// 8 floats a vector); see sgemm_amd64.s.
//
//go:noescape
func gemmKernelAVX2(k int, a, b, c *float32, ldc int, alpha float32, accumulate int)

// The kernels this CPU can run, fastest first. The cache blocks are sized
// for a core with a 48 KiB L1 and 1–2 MiB of L2: an A panel (MR×KC) stays
// in L1 while the B block (KC×NC) streams from L2.
var gemmVariants = func() []*gemmVariant {
	var vs []*gemmVariant
	if cpu.X86.HasAVX512F {
		vs = append(vs, &gemmVariant{name: "AVX-512", mr: 12, nr: 32, kc: 384, mc: 1536, nc: 512, kernel: gemmKernelAVX512})
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		vs = append(vs, &gemmVariant{name: "AVX2", mr: 6, nr: 16, kc: 384, mc: 1536, nc: 512, kernel: gemmKernelAVX2})
	}
	return vs
}()
