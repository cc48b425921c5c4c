//go:build !purego

#include "textflag.h"

// Eight-lane copies of the constants of exp32 (exp32 in package ops), used as
// 256-bit memory operands.
DATA explo<>+0(SB)/4, $0xc2aeac4f
DATA explo<>+4(SB)/4, $0xc2aeac4f
DATA explo<>+8(SB)/4, $0xc2aeac4f
DATA explo<>+12(SB)/4, $0xc2aeac4f
DATA explo<>+16(SB)/4, $0xc2aeac4f
DATA explo<>+20(SB)/4, $0xc2aeac4f
DATA explo<>+24(SB)/4, $0xc2aeac4f
DATA explo<>+28(SB)/4, $0xc2aeac4f
GLOBL explo<>(SB), RODATA|NOPTR, $32  // -87.33654

DATA exphi<>+0(SB)/4, $0x42b00000
DATA exphi<>+4(SB)/4, $0x42b00000
DATA exphi<>+8(SB)/4, $0x42b00000
DATA exphi<>+12(SB)/4, $0x42b00000
DATA exphi<>+16(SB)/4, $0x42b00000
DATA exphi<>+20(SB)/4, $0x42b00000
DATA exphi<>+24(SB)/4, $0x42b00000
DATA exphi<>+28(SB)/4, $0x42b00000
GLOBL exphi<>(SB), RODATA|NOPTR, $32  // 88.0

DATA explog2e<>+0(SB)/4, $0x3fb8aa3b
DATA explog2e<>+4(SB)/4, $0x3fb8aa3b
DATA explog2e<>+8(SB)/4, $0x3fb8aa3b
DATA explog2e<>+12(SB)/4, $0x3fb8aa3b
DATA explog2e<>+16(SB)/4, $0x3fb8aa3b
DATA explog2e<>+20(SB)/4, $0x3fb8aa3b
DATA explog2e<>+24(SB)/4, $0x3fb8aa3b
DATA explog2e<>+28(SB)/4, $0x3fb8aa3b
GLOBL explog2e<>(SB), RODATA|NOPTR, $32  // 1.4426950408889634

DATA expc1<>+0(SB)/4, $0x3f318000
DATA expc1<>+4(SB)/4, $0x3f318000
DATA expc1<>+8(SB)/4, $0x3f318000
DATA expc1<>+12(SB)/4, $0x3f318000
DATA expc1<>+16(SB)/4, $0x3f318000
DATA expc1<>+20(SB)/4, $0x3f318000
DATA expc1<>+24(SB)/4, $0x3f318000
DATA expc1<>+28(SB)/4, $0x3f318000
GLOBL expc1<>(SB), RODATA|NOPTR, $32  // 0.693359375

DATA expc2<>+0(SB)/4, $0xb95e8083
DATA expc2<>+4(SB)/4, $0xb95e8083
DATA expc2<>+8(SB)/4, $0xb95e8083
DATA expc2<>+12(SB)/4, $0xb95e8083
DATA expc2<>+16(SB)/4, $0xb95e8083
DATA expc2<>+20(SB)/4, $0xb95e8083
DATA expc2<>+24(SB)/4, $0xb95e8083
DATA expc2<>+28(SB)/4, $0xb95e8083
GLOBL expc2<>(SB), RODATA|NOPTR, $32  // -0.00021219444

DATA expp0<>+0(SB)/4, $0x39506967
DATA expp0<>+4(SB)/4, $0x39506967
DATA expp0<>+8(SB)/4, $0x39506967
DATA expp0<>+12(SB)/4, $0x39506967
DATA expp0<>+16(SB)/4, $0x39506967
DATA expp0<>+20(SB)/4, $0x39506967
DATA expp0<>+24(SB)/4, $0x39506967
DATA expp0<>+28(SB)/4, $0x39506967
GLOBL expp0<>(SB), RODATA|NOPTR, $32  // 0.000198756915

