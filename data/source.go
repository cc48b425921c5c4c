package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// Input formats Import reads.
const (
	FormatJSONL   = "jsonl"   // one JSON object per line (also .ndjson)
	FormatJSON    = "json"    // a JSON array of objects, or JSON lines
	FormatCSV     = "csv"     // comma-separated with a header row
	FormatTSV     = "tsv"     // tab-separated with a header row
	FormatParquet = "parquet" // read through arrow-go's pqarrow
	FormatArrow   = "arrow"   // Arrow IPC stream, file or directory of shards
)

var formats = []string{FormatJSONL, FormatJSON, FormatCSV, FormatTSV, FormatParquet, FormatArrow}

// rawLimit bounds the copy of a row kept for the rejects file.
const rawLimit = 64 << 10

// record is one input row as JSON-like values: string, float64, bool, nil,
// []any, map[string]any (and arrowOpaque for Arrow types with no JSON
// counterpart).
type record struct {
	row    int            // 1-based; the line number in JSONL
	fields map[string]any // nil when the row could not be parsed
	raw    string         // the row's text for the rejects file, at most rawLimit bytes
	csv    []string       // a CSV row's fields, made into raw only when rejected
}

// rawText is the row's text for the rejects file.
func (r record) rawText() string {
	switch {
	case r.raw != "":
		return r.raw
	case r.csv != nil:
		return clip([]byte(csvLine(r.csv)))
	case r.fields != nil:
		js, _ := json.Marshal(r.fields)
		return clip(js)
	}
	return ""
}

// source yields the records of one input file. next returns io.EOF at the
// end, a *reasonError for a row it could not parse (with the record's row
// and raw set), and any other error for a problem with the file itself.
type source interface {
	columns() []string // known before reading rows (CSV header, Parquet/Arrow schema); nil for JSON
	stringly() bool    // every value is text that may spell a number (CSV)
	next() (record, error)
	close() error
}

// countingReader counts the bytes read from the input file.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// formatOf tells the format from the file name, ignoring a .gz suffix.
func formatOf(path string) string {
	name := strings.ToLower(filepath.Base(path))
	name = strings.TrimSuffix(name, ".gz")
	switch filepath.Ext(name) {
	case ".jsonl", ".ndjson":
		return FormatJSONL
	case ".json":
		return FormatJSON
	case ".csv":
		return FormatCSV
	case ".tsv":
		return FormatTSV
	case ".parquet", ".pq":
		return FormatParquet
	case ".arrow", ".ipc", ".feather":
		return FormatArrow
	}
	return ""
}

// openSource opens path in the given format (one of formats, as
// ImportOptions.Validate checks; "" = from the extension, else sniffed from
// the first bytes). bytesRead counts the bytes read from disk.
func openSource(ctx context.Context, path, format string, maxRow int, bytesRead *int64) (source, string, error) {
	if format == "" {
		format = formatOf(path)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		if format != "" && format != FormatArrow {
			return nil, "", fmt.Errorf("import %s: a directory can only hold Arrow shards", path)
		}
		return openArrowSource(path, maxRow)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, "", fmt.Errorf("import: %w", err)
	}
	br := bufio.NewReaderSize(countingReader{f, bytesRead}, 1<<20)
	head, _ := br.Peek(8)
	gz := len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b
	if format == "" && !gz {
		format = sniffFormat(head, br)
	}
	switch format {
	case FormatParquet, FormatArrow:
		f.Close()
		if gz {
			return nil, "", fmt.Errorf("import %s: compressed %s files are not supported; decompress it first", path, format)
		}
		if format == FormatParquet {
			return openParquetSource(ctx, path, maxRow)
		}
		return openArrowSource(path, maxRow)
	}
	var r io.Reader = br
	closeAll := f.Close
	if gz {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, "", fmt.Errorf("import %s: %w", path, err)
		}
		closeAll = func() error { zr.Close(); return f.Close() }
		zbr := bufio.NewReaderSize(zr, 1<<20)
		if format == "" {
			zhead, _ := zbr.Peek(8)
			format = sniffFormat(zhead, zbr)
		}
		r = zbr
	}
	br2, ok := r.(*bufio.Reader)
	if !ok {
		br2 = bufio.NewReaderSize(r, 1<<20)
	}
	if format == FormatJSON || format == FormatJSONL {
		if bom, _ := br2.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
			br2.Discard(3) // JSON parsers reject a byte-order mark
		}
	}
	switch format {
	case FormatJSONL:
		return &jsonlSource{br: br2, max: maxRow, closer: closeAll}, format, nil
	case FormatJSON:
		if firstByte(br2) == '[' {
			return newJSONArraySource(br2, maxRow, closeAll), format, nil
		}
		return &jsonlSource{br: br2, max: maxRow, closer: closeAll}, format, nil
	case FormatCSV, FormatTSV:
		s, err := newCSVSource(br2, format == FormatTSV, maxRow, closeAll)
		if err != nil {
			closeAll()
			return nil, "", fmt.Errorf("import %s: %w", path, err)
		}
		return s, format, nil
	}
	closeAll()
	return nil, "", fmt.Errorf("import %s: cannot tell the file format; name it with --format (%s)", path, strings.Join(formats, ", "))
}

