package data

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Record batches are cut at writerBatchRows rows, the batch size `datasets`
// itself writes, or earlier once their text passes writerBatchBytes, which
// keeps every string column far from the 2 GiB limit of 32-bit offsets.
const (
	writerBatchRows  = 1000
	writerBatchBytes = 256 << 20
)

// colType is the shape of one dataset column.
type colType int

const (
	colText     colType = iota // utf8
	colFloat                   // float64, null when absent
	colMessages                // list<struct<role, content>>
	colSimilars                // list<struct<text, score>>
)

func (t colType) arrowType() arrow.DataType {
	switch t {
	case colText:
		return arrow.BinaryTypes.String
	case colFloat:
		return arrow.PrimitiveTypes.Float64
	case colMessages:
		return messagesType
	case colSimilars:
		return similarsType
	}
	panic(fmt.Sprintf("data: unknown column type %d", t))
}

// column describes how one column of a dataset is taken from a row of type T.
// Exactly the getter matching typ is set.
type column[T any] struct {
	name     string
	typ      colType
	optional bool // written only when some row uses it
	text     func(*T) string
	float    func(*T) *float64
	messages func(*T) []Message
	similars func(*T) []Similar
}

// used reports whether row r gives column c a value worth a column.
func (c *column[T]) used(r *T) bool {
	switch c.typ {
	case colText:
		return c.text(r) != ""
	case colFloat:
		return c.float(r) != nil
	case colMessages:
		return c.messages(r) != nil
	default:
		return len(c.similars(r)) > 0
	}
}

// size estimates the bytes r adds to column c.
func (c *column[T]) size(r *T) int {
	switch c.typ {
	case colText:
		return len(c.text(r)) + 4
	case colFloat:
		return 8
	case colMessages:
		n := 4
		for _, m := range c.messages(r) {
			n += len(m.Role) + len(m.Content) + 8
		}
		return n
	default:
		n := 4
		for _, s := range c.similars(r) {
			n += len(s.Text) + 12
		}
		return n
	}
}

func (c *column[T]) appendTo(b array.Builder, r *T) {
	switch c.typ {
	case colText:
		b.(*array.StringBuilder).Append(c.text(r))
	case colFloat:
		fb := b.(*array.Float64Builder)
		if v := c.float(r); v != nil {
			fb.Append(*v)
		} else {
			fb.AppendNull()
		}
	case colMessages:
		lb := b.(*array.ListBuilder)
		lb.Append(true)
		sb := lb.ValueBuilder().(*array.StructBuilder)
		role := sb.FieldBuilder(0).(*array.StringBuilder)
		content := sb.FieldBuilder(1).(*array.StringBuilder)
		for _, m := range c.messages(r) {
			sb.Append(true)
			role.Append(m.Role)
			content.Append(m.Content)
		}
	case colSimilars:
		lb := b.(*array.ListBuilder)
		lb.Append(true)
		sb := lb.ValueBuilder().(*array.StructBuilder)
		text := sb.FieldBuilder(0).(*array.StringBuilder)
		score := sb.FieldBuilder(1).(*array.Float64Builder)
		for _, s := range c.similars(r) {
			sb.Append(true)
			text.Append(s.Text)
			score.Append(s.Score)
		}
	}
}

// usedColumns keeps the required columns and the optional ones some row uses.
func usedColumns[T any](cols []column[T], rows []T) []column[T] {
	var out []column[T]
	for i := range cols {
		c := &cols[i]
		keep := !c.optional
		for j := 0; !keep && j < len(rows); j++ {
			keep = c.used(&rows[j])
		}
		if keep {
			out = append(out, *c)
		}
	}
	return out
}

func schemaOf[T any](cols []column[T]) *arrow.Schema {
	names := make([]string, len(cols))
	types := make([]arrow.DataType, len(cols))
	for i, c := range cols {
		names[i], types[i] = c.name, c.typ.arrowType()
	}
	return newSchema(names, types)
}

// rowWriter streams rows of type T into an Arrow IPC stream file, written
// atomically: nothing appears at the destination before Commit.
type rowWriter[T any] struct {
	path    string
	cols    []column[T]
	used    []bool
	schema  *arrow.Schema
	file    *atomicFile
	w       *ipc.Writer
	rb      *array.RecordBuilder
	pending int // rows in rb
	bytes   int // estimated bytes in rb
	rows    int
	closed  bool
}