DATA expp1<>+0(SB)/4, $0x3ab743ce
DATA expp1<>+4(SB)/4, $0x3ab743ce
DATA expp1<>+8(SB)/4, $0x3ab743ce
DATA expp1<>+12(SB)/4, $0x3ab743ce
DATA expp1<>+16(SB)/4, $0x3ab743ce
DATA expp1<>+20(SB)/4, $0x3ab743ce
DATA expp1<>+24(SB)/4, $0x3ab743ce
DATA expp1<>+28(SB)/4, $0x3ab743ce
GLOBL expp1<>(SB), RODATA|NOPTR, $32  // 0.0013981999507

DATA expp2<>+0(SB)/4, $0x3c088908
DATA expp2<>+4(SB)/4, $0x3c088908
DATA expp2<>+8(SB)/4, $0x3c088908
DATA expp2<>+12(SB)/4, $0x3c088908
DATA expp2<>+16(SB)/4, $0x3c088908
DATA expp2<>+20(SB)/4, $0x3c088908
DATA expp2<>+24(SB)/4, $0x3c088908
DATA expp2<>+28(SB)/4, $0x3c088908
GLOBL expp2<>(SB), RODATA|NOPTR, $32  // 0.0083334519073

DATA expp3<>+0(SB)/4, $0x3d2aa9c1
DATA expp3<>+4(SB)/4, $0x3d2aa9c1
DATA expp3<>+8(SB)/4, $0x3d2aa9c1
DATA expp3<>+12(SB)/4, $0x3d2aa9c1
DATA expp3<>+16(SB)/4, $0x3d2aa9c1
DATA expp3<>+20(SB)/4, $0x3d2aa9c1
DATA expp3<>+24(SB)/4, $0x3d2aa9c1
DATA expp3<>+28(SB)/4, $0x3d2aa9c1
GLOBL expp3<>(SB), RODATA|NOPTR, $32  // 0.041665795894

DATA expp4<>+0(SB)/4, $0x3e2aaaaa
DATA expp4<>+4(SB)/4, $0x3e2aaaaa
DATA expp4<>+8(SB)/4, $0x3e2aaaaa
DATA expp4<>+12(SB)/4, $0x3e2aaaaa
DATA expp4<>+16(SB)/4, $0x3e2aaaaa
DATA expp4<>+20(SB)/4, $0x3e2aaaaa
DATA expp4<>+24(SB)/4, $0x3e2aaaaa
DATA expp4<>+28(SB)/4, $0x3e2aaaaa
GLOBL expp4<>(SB), RODATA|NOPTR, $32  // 0.16666665459

DATA expp5<>+0(SB)/4, $0x3f000000
DATA expp5<>+4(SB)/4, $0x3f000000
DATA expp5<>+8(SB)/4, $0x3f000000
DATA expp5<>+12(SB)/4, $0x3f000000
DATA expp5<>+16(SB)/4, $0x3f000000
DATA expp5<>+20(SB)/4, $0x3f000000
DATA expp5<>+24(SB)/4, $0x3f000000
DATA expp5<>+28(SB)/4, $0x3f000000
GLOBL expp5<>(SB), RODATA|NOPTR, $32  // 0.50000001201

DATA expone<>+0(SB)/4, $0x3f800000
DATA expone<>+4(SB)/4, $0x3f800000
DATA expone<>+8(SB)/4, $0x3f800000
DATA expone<>+12(SB)/4, $0x3f800000
DATA expone<>+16(SB)/4, $0x3f800000
DATA expone<>+20(SB)/4, $0x3f800000
DATA expone<>+24(SB)/4, $0x3f800000
DATA expone<>+28(SB)/4, $0x3f800000
GLOBL expone<>(SB), RODATA|NOPTR, $32  // 1.0

DATA exp127<>+0(SB)/4, $0x0000007f
DATA exp127<>+4(SB)/4, $0x0000007f
DATA exp127<>+8(SB)/4, $0x0000007f
DATA exp127<>+12(SB)/4, $0x0000007f
DATA exp127<>+16(SB)/4, $0x0000007f
DATA exp127<>+20(SB)/4, $0x0000007f
DATA exp127<>+24(SB)/4, $0x0000007f
DATA exp127<>+28(SB)/4, $0x0000007f
GLOBL exp127<>(SB), RODATA|NOPTR, $32

