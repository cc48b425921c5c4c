package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"unicode/utf8"
)

// MaxDims is the largest number of dimensions of a ggml tensor (GGML_MAX_DIMS).
const MaxDims = 4

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name string
	// Shape is row-major, outermost first (the file's dimensions reversed).
	Shape []int
	Type  Type
	// Offset is the tensor's first byte, relative to the data section.
	Offset int64
	// Size is the tensor's length in bytes.
	Size int64
}

// Len is the number of values of the tensor.
func (t TensorInfo) Len() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open GGUF file: its metadata and tensor infos are read; the
// tensor data is read on demand.
type File struct {
	Version   uint32
	KV        []KV
	Tensors   []TensorInfo
	Alignment int64
	// DataOffset is where the data section starts in the file.
	DataOffset int64

	r      io.ReaderAt
	closer io.Closer
	byName map[string]int
	byKey  map[string]int
}

// Open opens and parses a GGUF file; Close releases it.
func Open(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf: %w", err)
	}
	f, err := Read(fh, st.Size())
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("gguf %s: %w", path, err)
	}
	f.closer = fh
	return f, nil
}

// Close closes the file Open opened.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	return f.closer.Close()
}

// Read parses the header of a GGUF file of size bytes read through r.
// Each count, length and offset is checked against size before anything
// is allocated for it.
func Read(r io.ReaderAt, size int64) (*File, error) {
	h := &headerReader{r: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16), size: size}
	magic, err := h.bytes(4, "magic")
	if err != nil {
		return nil, err
	}
	if string(magic) != Magic {
		return nil, fmt.Errorf("magic %q is not %q: not a GGUF file", magic, Magic)
	}
	f := &File{r: r, Alignment: DefaultAlignment, byName: map[string]int{}, byKey: map[string]int{}}
	if f.Version, err = h.u32("version"); err != nil {
		return nil, err
	}
	if f.Version != 2 && f.Version != 3 {
		return nil, fmt.Errorf("version %d is not supported (want 2 or 3)", f.Version)
	}
	nTensors, err := h.count("tensor_count", 8+4+8+4+8)
	if err != nil {
		return nil, err
	}
	nKV, err := h.count("metadata_kv_count", 8+4+1)
	if err != nil {
		return nil, err
	}
	f.KV = make([]KV, 0, nKV)
	for i := range nKV {
		key, err := h.str(fmt.Sprintf("metadata[%d].key", i))
		if err != nil {
			return nil, err
		}
		if _, dup := f.byKey[key]; dup {
			return nil, fmt.Errorf("metadata key %q appears twice", key)
		}
		t, err := h.u32("metadata " + key + " type")
		if err != nil {
			return nil, err
		}
		v, err := h.value(ValueType(t), "metadata "+key)
		if err != nil {
			return nil, err
		}
		f.byKey[key] = len(f.KV)
		f.KV = append(f.KV, KV{Key: key, Value: v})
	}
	if v, ok := f.Get(KeyAlignment); ok {
		a, ok := v.(uint32)
		if !ok || a == 0 || a&(a-1) != 0 {
			return nil, fmt.Errorf("metadata %s must be a u32 power of two, got %v (%T)", KeyAlignment, v, v)
		}
		f.Alignment = int64(a)
	}
	f.Tensors = make([]TensorInfo, 0, nTensors)
	for i := range nTensors {
		ti, err := h.tensorInfo(i)
		if err != nil {
			return nil, err
		}
		if _, dup := f.byName[ti.Name]; dup {
			return nil, fmt.Errorf("tensor %s appears twice", ti.Name)
		}
		f.byName[ti.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, ti)
	}
	f.DataOffset = (h.pos + f.Alignment - 1) / f.Alignment * f.Alignment
	dataSize := size - f.DataOffset
	for _, t := range f.Tensors {
		if t.Offset%f.Alignment != 0 {
			return nil, fmt.Errorf("tensor %s: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)
		}
		if t.Offset > dataSize || t.Size > dataSize-t.Offset {
			return nil, fmt.Errorf("tensor %s: %d bytes at offset %d run past the end of the data section (%d bytes)", t.Name, t.Size, t.Offset, max(dataSize, 0))
		}
	}
	return f, nil
}

// Get returns the value of a metadata key.
func (f *File) Get(key string) (any, bool) {
	i, ok := f.byKey[key]
	if !ok {
		return nil, false
	}
	return f.KV[i].Value, true
}

// Tensor returns the info of the tensor called name.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Tensors[i], true
}