// sniffFormat guesses a format from the first bytes of a file.
func sniffFormat(head []byte, br *bufio.Reader) string {
	switch {
	case bytes.HasPrefix(head, []byte("PAR1")):
		return FormatParquet
	case bytes.HasPrefix(head, ipcFileMagic), bytes.HasPrefix(head, []byte{0xff, 0xff, 0xff, 0xff}):
		return FormatArrow
	}
	switch firstByte(br) {
	case '[':
		return FormatJSON
	case '{':
		return FormatJSONL
	}
	return ""
}

// firstByte returns the first byte after whitespace and a UTF-8 BOM,
// without consuming anything.
func firstByte(br *bufio.Reader) byte {
	for n := 64; ; n *= 2 {
		head, err := br.Peek(n)
		head = bytes.TrimPrefix(head, []byte("\xef\xbb\xbf"))
		if t := bytes.TrimLeft(head, " \t\r\n"); len(t) > 0 {
			return t[0]
		}
		if err != nil || n >= br.Size() {
			return 0
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func clip(b []byte) string {
	if len(b) > rawLimit {
		b = b[:rawLimit]
	}
	return string(b)
}

// ---- JSON Lines -------------------------------------------------------------

type jsonlSource struct {
	br     *bufio.Reader
	max    int
	line   int
	buf    []byte
	closer func() error
}

func (s *jsonlSource) columns() []string { return nil }
func (s *jsonlSource) stringly() bool    { return false }
func (s *jsonlSource) close() error      { return s.closer() }

func (s *jsonlSource) next() (record, error) {
	for {
		line, size, tooLarge, err := s.readLine()
		if err != nil && !errors.Is(err, io.EOF) {
			return record{}, err
		}
		if size < 0 {
			return record{}, io.EOF
		}
		s.line++
		if !tooLarge && len(bytes.TrimSpace(line)) == 0 {
			continue // blank lines are allowed and keep their line number
		}
		rec := record{row: s.line, raw: clip(line)}
		if tooLarge {
			return rec, rowProblem("", ReasonTooLarge, "%d bytes exceeds the limit of %d bytes", size, s.max)
		}
		fields, perr := parseObject(line)
		if perr != nil {
			return rec, perr
		}
		rec.fields = fields
		return rec, nil
	}
}

// readLine returns the next line without its line ending, and its length
// n; n is -1 only at the end of the input. A line longer than s.max is read
// to its end but kept only up to rawLimit bytes, and reported tooLarge.
func (s *jsonlSource) readLine() (line []byte, n int, tooLarge bool, err error) {
	s.buf = s.buf[:0]
	size := 0
	for {
		chunk, e := s.br.ReadSlice('\n')
		if size == 0 && e == nil {
			// Common case: the whole line sits in the reader's buffer.
			line = trimEOL(chunk)
			if len(line) > s.max {
				return line[:min(len(line), rawLimit)], len(line), true, nil
			}
			return line, len(line), false, nil
		}
		size += len(chunk)
		if !tooLarge {
			s.buf = append(s.buf, chunk...)
			if len(s.buf) > s.max+2 {
				tooLarge = true
				s.buf = s.buf[:min(len(s.buf), rawLimit)]
			}
		}
		if errors.Is(e, bufio.ErrBufferFull) {
			continue
		}
		if e != nil && !errors.Is(e, io.EOF) {
			return nil, 0, tooLarge, e
		}
		if size == 0 {
			return nil, -1, false, e
		}
		n = size - (len(chunk) - len(trimEOL(chunk)))
		line = trimEOL(s.buf)
		if !tooLarge && len(line) > s.max {
			tooLarge = true
			line = line[:min(len(line), rawLimit)]
		}
		return line, n, tooLarge, e
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// parseObject decodes one JSON object. encoding/json silently replaces
// invalid UTF-8 with U+FFFD, so the bytes are checked first and the column
// holding a bad byte is named.
func parseObject(b []byte) (map[string]any, *reasonError) {
	if !utf8.Valid(b) {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return nil, rowProblem("", ReasonInvalidJSON, "invalid JSON: %v", err)
		}
		keys := make([]string, 0, len(raw))
		for k := range raw {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !utf8.Valid(raw[k]) {
				return nil, rowProblem(k, ReasonInvalidUTF8, "")
			}
		}
		return nil, rowProblem("", ReasonInvalidUTF8, "invalid UTF-8 in a key")
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, rowProblem("", ReasonInvalidJSON, "invalid JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, rowProblem("", ReasonNotObject, "not a JSON object but %s", jsonTypeName(v))
	}
	return m, nil
}

// ---- JSON array -------------------------------------------------------------

type jsonArraySource struct {
	dec     *json.Decoder
	max     int
	row     int
	started bool
	closer  func() error
}

func newJSONArraySource(r io.Reader, max int, closer func() error) *jsonArraySource {
	return &jsonArraySource{dec: json.NewDecoder(r), max: max, closer: closer}
}

func (s *jsonArraySource) columns() []string { return nil }
func (s *jsonArraySource) stringly() bool    { return false }
func (s *jsonArraySource) close() error      { return s.closer() }

func (s *jsonArraySource) next() (record, error) {
	if !s.started {
		s.started = true
		if tok, err := s.dec.Token(); err != nil || tok != json.Delim('[') {
			return record{}, fmt.Errorf("invalid JSON: not an array of objects")
		}
	}
	if !s.dec.More() {
		if _, err := s.dec.Token(); err != nil {
			return record{}, fmt.Errorf("invalid JSON after row %d: %w", s.row, err)
		}
		return record{}, io.EOF
	}
	s.row++
	var raw json.RawMessage
	if err := s.dec.Decode(&raw); err != nil {
		// A syntax error inside an array cannot be skipped: the rest of the
		// file has no reliable row boundary.
		return record{}, &RowError{Row: s.row, Reason: "invalid JSON: " + err.Error()}
	}
	rec := record{row: s.row, raw: clip(raw)}
	if len(raw) > s.max {
		return rec, rowProblem("", ReasonTooLarge, "%d bytes exceeds the limit of %d bytes", len(raw), s.max)
	}
	fields, perr := parseObject(raw)
	if perr != nil {
		return rec, perr
	}
	rec.fields = fields
	return rec, nil
}

// ---- CSV --------------------------------------------------------------------

type csvSource struct {
	r      *csv.Reader
	header []string
	max    int
	row    int
	closer func() error
}

func newCSVSource(r io.Reader, tab bool, max int, closer func() error) (*csvSource, error) {
	cr := csv.NewReader(r)
	if tab {
		cr.Comma = '\t'
	}
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("empty file: no header row")
	}
	if err != nil {
		return nil, fmt.Errorf("header row: %w", err)
	}
	header = append([]string(nil), header...)
	header[0] = strings.TrimPrefix(header[0], "\ufeff")
	seen := map[string]bool{}
	for i, h := range header {
		if !utf8.ValidString(h) {
			return nil, fmt.Errorf("header row: column %d: invalid UTF-8", i+1)
		}
		if seen[h] {
			return nil, fmt.Errorf("header row: column %q appears twice", h)
		}
		seen[h] = true
	}
	cr.FieldsPerRecord = len(header)
	return &csvSource{r: cr, header: header, max: max, closer: closer}, nil
}

func (s *csvSource) columns() []string { return s.header }
func (s *csvSource) stringly() bool    { return true }
func (s *csvSource) close() error      { return s.closer() }

func (s *csvSource) next() (record, error) {
	fields, err := s.r.Read()
	if errors.Is(err, io.EOF) {
		return record{}, io.EOF
	}
	s.row++
	rec := record{row: s.row, csv: fields}
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, csv.ErrFieldCount) {
			return rec, rowProblem("", ReasonFieldCount, "%d fields, the header has %d", len(fields), len(s.header))
		}
		return rec, rowProblem("", ReasonInvalidCSV, "invalid CSV: %v", pe.Err)
	}
	if err != nil {
		return record{}, err
	}
	size := 0
	for _, f := range fields {
		size += len(f)
	}
	if size > s.max {
		return rec, rowProblem("", ReasonTooLarge, "%d bytes exceeds the limit of %d bytes", size, s.max)
	}
	rec.fields = make(map[string]any, len(fields))
	for i, f := range fields {
		if !utf8.ValidString(f) {
			return rec, rowProblem(s.header[i], ReasonInvalidUTF8, "")
		}
		rec.fields[s.header[i]] = f
	}
	return rec, nil
}

func csvLine(fields []string) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write(fields)
	w.Flush()
	return strings.TrimRight(b.String(), "\n")
}

// ---- Parquet and Arrow --------------------------------------------------------

// arrowSource turns the record batches of a Parquet file or Arrow dataset
// into records.
type arrowSource struct {
	read   func() (arrow.RecordBatch, error)
	names  []string
	closer func() error
	max    int

	rec arrow.RecordBatch
	i   int
	row int
}

func openParquetSource(ctx context.Context, path string, maxRow int) (source, string, error) {
	pf, err := file.OpenParquetFile(path, false)
	if err != nil {
		return nil, "", fmt.Errorf("import %s: not a readable Parquet file: %w", path, err)
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1024}, memory.DefaultAllocator)
	if err != nil {
		pf.Close()
		return nil, "", fmt.Errorf("import %s: %w", path, err)
	}
	sc, err := fr.Schema()
	if err != nil {
		pf.Close()
		return nil, "", fmt.Errorf("import %s: %w", path, err)
	}
	src := &arrowSource{names: fieldNames(sc), max: maxRow}
	if pf.NumRows() == 0 {
		src.read = func() (arrow.RecordBatch, error) { return nil, io.EOF }
		src.closer = pf.Close
		return src, FormatParquet, nil
	}
	rr, err := fr.GetRecordReader(ctx, nil, nil)
	if err != nil {
		pf.Close()
		return nil, "", fmt.Errorf("import %s: %w", path, err)
	}
	src.read = rr.Read
	src.closer = func() error { rr.Release(); return pf.Close() }
	return src, FormatParquet, nil
}

