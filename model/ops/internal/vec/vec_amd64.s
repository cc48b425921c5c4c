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
	VMAXPS       explo<>(SB), Y5, Y5
	VMINPS       exphi<>(SB), Y5, Y5
	VMULPS       explog2e<>(SB), Y5, Y6
	VROUNDPS     $0, Y6, Y6          // n = round(x·log2e)
	VCVTPS2DQ    Y6, Y7
	VFNMADD231PS expc1<>(SB), Y6, Y5 // r = x − n·c1 − n·c2
	VFNMADD231PS expc2<>(SB), Y6, Y5
	VMOVUPS      expp0<>(SB), Y8
	VFMADD213PS  expp1<>(SB), Y5, Y8
	VFMADD213PS  expp2<>(SB), Y5, Y8
	VFMADD213PS  expp3<>(SB), Y5, Y8
	VFMADD213PS  expp4<>(SB), Y5, Y8
	VFMADD213PS  expp5<>(SB), Y5, Y8
	VMULPS       Y5, Y5, Y9
	VFMADD213PS  Y5, Y9, Y8          // p·r² + r
	VADDPS       expone<>(SB), Y8, Y8
	VPADDD       exp127<>(SB), Y7, Y7
	VPSLLD       $23, Y7, Y7         // 2^n
	VMULPS       Y7, Y8, Y8
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
