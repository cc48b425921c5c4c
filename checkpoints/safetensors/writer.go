package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/gotune/gotune/internal/f16"
	"io"
	"math"
	"sort"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/internal/bf16"
)

// Tensor is one named float32 tensor in memory, row-major.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// checkTensors rejects empty, reserved or duplicate names and data whose
// length does not match the shape.
func checkTensors(tensors []Tensor) error {
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		switch {
		case t.Name == "":
			return fmt.Errorf("tensor with an empty name")
		case t.Name == metaKey:
			return fmt.Errorf("tensor name %q is reserved", metaKey)
		case seen[t.Name]:
			return fmt.Errorf("duplicate tensor %q", t.Name)
		}
		seen[t.Name] = true
		n := 1
		for _, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			n *= d
		}
		if n != len(t.Data) {
			return fmt.Errorf("tensor %q: shape %v holds %d elements, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
	}
	return nil
}

// storable reports whether the writer can store dtype.
func storable(d Dtype) error {
	switch d {
	case F32, F16, BF16:
		return nil
	}
	return fmt.Errorf("cannot write dtype %q (want F32, F16 or BF16)", d)
}

// header builds the JSON header, space-padded to a multiple of 8 bytes as
// the reference writer does so that the data section stays aligned.
func header(tensors []Tensor, meta map[string]string, dtype Dtype) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	if len(meta) > 0 {
		keys := make([]string, 0, len(meta))
		for k := range meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString(`"__metadata__":{`)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			vb, _ := json.Marshal(meta[k])
			b.Write(kb)
			b.WriteByte(':')
			b.Write(vb)
		}
		b.WriteByte('}')
	}
	var off int64
	for i, t := range tensors {
		if i > 0 || len(meta) > 0 {
			b.WriteByte(',')
		}
		name, err := json.Marshal(t.Name)
		if err != nil {
			return nil, err
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		sb, _ := json.Marshal(shape)
		n := int64(len(t.Data)) * int64(dtype.Size())
		fmt.Fprintf(&b, `%s:{"dtype":%q,"shape":%s,"data_offsets":[%d,%d]}`, name, dtype, sb, off, off+n)
		off += n
	}
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), nil
}

// Encode writes tensors (in the given order) and metadata to w, storing
// elements as dtype (F32, F16 or BF16).
func Encode(w io.Writer, tensors []Tensor, meta map[string]string, dtype Dtype) error {
	if err := storable(dtype); err != nil {
		return err
	}
	if err := checkTensors(tensors); err != nil {
		return err
	}
	h, err := header(tensors, meta, dtype)
	if err != nil {
		return err
	}
	if len(h) > MaxHeaderBytes {
		return fmt.Errorf("header of %d bytes exceeds the %d-byte limit", len(h), MaxHeaderBytes)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(h)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(h); err != nil {
		return err
	}
	size := dtype.Size()
	buf := make([]byte, 1<<16*size)
	for _, t := range tensors {
		for i := 0; i < len(t.Data); i += 1 << 16 {
			src := t.Data[i:min(i+1<<16, len(t.Data))]
			b := buf[:len(src)*size]
			switch dtype {
			case F32:
				for j, v := range src {
					binary.LittleEndian.PutUint32(b[4*j:], math.Float32bits(v))
				}
			case F16:
				for j, v := range src {
					binary.LittleEndian.PutUint16(b[2*j:], f16.FromFloat32(v))
				}
			case BF16:
				for j, v := range src {
					binary.LittleEndian.PutUint16(b[2*j:], bf16.FromFloat32(v))
				}
			}
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteFile writes a safetensors file atomically (temporary file + rename).
func WriteFile(path string, tensors []Tensor, meta map[string]string, dtype Dtype) error {
	if err := storable(dtype); err != nil {
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	if err := checkTensors(tensors); err != nil {
		return fmt.Errorf("safetensors %s: %w", path, err)
	}
	return atomicfile.Write(path, func(w io.Writer) error { return Encode(w, tensors, meta, dtype) })
}