func openArrowSource(path string, maxRow int) (source, string, error) {
	d, err := OpenDataset(path)
	if err != nil {
		return nil, "", fmt.Errorf("import: %w", err)
	}
	return &arrowSource{read: d.Next, names: fieldNames(d.Schema()), closer: d.Close, max: maxRow}, FormatArrow, nil
}

func (s *arrowSource) columns() []string { return s.names }
func (s *arrowSource) stringly() bool    { return false }
func (s *arrowSource) close() error      { return s.closer() }

func (s *arrowSource) next() (record, error) {
	for s.rec == nil || s.i >= int(s.rec.NumRows()) {
		rec, err := s.read()
		if err != nil {
			return record{}, err // io.EOF included
		}
		if rec == nil {
			return record{}, io.EOF
		}
		s.rec, s.i = rec, 0
	}
	s.row++
	i := s.i
	s.i++
	fields := make(map[string]any, len(s.names))
	size := 0
	for c, name := range s.names {
		fields[name] = arrowValue(s.rec.Column(c), i, &size)
	}
	rec := record{row: s.row, fields: fields}
	if size > s.max {
		raw, _ := json.Marshal(fields)
		rec.raw, rec.fields = clip(raw), nil
		return rec, rowProblem("", ReasonTooLarge, "%d bytes exceeds the limit of %d bytes", size, s.max)
	}
	return rec, nil
}

