//go:build amd64 && !purego

#include "textflag.h"

// func dequantizeAVX2(dst *float32, src *Block, n int)
//
// dst[32b + i] = src[b].D · float32(src[b].Q[i]) for b < n, i < 32; a
// block is 36 bytes: the float32 scale, then 32 int8s.
TEXT ·dequantizeAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX

loop:
	TESTQ CX, CX
	JE    done
	VBROADCASTSS (SI), Y0
	VPMOVSXBD    4(SI), Y1
	VPMOVSXBD    12(SI), Y2
	VPMOVSXBD    20(SI), Y3
	VPMOVSXBD    28(SI), Y4
	VCVTDQ2PS    Y1, Y1
	VCVTDQ2PS    Y2, Y2
	VCVTDQ2PS    Y3, Y3
	VCVTDQ2PS    Y4, Y4
	VMULPS       Y0, Y1, Y1
	VMULPS       Y0, Y2, Y2
	VMULPS       Y0, Y3, Y3
	VMULPS       Y0, Y4, Y4
	VMOVUPS      Y1, (DI)
	VMOVUPS      Y2, 32(DI)
	VMOVUPS      Y3, 64(DI)
	VMOVUPS      Y4, 96(DI)
	ADDQ         $36, SI
	ADDQ         $128, DI
	DECQ         CX
	JMP          loop

done:
	VZEROUPPER
	RET