DATA expsign<>+0(SB)/4, $0x80000000
DATA expsign<>+4(SB)/4, $0x80000000
DATA expsign<>+8(SB)/4, $0x80000000
DATA expsign<>+12(SB)/4, $0x80000000
DATA expsign<>+16(SB)/4, $0x80000000
DATA expsign<>+20(SB)/4, $0x80000000
DATA expsign<>+24(SB)/4, $0x80000000
DATA expsign<>+28(SB)/4, $0x80000000
GLOBL expsign<>(SB), RODATA|NOPTR, $32 // the sign bit

// EXP sets Y8 = exp(Y5), clobbering Y5–Y9: the exp32 algorithm (package
// ops), n = round(x·log2e), r = x − n·ln2 (ln2 in two parts, c1 + c2),
// e^r by a degree-7 polynomial, times 2^n built in the exponent bits; x
// is clamped to [−87.33654, 88].
#define EXP \
	VMAXPS       explo<>(SB), Y5, Y5 \
	VMINPS       exphi<>(SB), Y5, Y5 \
	VMULPS       explog2e<>(SB), Y5, Y6 \
	VROUNDPS     $0, Y6, Y6 \
	VCVTPS2DQ    Y6, Y7 \
	VFNMADD231PS expc1<>(SB), Y6, Y5 \
	VFNMADD231PS expc2<>(SB), Y6, Y5 \
	VMOVUPS      expp0<>(SB), Y8 \
	VFMADD213PS  expp1<>(SB), Y5, Y8 \
	VFMADD213PS  expp2<>(SB), Y5, Y8 \
	VFMADD213PS  expp3<>(SB), Y5, Y8 \
	VFMADD213PS  expp4<>(SB), Y5, Y8 \
	VFMADD213PS  expp5<>(SB), Y5, Y8 \
	VMULPS       Y5, Y5, Y9 \
	VFMADD213PS  Y5, Y9, Y8 \
	VADDPS       expone<>(SB), Y8, Y8 \
	VPADDD       exp127<>(SB), Y7, Y7 \
	VPSLLD       $23, Y7, Y7 \
	VMULPS       Y7, Y8, Y8

// SIGMOID loads g from (SI) into Y2 and sets Y8 = σ(g) = 1/(1 + exp(−g))
// (the sign flipped exactly, then EXP), with Y13 holding 1.0; clobbers
// Y5–Y9.
#define SIGMOID \
	VMOVUPS (SI), Y2 \
	VXORPS  expsign<>(SB), Y2, Y5 \
	EXP \
	VADDPS  Y13, Y8, Y8 \
	VDIVPS  Y8, Y13, Y8

// func ExpShiftSums(z []float32, m float32) (se, sez float32)
//
// z[i] ← exp(z[i] − m) for len(z) a multiple of 8, eight lanes at a time
// with AVX2 and FMA (the exp32 algorithm: n = round(x·log2e),
// r = x − n·ln2, e^r by a degree-7 polynomial, times 2^n built in the
// exponent bits); x is clamped to [−87.33654, 88]. Returns Σ exp(z − m)
// and Σ exp(z − m)·z, z read before it is overwritten.
TEXT ·ExpShiftSums(SB), NOSPLIT, $0-40
	MOVQ         z_base+0(FP), SI
	MOVQ         z_len+8(FP), CX
	VBROADCASTSS m+24(FP), Y15
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	TESTQ        CX, CX
	JZ           done

loop:
	VMOVUPS      (SI), Y2
	VSUBPS       Y15, Y2, Y5         // x = z − m
	EXP
	VMOVUPS      Y8, (SI)
	VADDPS       Y8, Y0, Y0
	VFMADD231PS  Y2, Y8, Y1
	ADDQ         $32, SI
	SUBQ         $8, CX
	JNZ          loop

done:
	VEXTRACTF128 $1, Y0, X2
	VADDPS       X2, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	MOVSS        X0, se+32(FP)
	VEXTRACTF128 $1, Y1, X2
	VADDPS       X2, X1, X1
	VHADDPS      X1, X1, X1
	VHADDPS      X1, X1, X1
	MOVSS        X1, sez+36(FP)
	VZEROUPPER
	RET