// arrowOpaque stands for a value whose Arrow type has no JSON counterpart;
// it only ever fails type checks, which name the type.
type arrowOpaque struct{ typ string }

// arrowValue converts element i of arr to a JSON-like value, adding the
// bytes of its text to size.
func arrowValue(arr arrow.Array, i int, size *int) any {
	if arr.IsNull(i) {
		return nil
	}
	switch a := arr.(type) {
	case textValues:
		s := strings.Clone(a.Value(i))
		*size += len(s)
		return s
	case *array.Boolean:
		*size++
		return a.Value(i)
	case array.ListLike:
		start, end := a.ValueOffsets(i)
		vals := a.ListValues()
		out := make([]any, 0, end-start)
		for j := int(start); j < int(end); j++ {
			out = append(out, arrowValue(vals, j, size))
		}
		return out
	case *array.Struct:
		st := a.DataType().(*arrow.StructType)
		out := make(map[string]any, st.NumFields())
		for f := 0; f < st.NumFields(); f++ {
			out[st.Field(f).Name] = arrowValue(a.Field(f), i, size)
		}
		return out
	case *array.Dictionary:
		return arrowValue(a.Dictionary(), a.GetValueIndex(i), size)
	}
	if isNumber(arr.DataType()) {
		*size += 8
		v, _ := numberOf(arr)(i)
		return v
	}
	return arrowOpaque{typ: arr.DataType().String()}
}

// jsonTypeName names the type of a JSON-like value for error messages.
func jsonTypeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case arrowOpaque:
		return v.typ
	}
	return fmt.Sprintf("%T", v)
}
