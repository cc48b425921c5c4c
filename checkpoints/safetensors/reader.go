package safetensors

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/gotune/gotune/internal/f16"
	"io"
	"math"
	"os"

	"github.com/gotune/gotune/internal/bf16"
)

// Reader gives access to the tensors of one safetensors file. Its header
// has been validated when Open or NewReader returns.
type Reader struct {
	Header
	name      string // for error messages
	r         io.ReaderAt
	closer    io.Closer
	dataStart int64
	index     map[string]int
}

// Open opens and validates a safetensors file.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	r, err := NewReader(f, st.Size(), path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = f
	return r, nil
}

// NewReader validates the safetensors content of r (size bytes long); name
// identifies it in error messages.
func NewReader(r io.ReaderAt, size int64, name string) (*Reader, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, fmt.Errorf("safetensors %s: file is %d bytes, shorter than the 8-byte header length", name, size)
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", name, err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderBytes {
		return nil, fmt.Errorf("safetensors %s: header length %d exceeds the %d-byte limit", name, n, MaxHeaderBytes)
	}
	if int64(n) > size-8 {
		return nil, fmt.Errorf("safetensors %s: header length %d runs past the end of the %d-byte file", name, n, size)
	}
	raw := make([]byte, n)
	if _, err := r.ReadAt(raw, 8); err != nil {
		return nil, fmt.Errorf("safetensors %s: reading header: %w", name, err)
	}
	dataStart := 8 + int64(n)
	h, err := ParseHeader(raw, size-dataStart)
	if err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", name, err)
	}
	rd := &Reader{Header: *h, name: name, r: r, dataStart: dataStart, index: make(map[string]int, len(h.Tensors))}
	for i, t := range h.Tensors {
		rd.index[t.Name] = i
	}
	return rd, nil
}

// Close releases the file opened by Open.
func (r *Reader) Close() error {
	if r.closer == nil {
		return nil
	}
	return r.closer.Close()
}

// Names lists the tensor names in data order.
func (r *Reader) Names() []string {
	out := make([]string, len(r.Tensors))
	for i, t := range r.Tensors {
		out[i] = t.Name
	}
	return out
}

// Info describes one tensor.
func (r *Reader) Info(name string) (TensorInfo, bool) {
	i, ok := r.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return r.Tensors[i], true
}

// Read returns a tensor converted to float32 along with its shape.
func (r *Reader) Read(name string) ([]float32, []int, error) {
	t, ok := r.Info(name)
	if !ok {
		return nil, nil, fmt.Errorf("safetensors %s: no tensor %q", r.name, name)
	}
	dst := make([]float32, t.NumElements())
	if err := r.ReadInto(name, dst); err != nil {
		return nil, nil, err
	}
	return dst, append([]int(nil), t.Shape...), nil
}

// ReadInto converts a tensor to float32 into dst, which must hold exactly
// its number of elements.
func (r *Reader) ReadInto(name string, dst []float32) error {
	t, ok := r.Info(name)
	if !ok {
		return fmt.Errorf("safetensors %s: no tensor %q", r.name, name)
	}
	if len(dst) != t.NumElements() {
		return fmt.Errorf("safetensors %s: tensor %q has %d elements (shape %v), destination holds %d", r.name, name, t.NumElements(), t.Shape, len(dst))
	}
	size := t.Dtype.Size()
	var conv func(b []byte, dst []float32)
	switch t.Dtype {
	case F32:
		conv = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
			}
		}
	case F16:
		conv = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = f16.ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
	case BF16:
		conv = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = bf16.ToFloat32(binary.LittleEndian.Uint16(b[2*i:]))
			}
		}
	case F64:
		conv = func(b []byte, dst []float32) {
			for i := range dst {
				dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
			}
		}
	default:
		return fmt.Errorf("safetensors %s: tensor %q has dtype %s, which cannot be read as float32", r.name, name, t.Dtype)
	}
	const chunk = 1 << 18 // elements per read
	buf := make([]byte, min(len(dst), chunk)*size)
	off := r.dataStart + t.Begin
	for i := 0; i < len(dst); i += chunk {
		n := min(chunk, len(dst)-i)
		b := buf[:n*size]
		if _, err := r.r.ReadAt(b, off); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("safetensors %s: tensor %q: %w", r.name, name, err)
		}
		conv(b, dst[i:i+n])
		off += int64(len(b))
	}
	return nil
}

// ReadFile reads every tensor of a file, in data order, with its metadata.
func ReadFile(path string) ([]Tensor, map[string]string, error) {
	r, err := Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer r.Close()
	out := make([]Tensor, 0, len(r.Tensors))
	for _, t := range r.Tensors {
		data, shape, err := r.Read(t.Name)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, Tensor{Name: t.Name, Shape: shape, Data: data})
	}
	return out, r.Metadata, nil
}
