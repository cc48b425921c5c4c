// Package safetensors reads and writes the safetensors tensor format
// (https://github.com/huggingface/safetensors): an 8-byte little-endian
// header length N, N bytes of JSON describing every tensor (dtype, shape,
// byte offsets into the data section) plus optional string metadata, then
// the raw little-endian data.
//
// Tensors are float32 in memory. The reader converts F32, F16, BF16 and F64
// data; the writer stores F32 by default, or F16/BF16 rounded to nearest
// even. Everything read from a file is validated before use: the header
// length is bounded, the JSON must be well formed with no duplicate names or
// unknown fields, and the tensors must tile the data section exactly
// (offsets inside the file, contiguous, non-overlapping, dtype size × shape =
// byte length). Sharded sets with a `<base>.safetensors.index.json` are
// supported by OpenSet and WriteSet.
//
// May import: checkpoints/..., internal/blas and internal/kernel; never
// model/..., tokenizer/..., data/... or anything above (file formats know
// tensors and bytes, not the model).
package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderBytes bounds the JSON header a reader accepts (100 MiB, the
// limit of the reference implementation).
const MaxHeaderBytes = 100 << 20

// Dtype is a safetensors element type name.
type Dtype string

// The element types. Only F32, F16, BF16 and F64 can be read as float32;
// the others are recognised so that their byte lengths can be validated.
const (
	F64     Dtype = "F64"
	F32     Dtype = "F32"
	F16     Dtype = "F16"
	BF16    Dtype = "BF16"
	I64     Dtype = "I64"
	I32     Dtype = "I32"
	I16     Dtype = "I16"
	I8      Dtype = "I8"
	U64     Dtype = "U64"
	U32     Dtype = "U32"
	U16     Dtype = "U16"
	U8      Dtype = "U8"
	Bool    Dtype = "BOOL"
	F8E4M3  Dtype = "F8_E4M3"
	F8E5M2  Dtype = "F8_E5M2"
	metaKey       = "__metadata__"
)

// Size is the number of bytes of one element, or 0 for an unknown dtype.
func (d Dtype) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, Bool, F8E4M3, F8E5M2:
		return 1
	}
	return 0
}

// TensorInfo describes one stored tensor: its element type, shape and the
// byte range [Begin, End) it occupies in the data section.
type TensorInfo struct {
	Name       string
	Dtype      Dtype
	Shape      []int
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Header is a parsed and validated safetensors header.
type Header struct {
	Tensors  []TensorInfo      // in data order
	Metadata map[string]string // the optional __metadata__ map (nil if absent)
}

// field is one member of a JSON object, in file order.
type field struct {
	key string
	raw json.RawMessage
}

// objectFields splits a JSON object into its members, rejecting anything
// that is not exactly one object, and duplicate keys (which encoding/json
// would silently collapse).
func objectFields(raw []byte) ([]field, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected a JSON object")
	}
	seen := map[string]bool{}
	var out []field
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("malformed JSON: object key is not a string")
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("malformed JSON at key %q: %w", key, err)
		}
		out = append(out, field{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("malformed JSON: data after the object")
	}
	return out, nil
}

// ParseHeader validates the JSON header of a file whose data section is
// dataLen bytes long and returns its tensors sorted by offset.
func ParseHeader(raw []byte, dataLen int64) (*Header, error) {
	if !utf8.Valid(raw) {
		return nil, errors.New("header is not valid UTF-8")
	}
	fields, err := objectFields(raw)
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	h := &Header{}
	for _, f := range fields {
		if f.key == metaKey {
			if h.Metadata, err = parseMetadata(f.raw); err != nil {
				return nil, fmt.Errorf("header: __metadata__: %w", err)
			}
			continue
		}
		t, err := parseTensorInfo(f.key, f.raw)
		if err != nil {
			return nil, fmt.Errorf("header: tensor %q: %w", f.key, err)
		}
		h.Tensors = append(h.Tensors, t)
	}
	slices.SortStableFunc(h.Tensors, func(a, b TensorInfo) int {
		switch {
		case a.Begin < b.Begin:
			return -1
		case a.Begin > b.Begin:
			return 1
		case a.End < b.End:
			return -1
		case a.End > b.End:
			return 1
		}
		return 0
	})
	// The tensors must tile [0, dataLen) exactly: each begins where the
	// previous ended, which rules out gaps, overlaps and bytes outside the
	// file in one check.
	var pos int64
	for _, t := range h.Tensors {
		if t.End > dataLen {
			return nil, fmt.Errorf("header: tensor %q: data_offsets [%d, %d] run past the data section (%d bytes)", t.Name, t.Begin, t.End, dataLen)
		}
		if t.Begin != pos {
			if t.Begin < pos {
				return nil, fmt.Errorf("header: tensor %q: data_offsets [%d, %d] overlap the previous tensor (ending at %d)", t.Name, t.Begin, t.End, pos)
			}
			return nil, fmt.Errorf("header: tensor %q: data_offsets [%d, %d] leave a gap after byte %d", t.Name, t.Begin, t.End, pos)
		}
		pos = t.End
	}
	if pos != dataLen {
		return nil, fmt.Errorf("header: tensors cover %d bytes but the data section holds %d", pos, dataLen)
	}
	return h, nil
}

