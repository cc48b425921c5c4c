package safetensors

import (
	"bytes"
	"encoding/binary"
	"github.com/gotune/gotune/internal/f16"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/bf16"
)

func TestBF16Conversions(t *testing.T) {
	cases := []struct {
		in   float32
		bits uint16
	}{
		{1, 0x3f80},
		{-1, 0xbf80},
		{1.0 / 3, 0x3eab}, // 0x3eaaaaab: low half > 0x8000, rounds up
		{math.Pi, 0x4049}, // 0x40490fdb: rounds down
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie, even stays
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie, rounds to even
		{math.MaxFloat32, 0x7f80},                  // overflows to Inf
		{float32(math.Inf(-1)), 0xff80},
	}
	for _, c := range cases {
		if got := bf16.FromFloat32(c.in); got != c.bits {
			t.Errorf("bf16.FromFloat32(%g) = %#04x, want %#04x", c.in, got, c.bits)
		}
	}
	if got := bf16.ToFloat32(0x3eab); got != math.Float32frombits(0x3eab0000) {
		t.Errorf("bf16.ToFloat32(0x3eab) = %g", got)
	}
	if h := bf16.FromFloat32(float32(math.NaN())); h&0x7f80 != 0x7f80 || h&0x7f == 0 {
		t.Errorf("NaN became %#04x", h)
	}
}

