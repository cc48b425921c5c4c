package data

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
)

// Column access for reading. Readers accept every Arrow layout a writer
// might reasonably have chosen for a column (string, large_string and
// string_view text; list and large_list; any numeric type for scores), so
// files from pyarrow, polars or `datasets` read as well as our own.

func isText(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.STRING, arrow.LARGE_STRING, arrow.STRING_VIEW:
		return true
	}
	return false
}

func isNumber(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.FLOAT64, arrow.FLOAT32, arrow.FLOAT16, arrow.INT64, arrow.INT32, arrow.INT16, arrow.INT8,
		arrow.UINT64, arrow.UINT32, arrow.UINT16, arrow.UINT8:
		return true
	}
	return false
}

// listStruct returns the struct type of a list<struct> or large_list<struct>.
func listStruct(t arrow.DataType) (*arrow.StructType, bool) {
	var elem arrow.DataType
	switch t := t.(type) {
	case *arrow.ListType:
		elem = t.Elem()
	case *arrow.LargeListType:
		elem = t.Elem()
	default:
		return nil, false
	}
	st, ok := elem.(*arrow.StructType)
	return st, ok
}

// structField returns the index of the named field of st whose type passes ok.
func structField(st *arrow.StructType, name string, ok func(arrow.DataType) bool) int {
	i, found := st.FieldIdx(name)
	if !found || !ok(st.Field(i).Type) {
		return -1
	}
	return i
}

func isMessages(t arrow.DataType) bool {
	st, ok := listStruct(t)
	return ok && structField(st, "role", isText) >= 0 && structField(st, "content", isText) >= 0
}

func isSimilars(t arrow.DataType) bool {
	st, ok := listStruct(t)
	return ok && structField(st, "text", isText) >= 0 && structField(st, "score", isNumber) >= 0
}

// want describes what a reader accepts for a column.
type want struct {
	desc string
	ok   func(arrow.DataType) bool
}

var (
	wantText           = want{"string", isText}
	wantNumber         = want{"a number", isNumber}
	wantMessages       = want{"list<struct<role: string, content: string>>", isMessages}
	wantSimilars       = want{"list<struct<text: string, score: float64>>", isSimilars}
	wantTextOrMessages = want{"string or list<struct<role: string, content: string>>",
		func(t arrow.DataType) bool { return isText(t) || isMessages(t) }}
)

// schemaColumns finds columns of a schema by name and checks their types.
type schemaColumns struct {
	path   string
	schema *arrow.Schema
}

// find returns the index of column name (-1 when absent and optional).
func (s schemaColumns) find(name string, w want, required bool) (int, error) {
	idx := s.schema.FieldIndices(name)
	if len(idx) == 0 {
		if required {
			return -1, fmt.Errorf("read %s: missing column %q (columns: %s)", s.path, name, strings.Join(fieldNames(s.schema), ", "))
		}
		return -1, nil
	}
	t := s.schema.Field(idx[0]).Type
	if !w.ok(t) {
		return -1, fmt.Errorf("read %s: column %q has type %s, want %s", s.path, name, t, w.desc)
	}
	return idx[0], nil
}

func fieldNames(sc *arrow.Schema) []string {
	names := make([]string, sc.NumFields())
	for i := range names {
		names[i] = sc.Field(i).Name
	}
	return names
}

// textValues is what every Arrow string array offers.
type textValues interface {
	IsNull(i int) bool
	Value(i int) string
}

// textAt returns a reader of the text column idx (null reads as ""); the
// strings are copied out of the Arrow buffers. idx < 0 reads "" everywhere.
func textAt(rec arrow.RecordBatch, idx int) func(i int) string {
	if idx < 0 {
		return func(int) string { return "" }
	}
	return textOf(rec.Column(idx))
}

func textOf(arr arrow.Array) func(i int) string {
	tv, ok := arr.(textValues)
	if !ok {
		panic(fmt.Sprintf("data: column of type %s read as text", arr.DataType()))
	}
	return func(i int) string {
		if tv.IsNull(i) {
			return ""
		}
		return strings.Clone(tv.Value(i))
	}
}

// numberOf returns a reader of any numeric array as float64.
func numberOf(arr arrow.Array) func(i int) (float64, bool) {
	switch a := arr.(type) {
	case *array.Float64:
		return func(i int) (float64, bool) { return a.Value(i), a.IsValid(i) }
	case *array.Float32:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Float16:
		return func(i int) (float64, bool) { return float64(a.Value(i).Float32()), a.IsValid(i) }
	case *array.Int64:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Int32:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Int16:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Int8:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Uint64:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Uint32:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Uint16:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	case *array.Uint8:
		return func(i int) (float64, bool) { return float64(a.Value(i)), a.IsValid(i) }
	}
	panic(fmt.Sprintf("data: column of type %s read as a number", arr.DataType()))
}

// floatAt returns a reader of the optional numeric column idx: nil when the
// column is absent or the value null.
func floatAt(rec arrow.RecordBatch, idx int) func(i int) *float64 {
	if idx < 0 {
		return func(int) *float64 { return nil }
	}
	num := numberOf(rec.Column(idx))
	return func(i int) *float64 {
		if v, ok := num(i); ok {
			return &v
		}
		return nil
	}
}

// listOf returns the offsets and struct values of a list<struct> array.
func listOf(arr arrow.Array) (array.ListLike, *array.Struct) {
	l := arr.(array.ListLike)
	return l, l.ListValues().(*array.Struct)
}

// messagesAt returns a reader of the messages column idx (a null list
// reads as an empty conversation, never nil).
func messagesAt(rec arrow.RecordBatch, idx int) func(i int) []Message {
	l, st := listOf(rec.Column(idx))
	stt := st.DataType().(*arrow.StructType)
	role := textOf(st.Field(structField(stt, "role", isText)))
	content := textOf(st.Field(structField(stt, "content", isText)))
	return func(i int) []Message {
		msgs := []Message{}
		if l.IsNull(i) {
			return msgs
		}
		start, end := l.ValueOffsets(i)
		for j := int(start); j < int(end); j++ {
			msgs = append(msgs, Message{Role: role(j), Content: content(j)})
		}
		return msgs
	}
}

// similarsAt returns a reader of the most-similar-instructions column idx.
func similarsAt(rec arrow.RecordBatch, idx int) func(i int) []Similar {
	if idx < 0 {
		return func(int) []Similar { return nil }
	}
	l, st := listOf(rec.Column(idx))
	stt := st.DataType().(*arrow.StructType)
	text := textOf(st.Field(structField(stt, "text", isText)))
	score := numberOf(st.Field(structField(stt, "score", isNumber)))
	return func(i int) []Similar {
		if l.IsNull(i) {
			return nil
		}
		start, end := l.ValueOffsets(i)
		var out []Similar
		for j := int(start); j < int(end); j++ {
			s, _ := score(j)
			out = append(out, Similar{Text: text(j), Score: s})
		}
		return out
	}
}
