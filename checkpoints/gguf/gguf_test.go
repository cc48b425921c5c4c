package gguf

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func sample() ([]KV, []Tensor) {
	r := rand.New(rand.NewPCG(1, 2))
	vals := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	kv := []KV{
		{"general.architecture", "llama"},
		{"u8", uint8(7)}, {"i8", int8(-7)}, {"u16", uint16(700)}, {"i16", int16(-700)},
		{"u32", uint32(70000)}, {"i32", int32(-70000)}, {"f32", float32(1.5)}, {"b", true},
		{"u64", uint64(1 << 40)}, {"i64", int64(-1 << 40)}, {"f64", 2.25},
		{"tokens", []string{"a", "", "ü"}}, {"types", []int32{1, 2, 3}}, {"scores", []float32{-1, 0}},
		{"flags", []bool{true, false}},
	}
	tensors := []Tensor{
		{Name: "a", Shape: []int{3, 5}, Type: F32, Data: vals(15)},
		{Name: "b", Shape: []int{2, 64}, Type: F16, Data: vals(128)},
		{Name: "c", Shape: []int{7}, Type: BF16, Data: vals(7)},
		{Name: "d", Shape: []int{4, 2, 32}, Type: Q8_0, Data: vals(256)},
	}
	return kv, tensors
}

func TestRoundTrip(t *testing.T) {
	kv, tensors := sample()
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := WriteFile(path, kv, tensors); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if !reflect.DeepEqual(f.KV, kv) {
		t.Fatalf("metadata:\n got %#v\nwant %#v", f.KV, kv)
	}
	tol := map[Type]float64{F32: 0, F16: 1e-3, BF16: 1e-2, Q8_0: 0.02}
	for _, want := range tensors {
		info, ok := f.Tensor(want.Name)
		if !ok || !slices.Equal(info.Shape, want.Shape) || info.Type != want.Type || info.Offset%DefaultAlignment != 0 {
			t.Fatalf("tensor %s: info %+v", want.Name, info)
		}
		got, err := f.ReadFloat32(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if d := math.Abs(float64(got[i] - want.Data[i])); d > tol[want.Type]*math.Max(1, math.Abs(float64(want.Data[i]))) {
				t.Fatalf("tensor %s [%d]: %v, want %v", want.Name, i, got[i], want.Data[i])
			}
		}
	}
	if f.DataOffset%DefaultAlignment != 0 {
		t.Fatalf("data section at %d is not aligned", f.DataOffset)
	}
}

// TestLayout pins the bytes of a tiny file against the format's
// definition: magic, version, counts, a string KV, a tensor info with
// dimensions innermost first, padding to 32, data.
func TestLayout(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, []KV{{"k", "v"}}, []Tensor{{Name: "w", Shape: []int{2, 3}, Type: F32, Data: []float32{1, 2, 3, 4, 5, 6}}})
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	var want []byte
	want = append(want, "GGUF"...)
	want = le.AppendUint32(want, 3)
	want = le.AppendUint64(want, 1)
	want = le.AppendUint64(want, 1)
	want = le.AppendUint64(want, 1)
	want = append(want, 'k')
	want = le.AppendUint32(want, uint32(TypeString))
	want = le.AppendUint64(want, 1)
	want = append(want, 'v')
	want = le.AppendUint64(want, 1)
	want = append(want, 'w')
	want = le.AppendUint32(want, 2)
	want = le.AppendUint64(want, 3) // ne[0]: the contiguous dimension
	want = le.AppendUint64(want, 2)
	want = le.AppendUint32(want, uint32(F32))
	want = le.AppendUint64(want, 0)
	for len(want)%32 != 0 {
		want = append(want, 0)
	}
	for _, v := range []float32{1, 2, 3, 4, 5, 6} {
		want = le.AppendUint32(want, math.Float32bits(v))
	}
	for len(want)%32 != 0 {
		want = append(want, 0)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("bytes:\n got %x\nwant %x", buf.Bytes(), want)
	}
}

// TestQ8_0 checks one block against ggml's quantize_row_q8_0_ref by hand:
// d = max|x|/127 stored as f16, q = round(x/d).
func TestQ8_0(t *testing.T) {
	x := make([]float32, 32)
	for i := range x {
		x[i] = float32(i-16) / 8 // max |x| = 2 at i = 0
	}
	b := appendQ8Block(nil, x)
	if len(b) != 34 {
		t.Fatalf("block is %d bytes, want 34", len(b))
	}
	if d := binary.LittleEndian.Uint16(b); d != 0x2408 { // f16(2/127): 2⁻⁶·(1 + 8/1024)
		t.Fatalf("scale %#04x, want 0x2408", d)
	}
	if q := int8(b[2]); q != -127 {
		t.Fatalf("q[0] = %d, want -127", q)
	}
	if q := int8(b[2+20]); q != int8(math.Round(0.5*127/2)) { // x = 0.5
		t.Fatalf("q[20] = %d, want %d", q, int8(math.Round(0.5*127/2)))
	}
	zero := appendQ8Block(nil, make([]float32, 32))
	if !bytes.Equal(zero, make([]byte, 34)) {
		t.Fatalf("a zero block is %x", zero)
	}
}

func TestWriteRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kv      []KV
		tensors []Tensor
		want    string
	}{
		{"q8 row", nil, []Tensor{{Name: "w", Shape: []int{32, 3}, Type: Q8_0, Data: make([]float32, 96)}}, "tensor w: innermost dimension 3"},
		{"data length", nil, []Tensor{{Name: "w", Shape: []int{2}, Type: F32, Data: make([]float32, 3)}}, "tensor w: shape [2] holds 2 values, data has 3"},
		{"duplicate", nil, []Tensor{{Name: "w", Shape: []int{1}, Data: []float32{1}}, {Name: "w", Shape: []int{1}, Data: []float32{1}}}, "tensor w appears twice"},
		{"type", nil, []Tensor{{Name: "w", Shape: []int{32}, Type: 12, Data: make([]float32, 32)}}, "Q4_K is not supported"},
		{"alignment", []KV{{KeyAlignment, uint32(24)}}, nil, "general.alignment must be a u32 power of two"},
		{"value", []KV{{"k", 3}}, nil, "metadata k: metadata value of Go type int"},
	} {
		err := Write(&bytes.Buffer{}, tc.kv, tc.tensors)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func validFile(t testing.TB) []byte {
	var buf bytes.Buffer
	kv, tensors := sample()
	if err := Write(&buf, kv, tensors); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadRefuses corrupts a valid file field by field; each read must
// fail with an error naming the field.
func TestReadRefuses(t *testing.T) {
	good := validFile(t)
	le := binary.LittleEndian
	// Offsets in the sample: magic 0, version 4, tensor_count 8, kv count 16,
	// first key length 24, first key 32.
	keyEnd := 32 + len("general.architecture")
	tinyTensor := func(mut func([]byte) []byte) []byte {
		var buf bytes.Buffer
		if err := Write(&buf, nil, []Tensor{{Name: "w", Shape: []int{4}, Type: F32, Data: make([]float32, 4)}}); err != nil {
			t.Fatal(err)
		}
		return mut(bytes.Clone(buf.Bytes()))
	}
	// The tiny file: header 24, name length 24, name 32, n_dims 33,
	// dims[0] 37, type 45, offset 49, data at 64.
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "magic"},
		{"magic", append([]byte("GGUX"), good[4:]...), "not a GGUF file"},
		{"version", func() []byte { b := bytes.Clone(good); le.PutUint32(b[4:], 9); return b }(), "version 9"},
		{"tensor count", func() []byte { b := bytes.Clone(good); le.PutUint64(b[8:], 1<<60); return b }(), "tensor_count"},
		{"kv count", func() []byte { b := bytes.Clone(good); le.PutUint64(b[16:], 1<<62); return b }(), "metadata_kv_count"},
		{"key length", func() []byte { b := bytes.Clone(good); le.PutUint64(b[24:], 1<<50); return b }(), "metadata[0].key"},
		{"value type", func() []byte { b := bytes.Clone(good); le.PutUint32(b[keyEnd:], 77); return b }(), "metadata general.architecture: value type 77"},
		{"truncated", good[:len(good)-40], "tensor d: 272 bytes"},
		{"n_dims", tinyTensor(func(b []byte) []byte { le.PutUint32(b[33:], 5); return b }), "tensor w: n_dims 5"},
		{"dim", tinyTensor(func(b []byte) []byte { le.PutUint64(b[37:], 1<<62); return b }), "tensor w: dims[0]"},
		{"zero dim", tinyTensor(func(b []byte) []byte { le.PutUint64(b[37:], 0); return b }), "tensor w: dims[0] = 0"},
		{"quant type", tinyTensor(func(b []byte) []byte { le.PutUint32(b[45:], 14); return b }), "tensor w: tensor type Q6_K is not supported"},
		{"offset", tinyTensor(func(b []byte) []byte { le.PutUint64(b[49:], 8); return b }), "tensor w: offset 8 is not a multiple of the alignment 32"},
		{"offset past end", tinyTensor(func(b []byte) []byte { le.PutUint64(b[49:], 1<<40); return b }), "tensor w: offset"},
	} {
		_, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

// FuzzRead feeds arbitrary bytes to the reader: it must return an error or
// a file whose every tensor reads, never panic or allocate past the input.
func FuzzRead(f *testing.F) {
	f.Add(validFile(f))
	var buf bytes.Buffer
	_ = Write(&buf, []KV{{"k", []string{"x"}}}, []Tensor{{Name: "w", Shape: []int{32}, Type: Q8_0, Data: make([]float32, 32)}})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		for _, ti := range g.Tensors {
			if ti.Size > int64(len(data)) {
				t.Fatalf("tensor %s claims %d bytes of a %d-byte file", ti.Name, ti.Size, len(data))
			}
			if _, err := g.ReadFloat32(ti.Name); err != nil {
				t.Fatalf("tensor %s of a parsed file does not read: %v", ti.Name, err)
			}
		}
	})
}

// TestAlignment: a general.alignment of 64 places the data section and
// every tensor on multiples of 64.
func TestAlignment(t *testing.T) {
	var buf bytes.Buffer
	tensors := []Tensor{{Name: "a", Shape: []int{3}, Data: []float32{1, 2, 3}}, {Name: "b", Shape: []int{5}, Data: []float32{4, 5, 6, 7, 8}}}
	if err := Write(&buf, []KV{{KeyAlignment, uint32(64)}}, tensors); err != nil {
		t.Fatal(err)
	}
	f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 {
		t.Fatalf("alignment %d, data at %d", f.Alignment, f.DataOffset)
	}
	for _, ti := range f.Tensors {
		if ti.Offset%64 != 0 {
			t.Fatalf("tensor %s at offset %d", ti.Name, ti.Offset)
		}
	}
	got, err := f.ReadFloat32("b")
	if err != nil || !slices.Equal(got, tensors[1].Data) {
		t.Fatalf("tensor b: %v %v", got, err)
	}
}
