package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/apache/arrow-go/v18/arrow"
)

// hfMetadataKey is the schema metadata key under which Hugging Face
// `datasets` stores a dataset's features (ArrowWriter._build_metadata).
const hfMetadataKey = "huggingface"

// Arrow types of the structured columns. Every field is nullable, as pyarrow
// makes them: `datasets` keeps the features of its metadata only when the
// Arrow field they describe is equal to the file's, nullability included.
var (
	messageType = arrow.StructOf(
		arrow.Field{Name: "role", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "content", Type: arrow.BinaryTypes.String, Nullable: true},
	)
	messagesType = arrow.ListOf(messageType)
	similarType  = arrow.StructOf(
		arrow.Field{Name: "text", Type: arrow.BinaryTypes.String, Nullable: true},
		arrow.Field{Name: "score", Type: arrow.PrimitiveTypes.Float64, Nullable: true},
	)
	similarsType = arrow.ListOf(similarType)
)

// hfFeature returns the JSON of the `datasets` feature describing an Arrow
// type, as `asdict(DatasetInfo)` serialises it: a Value as
// {"dtype": "string", "_type": "Value"}, a struct as an object of its
// fields, and a list in the `[feature]` form that every version of
// `datasets` reads back as a list. ok is false for a type with no feature
// here (the metadata is then left out and `datasets` infers the features).
func hfFeature(t arrow.DataType) (js []byte, ok bool) {
	var b bytes.Buffer
	if !writeFeature(&b, t) {
		return nil, false
	}
	return b.Bytes(), true
}

// hfDtypes maps Arrow types to the dtype names of datasets.Value.
var hfDtypes = map[arrow.Type]string{
	arrow.STRING: "string", arrow.LARGE_STRING: "large_string", arrow.BINARY: "binary",
	arrow.LARGE_BINARY: "large_binary", arrow.BOOL: "bool",
	arrow.INT8: "int8", arrow.INT16: "int16", arrow.INT32: "int32", arrow.INT64: "int64",
	arrow.UINT8: "uint8", arrow.UINT16: "uint16", arrow.UINT32: "uint32", arrow.UINT64: "uint64",
	arrow.FLOAT16: "float16", arrow.FLOAT32: "float32", arrow.FLOAT64: "float64",
}

func writeFeature(b *bytes.Buffer, t arrow.DataType) bool {
	switch t := t.(type) {
	case *arrow.ListType:
		b.WriteByte('[')
		if !writeFeature(b, t.Elem()) {
			return false
		}
		b.WriteByte(']')
		return true
	case *arrow.StructType:
		b.WriteByte('{')
		for i, f := range t.Fields() {
			if i > 0 {
				b.WriteString(", ")
			}
			writePyString(b, f.Name)
			b.WriteString(": ")
			if !writeFeature(b, f.Type) {
				return false
			}
		}
		b.WriteByte('}')
		return true
	}
	dtype, ok := hfDtypes[t.ID()]
	if !ok {
		return false
	}
	b.WriteString(`{"dtype": `)
	writePyString(b, dtype)
	b.WriteString(`, "_type": "Value"}`)
	return true
}

// writePyString writes s as Python's json.dumps does by default
// (ensure_ascii): non-ASCII runes as \uXXXX escapes, surrogate pairs above
// the Basic Multilingual Plane.
func writePyString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r < 0x10000):
			fmt.Fprintf(b, `\u%04x`, r)
		case r >= 0x10000:
			r -= 0x10000
			fmt.Fprintf(b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
}

// namedFeature is one entry of a features object, in file order.
type namedFeature struct {
	name string
	js   []byte
}

// hfMetadataJSON builds the "huggingface" metadata value
// {"info": {"features": {...}}} for the given features, in order.
func hfMetadataJSON(features []namedFeature) string {
	var b bytes.Buffer
	b.WriteString(`{"info": {"features": {`)
	for i, f := range features {
		if i > 0 {
			b.WriteString(", ")
		}
		writePyString(&b, f.name)
		b.WriteString(": ")
		b.Write(f.js)
	}
	b.WriteString("}}}")
	return b.String()
}

// parseHFFeatures returns the features stored in a "huggingface" metadata
// value, in their stored order; ok is false when there are none.
func parseHFFeatures(meta string) (features []namedFeature, ok bool, err error) {
	var top struct {
		Info *struct {
			Features json.RawMessage `json:"features"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(meta), &top); err != nil {
		return nil, false, fmt.Errorf("huggingface metadata: %w", err)
	}
	if top.Info == nil || len(top.Info.Features) == 0 || string(top.Info.Features) == "null" {
		return nil, false, nil
	}
	dec := json.NewDecoder(bytes.NewReader(top.Info.Features))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false, fmt.Errorf("huggingface metadata: features is not an object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, false, fmt.Errorf("huggingface metadata: %w", err)
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, false, fmt.Errorf("huggingface metadata: feature %s: %w", strconv.Quote(name), err)
		}
		features = append(features, namedFeature{name: name, js: compactJSON(raw)})
	}
	return features, true, nil
}

// compactJSON re-spaces a JSON value the way Python's json.dumps does, so
// features copied from one file to another stay byte-identical in shape.
func compactJSON(raw []byte) []byte {
	var v bytes.Buffer
	if err := json.Compact(&v, raw); err != nil {
		return raw
	}
	// Insert Python's ", " and ": " separators outside strings.
	var b bytes.Buffer
	inString, escaped := false, false
	for _, c := range v.Bytes() {
		b.WriteByte(c)
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ',' || c == ':'):
			b.WriteByte(' ')
		}
	}
	return b.Bytes()
}

// newSchema builds a schema of nullable fields with the "huggingface"
// metadata describing them. A type with no `datasets` feature drops the
// metadata altogether; `datasets` then infers every feature from Arrow.
func newSchema(names []string, types []arrow.DataType) *arrow.Schema {
	fields := make([]arrow.Field, len(names))
	features := make([]namedFeature, 0, len(names))
	complete := true
	for i, name := range names {
		fields[i] = arrow.Field{Name: name, Type: types[i], Nullable: true}
		js, ok := hfFeature(types[i])
		complete = complete && ok
		features = append(features, namedFeature{name: name, js: js})
	}
	if !complete {
		return arrow.NewSchema(fields, nil)
	}
	md := arrow.NewMetadata([]string{hfMetadataKey}, []string{hfMetadataJSON(features)})
	return arrow.NewSchema(fields, &md)
}
