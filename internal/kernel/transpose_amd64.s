//go:build amd64 && !purego

#include "textflag.h"

// func transpose8Rows(dst *float32, ldd int, src *float32, lds int, blocks int)
//
// Each block: load eight rows of eight floats (a…h), interleave pairs
// (VUNPCKLPS/VUNPCKHPS), then quadruples (VSHUFPS), then swap 128-bit
// lanes (VPERM2F128), and store eight columns.
TEXT ·transpose8Rows(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	MOVQ blocks+32(FP), CX
	SHLQ $2, R8                 // bytes per dst row
	SHLQ $2, R9                 // bytes per src row
	LEAQ (R9)(R9*2), R10        // 3 src rows
	LEAQ (R8)(R8*2), R11        // 3 dst rows
	TESTQ CX, CX
	JEQ  done

loop:
	// Rows a, b, c, d at SI; e, f, g, h at BX = SI + 4 rows.
	LEAQ (SI)(R9*4), BX
	VMOVUPS (SI), Y0
	VMOVUPS (SI)(R9*1), Y1
	VMOVUPS (SI)(R9*2), Y2
	VMOVUPS (SI)(R10*1), Y3
	VMOVUPS (BX), Y4
	VMOVUPS (BX)(R9*1), Y5
	VMOVUPS (BX)(R9*2), Y6
	VMOVUPS (BX)(R10*1), Y7

	VUNPCKLPS Y1, Y0, Y8        // a0 b0 a1 b1 | a4 b4 a5 b5
	VUNPCKHPS Y1, Y0, Y9        // a2 b2 a3 b3 | a6 b6 a7 b7
	VUNPCKLPS Y3, Y2, Y10       // c0 d0 c1 d1 | …
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12       // e0 f0 e1 f1 | …
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14       // g0 h0 g1 h1 | …
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0  // a0 b0 c0 d0 | a4 b4 c4 d4
	VSHUFPS $0xEE, Y10, Y8, Y1  // a1 b1 c1 d1 | a5 …
	VSHUFPS $0x44, Y11, Y9, Y2  // a2 … | a6 …
	VSHUFPS $0xEE, Y11, Y9, Y3  // a3 … | a7 …
	VSHUFPS $0x44, Y14, Y12, Y4 // e0 f0 g0 h0 | e4 …
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	LEAQ (DI)(R8*4), DX         // dst column 4
	VPERM2F128 $0x20, Y4, Y0, Y8  // a0 … h0
	VPERM2F128 $0x20, Y5, Y1, Y9  // a1 … h1
	VPERM2F128 $0x20, Y6, Y2, Y10 // a2 … h2
	VPERM2F128 $0x20, Y7, Y3, Y11 // a3 … h3
	VPERM2F128 $0x31, Y4, Y0, Y12 // a4 … h4
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, (DI)(R8*1)
	VMOVUPS Y10, (DI)(R8*2)
	VMOVUPS Y11, (DI)(R11*1)
	VMOVUPS Y12, (DX)
	VMOVUPS Y13, (DX)(R8*1)
	VMOVUPS Y14, (DX)(R8*2)
	VMOVUPS Y15, (DX)(R11*1)

	ADDQ $32, SI                // next eight steps of each row
	LEAQ (DI)(R8*8), DI         // next eight rows of dst
	DECQ CX
	JNE  loop

done:
	VZEROUPPER
	RET
