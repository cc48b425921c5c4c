package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/gotune/gotune/checkpoints/atomicfile"
)

// Tensor is one tensor to write: Shape is row-major, outermost dimension
// first (as Hugging Face and this module store tensors); the file records
// it innermost first, as ggml's ne[0] is the contiguous dimension. Data
// (float32, len = product of Shape) is stored as Type.
type Tensor struct {
	Name  string
	Shape []int
	Type  Type
	Data  []float32
}

// WriteFile writes a GGUF file atomically (see Write).
func WriteFile(path string, kv []KV, tensors []Tensor) error {
	err := atomicfile.Write(path, func(w io.Writer) error { return Write(w, kv, tensors) })
	if err != nil {
		return fmt.Errorf("write gguf %s: %w", path, err)
	}
	return nil
}

// Write writes a GGUF v3 file: the metadata kv in order, then the tensors
// in order, each at an offset aligned to general.alignment (a u32 in kv,
// else DefaultAlignment). A Q8_0 tensor's innermost dimension must be a
// multiple of 32, as ggml's rows are whole blocks.
func Write(w io.Writer, kv []KV, tensors []Tensor) error {
	align := uint64(DefaultAlignment)
	keys := map[string]bool{}
	for _, p := range kv {
		if keys[p.Key] {
			return fmt.Errorf("metadata key %q appears twice", p.Key)
		}
		keys[p.Key] = true
		if p.Key == KeyAlignment {
			a, ok := p.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 {
				return fmt.Errorf("metadata %s must be a u32 power of two, got %v (%T)", KeyAlignment, p.Value, p.Value)
			}
			align = uint64(a)
		}
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	buf := []byte(Magic)
	buf = binary.LittleEndian.AppendUint32(buf, Version)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(tensors)))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(len(kv)))
	for _, p := range kv {
		var err error
		if buf, err = appendKV(buf, p); err != nil {
			return err
		}
	}
	offsets := make([]uint64, len(tensors))
	var off uint64
	names := map[string]bool{}
	for i, t := range tensors {
		if names[t.Name] {
			return fmt.Errorf("tensor %s appears twice", t.Name)
		}
		names[t.Name] = true
		if len(t.Shape) == 0 || len(t.Shape) > MaxDims {
			return fmt.Errorf("tensor %s: %d dimensions (want 1 to %d)", t.Name, len(t.Shape), MaxDims)
		}
		n := 1
		for _, d := range t.Shape {
			if d <= 0 {
				return fmt.Errorf("tensor %s: dimension %d in shape %v must be positive", t.Name, d, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("tensor %s: shape %v holds %d values, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		if bv, _, ok := t.Type.layout(); ok && int64(t.Shape[len(t.Shape)-1])%bv != 0 {
			return fmt.Errorf("tensor %s: innermost dimension %d is not whole %s blocks of %d", t.Name, t.Shape[len(t.Shape)-1], t.Type, bv)
		}
		size, err := t.Type.ByteSize(int64(n))
		if err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		buf = appendString(buf, t.Name)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(t.Shape)))
		for _, d := range slices.Backward(t.Shape) {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(d))
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(t.Type))
		buf = binary.LittleEndian.AppendUint64(buf, off)
		offsets[i] = off
		off = alignUp(off+uint64(size), align)
	}
	buf = append(buf, make([]byte, alignUp(uint64(len(buf)), align)-uint64(len(buf)))...)
	if _, err := bw.Write(buf); err != nil {
		return err
	}
	var pos uint64
	for i, t := range tensors {
		if pad := offsets[i] - pos; pad > 0 {
			if _, err := bw.Write(make([]byte, pad)); err != nil {
				return err
			}
			pos += pad
		}
		data, err := encode(nil, t.Type, t.Data)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		if _, err := bw.Write(data); err != nil {
			return err
		}
		pos += uint64(len(data))
	}
	// ggml pads the data section's end too, so that it is whole alignment
	// units; readers do not need it, but files then compare byte for byte.
	if pad := alignUp(pos, align) - pos; pad > 0 {
		if _, err := bw.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func alignUp(n, a uint64) uint64 { return (n + a - 1) / a * a }

func appendString(dst []byte, s string) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendKV(dst []byte, p KV) ([]byte, error) {
	if p.Key == "" {
		return nil, errors.New("metadata key is empty")
	}
	t, elem, err := valueType(p.Value)
	if err != nil {
		return nil, fmt.Errorf("metadata %s: %w", p.Key, err)
	}
	dst = appendString(dst, p.Key)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(t))
	if t != TypeArray {
		return appendScalar(dst, p.Value), nil
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(elem))
	switch a := p.Value.(type) {
	case []uint8:
		return appendArray(dst, a), nil
	case []int8:
		return appendArray(dst, a), nil
	case []uint16:
		return appendArray(dst, a), nil
	case []int16:
		return appendArray(dst, a), nil
	case []uint32:
		return appendArray(dst, a), nil
	case []int32:
		return appendArray(dst, a), nil
	case []float32:
		return appendArray(dst, a), nil
	case []bool:
		return appendArray(dst, a), nil
	case []string:
		return appendArray(dst, a), nil
	case []uint64:
		return appendArray(dst, a), nil
	case []int64:
		return appendArray(dst, a), nil
	case []float64:
		return appendArray(dst, a), nil
	}
	return nil, fmt.Errorf("metadata %s: unsupported array %T", p.Key, p.Value)
}

func appendArray[E any](dst []byte, a []E) []byte {
	dst = binary.LittleEndian.AppendUint64(dst, uint64(len(a)))
	for _, v := range a {
		dst = appendScalar(dst, v)
	}
	return dst
}

func appendScalar(dst []byte, v any) []byte {
	le := binary.LittleEndian
	switch x := v.(type) {
	case uint8:
		return append(dst, x)
	case int8:
		return append(dst, byte(x))
	case uint16:
		return le.AppendUint16(dst, x)
	case int16:
		return le.AppendUint16(dst, uint16(x))
	case uint32:
		return le.AppendUint32(dst, x)
	case int32:
		return le.AppendUint32(dst, uint32(x))
	case float32:
		return le.AppendUint32(dst, math.Float32bits(x))
	case bool:
		if x {
			return append(dst, 1)
		}
		return append(dst, 0)
	case string:
		return appendString(dst, x)
	case uint64:
		return le.AppendUint64(dst, x)
	case int64:
		return le.AppendUint64(dst, uint64(x))
	case float64:
		return le.AppendUint64(dst, math.Float64bits(x))
	}
	panic(fmt.Sprintf("gguf: scalar %T", v)) // unreachable: valueType checked the type
}
