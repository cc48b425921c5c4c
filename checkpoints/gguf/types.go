// Package gguf reads and writes GGUF files, the single-file model format of
// llama.cpp (ggml's docs/gguf.md): the magic "GGUF", a version (3; 2 is
// read too), the tensor and metadata counts (u64), the metadata key/value
// pairs, the tensor infos (name, dimensions innermost first, type, offset
// in the data section), padding to the alignment (general.alignment,
// default 32) and the tensor data, each tensor aligned. Everything is
// little-endian; strings are a u64 length and UTF-8 bytes.
//
// The package knows tensors and bytes, not the model: names and metadata
// keys are opaque to it (model/gguf maps a model to them). Tensor data is
// F32, F16, BF16 or Q8_0 (blocks of 32 values with one f16 scale); other
// ggml types are refused, naming the type. The reader checks every count,
// string length, dimension, offset and byte size against the file's size
// before it allocates, so a malformed file gives an error naming the field
// or tensor, never a panic or an allocation of a size the file chooses.
//
// May import: checkpoints/..., internal/blas and internal/kernel; never
// model/..., tokenizer/..., data/... or anything above (file formats know
// tensors and bytes, not the model).
package gguf

import (
	"fmt"

	"github.com/gotune/gotune/internal/q8"
)

// Magic is the first four bytes of a GGUF file.
const Magic = "GGUF"

// Version is the format version written (GGUF v3).
const Version = 3

// DefaultAlignment is the alignment of the data section and of each tensor
// when general.alignment is absent.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that overrides DefaultAlignment (u32).
const KeyAlignment = "general.alignment"

// Type is a ggml tensor type (enum ggml_type).
type Type uint32

// The ggml tensor types this package reads and writes.
const (
	F32  Type = 0
	F16  Type = 1
	Q8_0 Type = 8
	BF16 Type = 30
)

// typeNames names every ggml type, so a refusal says which one a file
// holds (ggml.h, enum ggml_type).
var typeNames = map[Type]string{
	0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1",
	10: "Q2_K", 11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K",
	16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S",
	22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
	29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

// String is the type's ggml name (F32, Q8_0, Q4_K, …), or its number.
func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type %d", uint32(t))
}

// Q8_0 blocks in a file: 32 values share one f16 scale d; each value is
// d·q with q an int8 (ggml-quants.c, block_q8_0; internal/q8).
const (
	q8Block      = q8.BlockLen
	q8BlockBytes = 2 + q8Block
)

// layout returns the number of values per block and the bytes per block of
// a supported type.
func (t Type) layout() (blockValues, blockBytes int64, ok bool) {
	switch t {
	case F32:
		return 1, 4, true
	case F16, BF16:
		return 1, 2, true
	case Q8_0:
		return q8Block, q8BlockBytes, true
	}
	return 0, 0, false
}

// Supported reports whether the package reads and writes tensors of t.
func (t Type) Supported() bool {
	_, _, ok := t.layout()
	return ok
}

// ByteSize is the number of bytes a tensor of t with n values takes; it
// fails for an unsupported type and when n is not whole blocks.
func (t Type) ByteSize(n int64) (int64, error) {
	bv, bb, ok := t.layout()
	if !ok {
		return 0, fmt.Errorf("tensor type %s is not supported (want F32, F16, BF16 or Q8_0)", t)
	}
	if n%bv != 0 {
		return 0, fmt.Errorf("%d values are not whole %s blocks of %d", n, t, bv)
	}
	return n / bv * bb, nil
}

// ValueType is the type tag of a metadata value (enum gguf_metadata_value_type).
type ValueType uint32

// Metadata value types.
const (
	TypeUint8   ValueType = 0
	TypeInt8    ValueType = 1
	TypeUint16  ValueType = 2
	TypeInt16   ValueType = 3
	TypeUint32  ValueType = 4
	TypeInt32   ValueType = 5
	TypeFloat32 ValueType = 6
	TypeBool    ValueType = 7
	TypeString  ValueType = 8
	TypeArray   ValueType = 9
	TypeUint64  ValueType = 10
	TypeInt64   ValueType = 11
	TypeFloat64 ValueType = 12
)

// size is the encoded size of a scalar of type v (strings: the minimum, an
// empty one).
func (v ValueType) size() int64 {
	switch v {
	case TypeUint8, TypeInt8, TypeBool:
		return 1
	case TypeUint16, TypeInt16:
		return 2
	case TypeUint32, TypeInt32, TypeFloat32:
		return 4
	case TypeUint64, TypeInt64, TypeFloat64, TypeString:
		return 8
	}
	return 0
}

// KV is one metadata pair. Value is a Go value of the GGUF type: uint8,
// int8, uint16, int16, uint32, int32, float32, bool, string, uint64,
// int64, float64, or a slice of one of them (a GGUF array).
type KV struct {
	Key   string
	Value any
}

// valueType returns the GGUF type of a Go value, and for a slice the type
// of its elements.
func valueType(v any) (t, elem ValueType, err error) {
	switch v.(type) {
	case uint8:
		return TypeUint8, 0, nil
	case int8:
		return TypeInt8, 0, nil
	case uint16:
		return TypeUint16, 0, nil
	case int16:
		return TypeInt16, 0, nil
	case uint32:
		return TypeUint32, 0, nil
	case int32:
		return TypeInt32, 0, nil
	case float32:
		return TypeFloat32, 0, nil
	case bool:
		return TypeBool, 0, nil
	case string:
		return TypeString, 0, nil
	case uint64:
		return TypeUint64, 0, nil
	case int64:
		return TypeInt64, 0, nil
	case float64:
		return TypeFloat64, 0, nil
	case []uint8:
		return TypeArray, TypeUint8, nil
	case []int8:
		return TypeArray, TypeInt8, nil
	case []uint16:
		return TypeArray, TypeUint16, nil
	case []int16:
		return TypeArray, TypeInt16, nil
	case []uint32:
		return TypeArray, TypeUint32, nil
	case []int32:
		return TypeArray, TypeInt32, nil
	case []float32:
		return TypeArray, TypeFloat32, nil
	case []bool:
		return TypeArray, TypeBool, nil
	case []string:
		return TypeArray, TypeString, nil
	case []uint64:
		return TypeArray, TypeUint64, nil
	case []int64:
		return TypeArray, TypeInt64, nil
	case []float64:
		return TypeArray, TypeFloat64, nil
	}
	return 0, 0, fmt.Errorf("metadata value of Go type %T has no GGUF type", v)
}
