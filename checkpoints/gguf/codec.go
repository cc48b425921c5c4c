package gguf

import (
	"encoding/binary"
	"fmt"
	"github.com/gotune/gotune/internal/f16"
	"github.com/gotune/gotune/internal/q8"
	"math"

	"github.com/gotune/gotune/internal/bf16"
)

// encode appends the values x stored as type t to dst.
func encode(dst []byte, t Type, x []float32) ([]byte, error) {
	switch t {
	case F32:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
		}
	case F16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, f16.FromFloat32(v))
		}
	case BF16:
		for _, v := range x {
			dst = binary.LittleEndian.AppendUint16(dst, bf16.FromFloat32(v))
		}
	case Q8_0:
		if len(x)%q8Block != 0 {
			return nil, fmt.Errorf("%d values are not whole Q8_0 blocks of %d", len(x), q8Block)
		}
		for b := 0; b < len(x); b += q8Block {
			dst = appendQ8Block(dst, x[b:b+q8Block])
		}
	default:
		return nil, fmt.Errorf("tensor type %s is not supported for writing (want F32, F16, BF16 or Q8_0)", t)
	}
	return dst, nil
}

// appendQ8Block appends the Q8_0 block of 32 values (q8.Quantize,
// ggml's quantize_row_q8_0_ref): its float16 scale, then the 32 int8s.
func appendQ8Block(dst []byte, x []float32) []byte {
	b := q8.Quantize(x)
	dst = binary.LittleEndian.AppendUint16(dst, f16.FromFloat32(b.D))
	for _, q := range b.Q {
		dst = append(dst, byte(q))
	}
	return dst
}

// decode widens the bytes src of type t into dst (len(dst) values).
func decode(dst []float32, t Type, src []byte) error {
	switch t {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = f16.ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = bf16.ToFloat32(binary.LittleEndian.Uint16(src[2*i:]))
		}
	case Q8_0:
		for b := 0; b < len(dst)/q8Block; b++ {
			blk := src[b*q8BlockBytes:]
			d := f16.ToFloat32(binary.LittleEndian.Uint16(blk))
			for j := range q8Block {
				dst[b*q8Block+j] = d * float32(int8(blk[2+j]))
			}
		}
	default:
		return fmt.Errorf("tensor type %s is not supported (want F32, F16, BF16 or Q8_0)", t)
	}
	return nil
}