// func MaxSum(z []float32) (m, s float32)
//
// The maximum and the sum of z, len(z) a positive multiple of 8, in eight
// lanes with AVX.
TEXT ·MaxSum(SB), NOSPLIT, $0-32
	MOVQ         z_base+0(FP), SI
	MOVQ         z_len+8(FP), CX
	VMOVUPS      (SI), Y0            // running maximum
	VXORPS       Y1, Y1, Y1          // running sum

maxloop:
	VMOVUPS      (SI), Y2
	VMAXPS       Y2, Y0, Y0
	VADDPS       Y2, Y1, Y1
	ADDQ         $32, SI
	SUBQ         $8, CX
	JNZ          maxloop

	VEXTRACTF128 $1, Y0, X2
	VMAXPS       X2, X0, X0
	VPERMILPS    $0x4e, X0, X2       // swap 64-bit halves
	VMAXPS       X2, X0, X0
	VPERMILPS    $0xb1, X0, X2       // swap neighbours
	VMAXPS       X2, X0, X0
	MOVSS        X0, m+24(FP)
	VEXTRACTF128 $1, Y1, X2
	VADDPS       X2, X1, X1
	VHADDPS      X1, X1, X1
	VHADDPS      X1, X1, X1
	MOVSS        X1, s+28(FP)
	VZEROUPPER
	RET

// func SwiGLU(out, g, u []float32)
//
// out[i] = (g[i]·σ(g[i]))·u[i], σ(x) = 1/(1 + exp(−x)), for len(g) a
// multiple of 8, eight lanes at a time with AVX2 and FMA: the same
// operations in the same order as the scalar code of package ops.
TEXT ·SwiGLU(SB), NOSPLIT, $0-72
	MOVQ    out_base+0(FP), DI
	MOVQ    g_base+24(FP), SI
	MOVQ    g_len+32(FP), CX
	MOVQ    u_base+48(FP), DX
	VMOVUPS expone<>(SB), Y13
	TESTQ   CX, CX
	JZ      fwddone

fwdloop:
	SIGMOID             // Y2 = g, Y8 = s = σ(g)
	VMULPS  Y8, Y2, Y8  // g·s
	VMULPS  (DX), Y8, Y8 // ·u
	VMOVUPS Y8, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JNZ     fwdloop

fwddone:
	VZEROUPPER
	RET

// func SwiGLUBackward(dg, du, g, u, dm []float32)
//
// With s = σ(g[i]): du[i] = (dm[i]·g[i])·s and
// dg[i] = ((dm[i]·u[i])·s)·(1 + g[i]·(1 − s)), for len(g) a multiple of 8,
// in the order of the scalar code of package ops.
TEXT ·SwiGLUBackward(SB), NOSPLIT, $0-120
	MOVQ    dg_base+0(FP), DI
	MOVQ    du_base+24(FP), R10
	MOVQ    g_base+48(FP), SI
	MOVQ    g_len+56(FP), CX
	MOVQ    u_base+72(FP), DX
	MOVQ    dm_base+96(FP), R8
	VMOVUPS expone<>(SB), Y13
	TESTQ   CX, CX
	JZ      bwddone

bwdloop:
	SIGMOID               // Y2 = g, Y8 = s = σ(g)
	VMOVUPS (DX), Y10     // u
	VMOVUPS (R8), Y11     // dm
	VMULPS  Y2, Y11, Y12  // dm·g
	VMULPS  Y8, Y12, Y12  // ·s
	VMOVUPS Y12, (R10)    // du
	VSUBPS  Y8, Y13, Y9   // 1 − s
	VMULPS  Y9, Y2, Y9    // g·(1 − s)
	VADDPS  Y13, Y9, Y9   // 1 + g·(1 − s)
	VMULPS  Y10, Y11, Y10 // dm·u
	VMULPS  Y8, Y10, Y10  // ·s
	VMULPS  Y9, Y10, Y10  // ·(1 + g·(1 − s))
	VMOVUPS Y10, (DI)     // dg
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, R8
	ADDQ    $32, DI
	ADDQ    $32, R10
	SUBQ    $8, CX
	JNZ     bwdloop

bwddone:
	VZEROUPPER
	RET