// ReadFloat32 reads a tensor widened (F16, BF16) or dequantized (Q8_0) to
// float32, row-major in the order of TensorInfo.Shape.
func (f *File) ReadFloat32(name string) ([]float32, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("tensor %s is missing", name)
	}
	dst := make([]float32, t.Len())
	if err := f.ReadInto(name, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// ReadInto reads a tensor as float32 into dst, which must hold exactly its
// values.
func (f *File) ReadInto(name string, dst []float32) error {
	t, ok := f.Tensor(name)
	if !ok {
		return fmt.Errorf("tensor %s is missing", name)
	}
	if len(dst) != t.Len() {
		return fmt.Errorf("tensor %s holds %d values, the destination %d", name, t.Len(), len(dst))
	}
	raw := make([]byte, t.Size)
	if _, err := f.r.ReadAt(raw, f.DataOffset+t.Offset); err != nil {
		return fmt.Errorf("tensor %s: %w", name, err)
	}
	if err := decode(dst, t.Type, raw); err != nil {
		return fmt.Errorf("tensor %s: %w", name, err)
	}
	return nil
}

// headerReader reads the header sequentially, knowing how many bytes the
// file has left, so that no length read from the file can make it
// allocate more than the file holds.
type headerReader struct {
	r    *bufio.Reader
	pos  int64
	size int64
}

func (h *headerReader) left() int64 { return h.size - h.pos }

func (h *headerReader) bytes(n int64, field string) ([]byte, error) {
	if n < 0 || n > h.left() {
		return nil, fmt.Errorf("%s: %d bytes at offset %d run past the end of the file (%d bytes)", field, n, h.pos, h.size)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(h.r, b); err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	h.pos += n
	return b, nil
}

func (h *headerReader) u32(field string) (uint32, error) {
	b, err := h.bytes(4, field)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (h *headerReader) u64(field string) (uint64, error) {
	b, err := h.bytes(8, field)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads a u64 count of items taking at least minSize bytes each and
// refuses one the rest of the file cannot hold.
func (h *headerReader) count(field string, minSize int64) (int64, error) {
	n, err := h.u64(field)
	if err != nil {
		return 0, err
	}
	if n > uint64(h.left()/minSize) {
		return 0, fmt.Errorf("%s %d is more than the remaining %d bytes of the file can hold", field, n, h.left())
	}
	return int64(n), nil
}

func (h *headerReader) str(field string) (string, error) {
	n, err := h.u64(field + " length")
	if err != nil {
		return "", err
	}
	if n > uint64(h.left()) {
		return "", fmt.Errorf("%s: length %d at offset %d runs past the end of the file (%d bytes)", field, n, h.pos, h.size)
	}
	b, err := h.bytes(int64(n), field)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("%s is not valid UTF-8", field)
	}
	return string(b), nil
}

// value reads one metadata value of type t.
func (h *headerReader) value(t ValueType, field string) (any, error) {
	if t == TypeArray {
		et, err := h.u32(field + " array type")
		if err != nil {
			return nil, err
		}
		elem := ValueType(et)
		if elem == TypeArray {
			return nil, fmt.Errorf("%s: arrays of arrays are not supported", field)
		}
		if elem.size() == 0 {
			return nil, fmt.Errorf("%s: array element type %d is not a GGUF value type", field, et)
		}
		n, err := h.count(field+" array length", elem.size())
		if err != nil {
			return nil, err
		}
		return h.array(elem, n, field)
	}
	if t.size() == 0 {
		return nil, fmt.Errorf("%s: value type %d is not a GGUF value type", field, uint32(t))
	}
	if t == TypeString {
		return h.str(field)
	}
	b, err := h.bytes(t.size(), field)
	if err != nil {
		return nil, err
	}
	return scalar(t, b, field)
}

func scalar(t ValueType, b []byte, field string) (any, error) {
	le := binary.LittleEndian
	switch t {
	case TypeUint8:
		return b[0], nil
	case TypeInt8:
		return int8(b[0]), nil
	case TypeUint16:
		return le.Uint16(b), nil
	case TypeInt16:
		return int16(le.Uint16(b)), nil
	case TypeUint32:
		return le.Uint32(b), nil
	case TypeInt32:
		return int32(le.Uint32(b)), nil
	case TypeFloat32:
		return math.Float32frombits(le.Uint32(b)), nil
	case TypeBool:
		if b[0] > 1 {
			return nil, fmt.Errorf("%s: bool byte %d is neither 0 nor 1", field, b[0])
		}
		return b[0] == 1, nil
	case TypeUint64:
		return le.Uint64(b), nil
	case TypeInt64:
		return int64(le.Uint64(b)), nil
	case TypeFloat64:
		return math.Float64frombits(le.Uint64(b)), nil
	}
	return nil, fmt.Errorf("%s: value type %d is not a scalar", field, t)
}

// array reads n elements of type elem as a typed Go slice.
func (h *headerReader) array(elem ValueType, n int64, field string) (any, error) {
	if elem == TypeString {
		out := make([]string, n)
		for i := range out {
			s, err := h.str(fmt.Sprintf("%s[%d]", field, i))
			if err != nil {
				return nil, err
			}
			out[i] = s
		}
		return out, nil
	}
	raw, err := h.bytes(n*elem.size(), field)
	if err != nil {
		return nil, err
	}
	sz := int(elem.size())
	vals := make([]any, n)
	for i := range vals {
		if vals[i], err = scalar(elem, raw[i*sz:(i+1)*sz], fmt.Sprintf("%s[%d]", field, i)); err != nil {
			return nil, err
		}
	}
	switch elem {
	case TypeUint8:
		return collect[uint8](vals), nil
	case TypeInt8:
		return collect[int8](vals), nil
	case TypeUint16:
		return collect[uint16](vals), nil
	case TypeInt16:
		return collect[int16](vals), nil
	case TypeUint32:
		return collect[uint32](vals), nil
	case TypeInt32:
		return collect[int32](vals), nil
	case TypeFloat32:
		return collect[float32](vals), nil
	case TypeBool:
		return collect[bool](vals), nil
	case TypeUint64:
		return collect[uint64](vals), nil
	case TypeInt64:
		return collect[int64](vals), nil
	case TypeFloat64:
		return collect[float64](vals), nil
	}
	return nil, fmt.Errorf("%s: array element type %d", field, elem)
}

func collect[E any](vals []any) []E {
	out := make([]E, len(vals))
	for i, v := range vals {
		out[i] = v.(E)
	}
	return out
}

// tensorInfo reads the i-th tensor info and checks its shape and type.
func (h *headerReader) tensorInfo(i int64) (TensorInfo, error) {
	name, err := h.str(fmt.Sprintf("tensor_infos[%d].name", i))
	if err != nil {
		return TensorInfo{}, err
	}
	field := "tensor " + name
	nd, err := h.u32(field + " n_dims")
	if err != nil {
		return TensorInfo{}, err
	}
	if nd == 0 || nd > MaxDims {
		return TensorInfo{}, fmt.Errorf("%s: n_dims %d (want 1 to %d)", field, nd, MaxDims)
	}
	ne := make([]int64, nd)
	n := int64(1)
	for d := range ne {
		v, err := h.u64(fmt.Sprintf("%s dims[%d]", field, d))
		if err != nil {
			return TensorInfo{}, err
		}
		// No tensor can hold more values than the file has bytes (every
		// supported type takes at least one byte per value).
		if v == 0 || v > uint64(h.size) || n > h.size/int64(v) {
			return TensorInfo{}, fmt.Errorf("%s: dims[%d] = %d gives more values than the file (%d bytes) can hold", field, d, v, h.size)
		}
		ne[d] = int64(v)
		n *= int64(v)
	}
	tt, err := h.u32(field + " type")
	if err != nil {
		return TensorInfo{}, err
	}
	typ := Type(tt)
	bv, _, ok := typ.layout()
	if !ok {
		return TensorInfo{}, fmt.Errorf("%s: tensor type %s is not supported (want F32, F16, BF16 or Q8_0; requantize the model to one of them)", field, typ)
	}
	if ne[0]%bv != 0 {
		return TensorInfo{}, fmt.Errorf("%s: row length %d is not whole %s blocks of %d", field, ne[0], typ, bv)
	}
	size, err := typ.ByteSize(n)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("%s: %w", field, err)
	}
	off, err := h.u64(field + " offset")
	if err != nil {
		return TensorInfo{}, err
	}
	if off > uint64(h.size) {
		return TensorInfo{}, fmt.Errorf("%s: offset %d is beyond the end of the file (%d bytes)", field, off, h.size)
	}
	shape := make([]int, nd)
	for d, v := range slices.Backward(ne) {
		shape[int(nd)-1-d] = int(v)
	}
	return TensorInfo{Name: name, Shape: shape, Type: typ, Offset: int64(off), Size: size}, nil
}

// errNotFound reports a missing metadata key.
var errNotFound = errors.New("missing")

// String returns a string metadata value.
func (f *File) String(key string) (string, error) {
	v, ok := f.Get(key)
	if !ok {
		return "", fmt.Errorf("metadata %s: %w", key, errNotFound)
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("metadata %s: want a string, got %T", key, v)
	}
	return s, nil
}

// Int returns an integer metadata value of any integer type.
func (f *File) Int(key string) (int64, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, fmt.Errorf("metadata %s: %w", key, errNotFound)
	}
	switch x := v.(type) {
	case uint8:
		return int64(x), nil
	case int8:
		return int64(x), nil
	case uint16:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case uint32:
		return int64(x), nil
	case int32:
		return int64(x), nil
	case int64:
		return x, nil
	case uint64:
		if x > math.MaxInt64 {
			return 0, fmt.Errorf("metadata %s: %d is out of range", key, x)
		}
		return int64(x), nil
	}
	return 0, fmt.Errorf("metadata %s: want an integer, got %T", key, v)
}

// Float returns a floating-point metadata value (f32 or f64).
func (f *File) Float(key string) (float64, error) {
	v, ok := f.Get(key)
	if !ok {
		return 0, fmt.Errorf("metadata %s: %w", key, errNotFound)
	}
	switch x := v.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, fmt.Errorf("metadata %s: want a float, got %T", key, v)
}

// Bool returns a bool metadata value.
func (f *File) Bool(key string) (bool, error) {
	v, ok := f.Get(key)
	if !ok {
		return false, fmt.Errorf("metadata %s: %w", key, errNotFound)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("metadata %s: want a bool, got %T", key, v)
	}
	return b, nil
}

// IsMissing reports whether err is a metadata getter's error for an absent key.
func IsMissing(err error) bool { return errors.Is(err, errNotFound) }