func parseMetadata(raw json.RawMessage) (map[string]string, error) {
	if string(bytes.TrimSpace(raw)) == "null" {
		return nil, nil
	}
	fields, err := objectFields(raw)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(fields))
	for _, f := range fields {
		var s string
		if err := json.Unmarshal(f.raw, &s); err != nil {
			return nil, fmt.Errorf("value of %q is not a string", f.key)
		}
		m[f.key] = s
	}
	return m, nil
}

func parseTensorInfo(name string, raw json.RawMessage) (TensorInfo, error) {
	t := TensorInfo{Name: name}
	fields, err := objectFields(raw)
	if err != nil {
		return t, err
	}
	var haveDtype, haveShape, haveOffsets bool
	for _, f := range fields {
		switch f.key {
		case "dtype":
			var s string
			if err := json.Unmarshal(f.raw, &s); err != nil {
				return t, fmt.Errorf("dtype is not a string")
			}
			t.Dtype = Dtype(s)
			if t.Dtype.Size() == 0 {
				return t, fmt.Errorf("unknown dtype %q", s)
			}
			haveDtype = true
		case "shape":
			dims, err := intArray(f.raw)
			if err != nil {
				return t, fmt.Errorf("shape: %w", err)
			}
			for _, d := range dims {
				if d > math.MaxInt32 {
					return t, fmt.Errorf("shape: dimension %d too large", d)
				}
				t.Shape = append(t.Shape, int(d))
			}
			haveShape = true
		case "data_offsets":
			off, err := intArray(f.raw)
			if err != nil {
				return t, fmt.Errorf("data_offsets: %w", err)
			}
			if len(off) != 2 {
				return t, fmt.Errorf("data_offsets has %d entries, want 2", len(off))
			}
			if off[0] > off[1] {
				return t, fmt.Errorf("data_offsets [%d, %d] end before they begin", off[0], off[1])
			}
			t.Begin, t.End = off[0], off[1]
			haveOffsets = true
		default:
			return t, fmt.Errorf("unknown field %q", f.key)
		}
	}
	switch {
	case !haveDtype:
		return t, errors.New("missing dtype")
	case !haveShape:
		return t, errors.New("missing shape")
	case !haveOffsets:
		return t, errors.New("missing data_offsets")
	}
	// dtype size × Π shape must equal the byte length; the product is
	// computed with an overflow check (it cannot exceed 2⁶³ legitimately).
	n := uint64(t.Dtype.Size())
	if slices.Contains(t.Shape, 0) {
		n = 0
	}
	for _, d := range t.Shape {
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64 {
			return t, fmt.Errorf("shape %v of %s overflows a 64-bit byte count", t.Shape, t.Dtype)
		}
		n = lo
	}
	if length := t.End - t.Begin; int64(n) != length {
		return t, fmt.Errorf("shape %v of %s needs %d bytes but data_offsets [%d, %d] span %d", t.Shape, t.Dtype, n, t.Begin, t.End, length)
	}
	return t, nil
}

// intArray decodes a JSON array of non-negative integers written without
// fraction or exponent.
func intArray(raw json.RawMessage) ([]int64, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, errors.New("not an array of integers")
	}
	out := make([]int64, len(items))
	for i, it := range items {
		// ParseInt also rejects quoted numbers, fractions and exponents.
		v, err := strconv.ParseInt(string(bytes.TrimSpace(it)), 10, 64)
		if err != nil || v < 0 {
			return nil, fmt.Errorf("entry %d (%s) is not a non-negative integer", i, it)
		}
		out[i] = v
	}
	return out, nil
}