func sampleTensors() []Tensor {
	return []Tensor{
		{Name: "a.weight", Shape: []int{2, 3}, Data: []float32{1, -2, 0.5, 1.0 / 3, 0.1, 65520}},
		{Name: "b.bias", Shape: []int{3}, Data: []float32{math.Pi, -0.0001, 1e-8}},
		{Name: "scalar", Shape: []int{}, Data: []float32{7}},
		{Name: "empty", Shape: []int{0, 4}, Data: []float32{}},
	}
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	meta := map[string]string{"format": "pt", "note": "ünïcode \"quoted\""}
	for _, dt := range []Dtype{F32, F16, BF16} {
		path := filepath.Join(dir, string(dt)+".safetensors")
		in := sampleTensors()
		if err := WriteFile(path, in, meta, dt); err != nil {
			t.Fatal(err)
		}
		got, gotMeta, err := ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if gotMeta["format"] != "pt" || gotMeta["note"] != meta["note"] {
			t.Errorf("%s: metadata %v", dt, gotMeta)
		}
		if len(got) != len(in) {
			t.Fatalf("%s: %d tensors, want %d", dt, len(got), len(in))
		}
		for i, tt := range in {
			g := got[i]
			if g.Name != tt.Name || !slices.Equal(g.Shape, tt.Shape) {
				t.Errorf("%s: tensor %d is %s %v, want %s %v", dt, i, g.Name, g.Shape, tt.Name, tt.Shape)
			}
			for j, v := range tt.Data {
				var want float32
				switch dt {
				case F32:
					want = v
				case F16:
					want = f16.ToFloat32(f16.FromFloat32(v))
				case BF16:
					want = bf16.ToFloat32(bf16.FromFloat32(v))
				}
				if g.Data[j] != want {
					t.Errorf("%s: %s[%d] = %g, want %g", dt, tt.Name, j, g.Data[j], want)
				}
			}
		}
		// Header length is 8-aligned and the file is exactly header + data.
		raw, _ := os.ReadFile(path)
		n := binary.LittleEndian.Uint64(raw)
		if n%8 != 0 {
			t.Errorf("%s: header length %d not 8-aligned", dt, n)
		}
	}
	// Hand values through the file: 0.1 as F16 and 1/3 as BF16.
	r, err := Open(filepath.Join(dir, "F16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a, _, _ := r.Read("a.weight")
	if a[4] != 0.0999755859375 || !math.IsInf(float64(a[5]), 1) {
		t.Errorf("F16 file values %v", a)
	}
	rb, err := Open(filepath.Join(dir, "BF16.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer rb.Close()
	ab, _, _ := rb.Read("a.weight")
	if math.Float32bits(ab[3]) != 0x3eab0000 {
		t.Errorf("BF16 1/3 read as %#08x", math.Float32bits(ab[3]))
	}
	if info, _ := rb.Info("a.weight"); info.Dtype != BF16 {
		t.Errorf("dtype %s", info.Dtype)
	}
}

func TestWriteRejects(t *testing.T) {
	dir := t.TempDir()
	cases := map[string][]Tensor{
		"duplicate": {{Name: "x", Shape: []int{1}, Data: []float32{1}}, {Name: "x", Shape: []int{1}, Data: []float32{1}}},
		"shape":     {{Name: "x", Shape: []int{2}, Data: []float32{1}}},
		"empty":     {{Name: "", Shape: []int{1}, Data: []float32{1}}},
		"reserved":  {{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}},
	}
	for name, ts := range cases {
		path := filepath.Join(dir, name+".safetensors")
		if err := WriteFile(path, ts, nil, F32); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("%s: left a file behind", name)
		}
	}
	if err := WriteFile(filepath.Join(dir, "i.safetensors"), sampleTensors(), nil, I64); err == nil {
		t.Error("wrote dtype I64")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("temporary files left: %v", entries)
	}
}

func TestShardedSet(t *testing.T) {
	dir := t.TempDir()
	var in []Tensor
	for i := range 7 {
		d := make([]float32, 100+i)
		for j := range d {
			d[j] = float32(i*1000 + j)
		}
		in = append(in, Tensor{Name: "t" + string(rune('a'+i)), Shape: []int{len(d)}, Data: d})
	}
	// 400..424 bytes per tensor; 1000-byte shards hold two each → 4 shards.
	files, err := WriteSet(dir, "model", in, map[string]string{"format": "pt"}, WriteOptions{MaxShardBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors", "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors", "model.safetensors.index.json"}
	if !slices.Equal(files, want) {
		t.Fatalf("files %v, want %v", files, want)
	}
	check := func() {
		t.Helper()
		s, err := OpenSet(dir, "model")
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if len(s.Names()) != len(in) || s.Metadata["format"] != "pt" {
			t.Fatalf("names %v metadata %v", s.Names(), s.Metadata)
		}
		for _, tt := range in {
			got, shape, err := s.Read(tt.Name)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.Data) || !slices.Equal(shape, tt.Shape) {
				t.Errorf("%s differs after round trip", tt.Name)
			}
		}
	}
	check()
	// Rewriting as one file removes the shards and the index.
	if _, err := WriteSet(dir, "model", in, nil, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "model.safetensors" {
		t.Errorf("after single-file rewrite the dir holds %v", entries)
	}
	// And sharding again removes the single file.
	if _, err := WriteSet(dir, "model", in, map[string]string{"format": "pt"}, WriteOptions{MaxShardBytes: 2000, Dtype: F32}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.safetensors")); err == nil {
		t.Error("stale model.safetensors left beside shards")
	}
	check()
}

func TestIndexValidation(t *testing.T) {
	in := []Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1, 2}}, {Name: "y", Shape: []int{1}, Data: []float32{3}}}
	cases := []struct{ index, want string }{
		{`{"weight_map": {"x": "../evil.safetensors", "y": "s.safetensors"}}`, "not a plain file name"},
		{`{"weight_map": {"x": "s.safetensors", "y": "s.safetensors", "z": "s.safetensors"}}`, `tensor "z" is mapped to s.safetensors`},
		{`{"weight_map": {"x": "s.safetensors"}}`, `holds tensor "y"`},
		{`{"weight_map": {"x": "s.safetensors", "x": "s.safetensors"}}`, "duplicate key"},
		{`{"weight_map": {}}`, "empty weight_map"},
		{`{"weight_map": {"x": 3}}`, "not a string"},
		{`{"weight_map": `, "malformed JSON"},
		{`{"weight_map": {"x": "missing.safetensors"}}`, "no such file"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		if err := WriteFile(filepath.Join(dir, "s.safetensors"), in, nil, F32); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, IndexName("model")), []byte(c.index), 0o644)
		_, err := OpenSet(dir, "model")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("index %s: error %v, want it to mention %q", c.index, err, c.want)
		}
	}
}

