//go:build amd64 && !purego

#include "textflag.h"

// func widen8(dst []float32, src []uint16)
// dst[i] = float32 with the bits src[i] << 16, eight at a time; len(src)
// is a positive multiple of 8 and len(dst) ≥ len(src).
TEXT ·widen8(SB), NOSPLIT, $0-48
	MOVQ         dst_base+0(FP), DI
	MOVQ         src_base+24(FP), SI
	MOVQ         src_len+32(FP), CX

widenloop:
	VPMOVZXWD    (SI), Y0            // eight uint16 → eight uint32
	VPSLLD       $16, Y0, Y0
	VMOVUPS      Y0, (DI)
	ADDQ         $16, SI
	ADDQ         $32, DI
	SUBQ         $8, CX
	JNZ          widenloop
	VZEROUPPER
	RET