func newRowWriter[T any](path string, cols []column[T]) (*rowWriter[T], error) {
	f, err := createAtomic(path)
	if err != nil {
		return nil, err
	}
	schema := schemaOf(cols)
	mem := memory.DefaultAllocator
	return &rowWriter[T]{
		path:   path,
		cols:   cols,
		used:   make([]bool, len(cols)),
		schema: schema,
		file:   f,
		w:      ipc.NewWriter(f, ipc.WithSchema(schema), ipc.WithAllocator(mem)),
		rb:     array.NewRecordBuilder(mem, schema),
	}, nil
}

// Write appends one row.
func (w *rowWriter[T]) Write(r *T) error {
	for i := range w.cols {
		c := &w.cols[i]
		c.appendTo(w.rb.Field(i), r)
		w.bytes += c.size(r)
		if !w.used[i] && c.used(r) {
			w.used[i] = true
		}
	}
	w.pending++
	w.rows++
	if w.pending >= writerBatchRows || w.bytes >= writerBatchBytes {
		return w.flush()
	}
	return nil
}

func (w *rowWriter[T]) flush() error {
	if w.pending == 0 {
		return nil
	}
	rec := w.rb.NewRecordBatch()
	defer rec.Release()
	w.pending, w.bytes = 0, 0
	if err := w.w.Write(rec); err != nil {
		return fmt.Errorf("write %s: %w", w.path, err)
	}
	return nil
}

// Commit finishes the stream and moves the file into place, returning the
// names of the columns written. With dropUnused, optional columns that no
// row used are removed first.
func (w *rowWriter[T]) Commit(dropUnused bool) ([]string, error) {
	if w.closed {
		return nil, fmt.Errorf("write %s: already closed", w.path)
	}
	w.closed = true
	defer w.rb.Release()
	if err := w.flush(); err != nil {
		w.file.Abort()
		return nil, err
	}
	if err := w.w.Close(); err != nil {
		w.file.Abort()
		return nil, fmt.Errorf("write %s: %w", w.path, err)
	}
	var keep []int
	var names []string
	for i, c := range w.cols {
		if !c.optional || w.used[i] || !dropUnused {
			keep = append(keep, i)
			names = append(names, c.name)
		}
	}
	if len(keep) == len(w.cols) {
		return names, w.file.Commit()
	}
	// Rewrite without the unused columns: a zero-copy projection of every
	// record batch of the temporary file into a second temporary file.
	defer w.file.Abort()
	if err := w.file.w.Flush(); err != nil {
		return nil, fmt.Errorf("write %s: %w", w.path, err)
	}
	kept := make([]column[T], len(keep))
	for i, j := range keep {
		kept[i] = w.cols[j]
	}
	return names, projectStream(w.file.f.Name(), w.path, schemaOf(kept), keep)
}

// Abort discards everything written.
func (w *rowWriter[T]) Abort() {
	if w.closed {
		return
	}
	w.closed = true
	w.rb.Release()
	w.w.Close()
	w.file.Abort()
}

// projectStream copies the columns keep of the IPC stream at src into a new
// stream file at dst with the given schema.
func projectStream(src, dst string, schema *arrow.Schema, keep []int) error {
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer f.Close()
	r, err := ipc.NewReader(f)
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	defer r.Release()
	out, err := createAtomic(dst)
	if err != nil {
		return err
	}
	w := ipc.NewWriter(out, ipc.WithSchema(schema))
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			w.Close()
			out.Abort()
			return fmt.Errorf("write %s: %w", dst, err)
		}
		cols := make([]arrow.Array, len(keep))
		for i, j := range keep {
			cols[i] = rec.Column(j)
		}
		proj := array.NewRecordBatch(schema, cols, rec.NumRows())
		err = w.Write(proj)
		proj.Release()
		if err != nil {
			w.Close()
			out.Abort()
			return fmt.Errorf("write %s: %w", dst, err)
		}
	}
	if err := w.Close(); err != nil {
		out.Abort()
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return out.Commit()
}

// writeRows writes rows in one go, keeping only the optional columns used.
func writeRows[T any](path string, cols []column[T], rows []T) error {
	w, err := newRowWriter(path, usedColumns(cols, rows))
	if err != nil {
		return err
	}
	for i := range rows {
		if err := w.Write(&rows[i]); err != nil {
			w.Abort()
			return err
		}
	}
	_, err = w.Commit(false)
	return err
}