// file assembles a safetensors file from a header string and data length.
func file(header string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

func TestMalformedHeaders(t *testing.T) {
	tooLong := binary.LittleEndian.AppendUint64(nil, MaxHeaderBytes+1)
	pastEnd := binary.LittleEndian.AppendUint64(nil, 100)
	pastEnd = append(pastEnd, "{}"...)
	cases := []struct {
		name string
		file []byte
		want string
	}{
		{"short file", []byte{1, 2, 3}, "shorter than the 8-byte header length"},
		{"header over limit", tooLong, "exceeds the 104857600-byte limit"},
		{"header past end", pastEnd, "runs past the end"},
		{"truncated JSON", file(`{"a":`, 0), "malformed JSON"},
		{"not an object", file(`[1,2]`, 0), "expected a JSON object"},
		{"trailing data", file(`{} {}`, 0), "data after the object"},
		{"invalid UTF-8", file("{\"\xff\":1}", 0), "not valid UTF-8"},
		{"duplicate tensor", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), `duplicate key "x"`},
		{"duplicate field", file(`{"x":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`, 4), `duplicate key "dtype"`},
		{"unknown dtype", file(`{"x":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}`, 4), `tensor "x": unknown dtype "F17"`},
		{"dtype not string", file(`{"x":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}`, 4), "dtype is not a string"},
		{"missing dtype", file(`{"x":{"shape":[1],"data_offsets":[0,4]}}`, 4), "missing dtype"},
		{"missing shape", file(`{"x":{"dtype":"F32","data_offsets":[0,4]}}`, 4), "missing shape"},
		{"missing offsets", file(`{"x":{"dtype":"F32","shape":[1]}}`, 4), "missing data_offsets"},
		{"unknown field", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"extra":1}}`, 4), `unknown field "extra"`},
		{"tensor not object", file(`{"x":[1]}`, 0), `tensor "x": expected a JSON object`},
		{"negative dim", file(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, 4), "not a non-negative integer"},
		{"fractional dim", file(`{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, 4), "not a non-negative integer"},
		{"quoted dim", file(`{"x":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}`, 4), "not a non-negative integer"},
		{"shape null", file(`{"x":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, 4), "shape: not an array"},
		{"huge dim", file(`{"x":{"dtype":"F32","shape":[4294967296],"data_offsets":[0,4]}}`, 4), "too large"},
		{"product overflow", file(`{"x":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}}`, 4), "overflows a 64-bit byte count"},
		{"three offsets", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`, 4), "has 3 entries, want 2"},
		{"reversed offsets", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, 4), "end before they begin"},
		{"size mismatch", file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), "needs 8 bytes but data_offsets [0, 4] span 4"},
		{"bf16 size mismatch", file(`{"x":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}`, 4), "needs 6 bytes"},
		{"past data", file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4), "run past the data section (4 bytes)"},
		{"overlap", file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), `tensor "y": data_offsets [4, 12] overlap`},
		{"gap", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"y":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}`, 12), "leave a gap after byte 4"},
		{"gap at start", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8), "leave a gap after byte 0"},
		{"uncovered tail", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 8), "tensors cover 4 bytes but the data section holds 8"},
		{"metadata value", file(`{"__metadata__":{"a":1}}`, 0), `value of "a" is not a string`},
		{"metadata array", file(`{"__metadata__":[]}`, 0), "__metadata__: expected a JSON object"},
	}
	for _, c := range cases {
		_, err := NewReader(bytes.NewReader(c.file), int64(len(c.file)), "bad.safetensors")
		if err == nil {
			t.Errorf("%s: accepted", c.name)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "bad.safetensors") {
			t.Errorf("%s: error %q, want it to name the file and mention %q", c.name, err, c.want)
		}
	}
}

func TestValidEdgeCases(t *testing.T) {
	// Padding spaces after the object, null metadata, an empty file and a
	// non-float dtype (valid, but not readable as float32).
	for _, h := range []string{`{}`, `{}      `, `{"__metadata__":null}`} {
		f := file(h, 0)
		if _, err := NewReader(bytes.NewReader(f), int64(len(f)), "ok"); err != nil {
			t.Errorf("%q rejected: %v", h, err)
		}
	}
	f := file(`{"i":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, 8)
	r, err := NewReader(bytes.NewReader(f), int64(len(f)), "ints.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.Read("i"); err == nil || !strings.Contains(err.Error(), "cannot be read as float32") {
		t.Errorf("reading I64: %v", err)
	}
	if err := r.ReadInto("i", make([]float32, 2)); err == nil || !strings.Contains(err.Error(), "destination holds 2") {
		t.Errorf("wrong destination size: %v", err)
	}
	if _, _, err := r.Read("nope"); err == nil || !strings.Contains(err.Error(), `no tensor "nope"`) {
		t.Errorf("missing tensor: %v", err)
	}
	// F64 data are read and narrowed.
	f = file(`{"d":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}`, 0)
	f = binary.LittleEndian.AppendUint64(f, math.Float64bits(0.5))
	f = binary.LittleEndian.AppendUint64(f, math.Float64bits(-3))
	r, err = NewReader(bytes.NewReader(f), int64(len(f)), "f64")
	if err != nil {
		t.Fatal(err)
	}
	if d, _, err := r.Read("d"); err != nil || d[0] != 0.5 || d[1] != -3 {
		t.Errorf("F64 read %v %v", d, err)
	}
}

// FuzzReader feeds arbitrary bytes to the reader: it must never panic, and
// whatever it accepts must satisfy the format's invariants and be readable.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	Encode(&buf, sampleTensors(), map[string]string{"format": "pt"}, F16)
	f.Add(buf.Bytes())
	f.Add(file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, 4))
	f.Add(file(`{"x":{"dtype":"BF16","shape":[2,1],"data_offsets":[0,4]},"__metadata__":{"a":"b"}}`, 4))
	f.Add(file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), int64(len(data)), "fuzz")
		if err != nil {
			return
		}
		var pos int64
		for _, ti := range r.Tensors {
			if ti.Begin != pos || ti.End < ti.Begin || int64(ti.NumElements()*ti.Dtype.Size()) != ti.End-ti.Begin {
				t.Fatalf("accepted inconsistent tensor %+v", ti)
			}
			pos = ti.End
			switch ti.Dtype {
			case F32, F16, BF16, F64:
				if _, _, err := r.Read(ti.Name); err != nil {
					t.Fatalf("accepted file but cannot read %q: %v", ti.Name, err)
				}
			}
		}
		if pos != int64(len(data))-r.dataStart {
			t.Fatalf("tensors cover %d of %d data bytes", pos, int64(len(data))-r.dataStart)
		}
	})
}

// TestTorchReference reads a file PyTorch wrote (testdata/gen_torch.py):
// the F16 and BF16 copies must decode to exactly what this package's own
// narrowing of the F32 values gives, i.e. both round like torch.
func TestTorchReference(t *testing.T) {
	r, err := Open(filepath.Join("testdata", "torch_reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f32, _, err := r.Read("values.f32")
	if err != nil {
		t.Fatal(err)
	}
	half16, _, err := r.Read("values.f16")
	if err != nil {
		t.Fatal(err)
	}
	half, _, err := r.Read("values.bf16")
	if err != nil {
		t.Fatal(err)
	}
	if len(f32) != 264 || len(half16) != len(f32) || len(half) != len(f32) {
		t.Fatalf("lengths %d %d %d", len(f32), len(half16), len(half))
	}
	for i, v := range f32 {
		if want := f16.ToFloat32(f16.FromFloat32(v)); math.Float32bits(half16[i]) != math.Float32bits(want) {
			t.Errorf("F16 of %g: torch %g, ours %g", v, half16[i], want)
		}
		if want := bf16.ToFloat32(bf16.FromFloat32(v)); math.Float32bits(half[i]) != math.Float32bits(want) {
			t.Errorf("BF16 of %g: torch %g, ours %g", v, half[i], want)
		}
	}
}
