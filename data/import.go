package data

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// DefaultMaxRowBytes is the default bound on the size of one input row
// (DefaultImportOptions).
const DefaultMaxRowBytes = 8 << 20

// detectRows is how many valid rows Import reads ahead to detect the shape.
const detectRows = 100

// Keys of ImportOptions: the flags of `gotune data import` and the keys
// under `data: {import: …}` in a --config file (with underscores).
const (
	KeyImportKind        = "kind"
	KeyImportShape       = "shape"
	KeyImportFormat      = "format"
	KeyImportColumnMap   = "column-map"
	KeyImportSkipInvalid = "skip-invalid"
	KeyImportRejects     = "rejects"
	KeyImportMaxRowBytes = "max-row-bytes"
)

// ImportOptions steers Import. Start from DefaultImportOptions: the zero
// value has no row size bound and is refused.
type ImportOptions struct {
	Kind   Kind   // "" = detect from the columns
	Shape  string // "" = detect from the columns and first rows; else one of Shapes
	Format string // "" = from the file extension (a .gz suffix is looked through), else sniffed

	// ColumnMap maps a gotune column (the key, e.g. "prompt") to the input
	// column that holds it (the value, e.g. "question"). Errors name the
	// input column.
	ColumnMap map[string]string

	// SkipInvalid writes invalid rows to RejectsPath with their reasons
	// and goes on; otherwise the first invalid row stops the import.
	SkipInvalid bool
	RejectsPath string // with SkipInvalid only; "" = OUT + ".rejects.jsonl"

	MaxRowBytes int // largest accepted input row in bytes (> 0)
}

// DefaultImportOptions detects kind, shape and format and accepts rows of
// up to DefaultMaxRowBytes.
func DefaultImportOptions() ImportOptions {
	return ImportOptions{MaxRowBytes: DefaultMaxRowBytes}
}

// Validate reports the first invalid option, naming its key.
func (o ImportOptions) Validate() error {
	if _, err := ParseKind(string(o.Kind)); err != nil {
		return err
	}
	if o.Shape != "" && !contains(Shapes, o.Shape) {
		return &unknownNameError{what: KeyImportShape, name: o.Shape, known: Shapes}
	}
	if o.Format != "" && !contains(formats, o.Format) {
		return &unknownNameError{what: KeyImportFormat, name: o.Format, known: formats}
	}
	if o.RejectsPath != "" && !o.SkipInvalid {
		return fmt.Errorf("%s %q is set without %s: only skipped rows go there", KeyImportRejects, o.RejectsPath, KeyImportSkipInvalid)
	}
	if o.MaxRowBytes <= 0 {
		return fmt.Errorf("%s must be positive, got %d", KeyImportMaxRowBytes, o.MaxRowBytes)
	}
	return nil
}

// ImportReport tells what Import did.
type ImportReport struct {
	Input, Output string
	Format        string
	Kind          Kind
	Shape         string
	Columns       []string       // the output's columns
	RowsRead      int            // input rows seen (blank JSONL lines excluded)
	RowsWritten   int            // rows in the output
	Rejected      int            // rows skipped as invalid (SkipInvalid)
	Reasons       map[string]int // rejected rows by reason (the Reason* constants)
	RejectsPath   string         // where the rejected rows went ("" without SkipInvalid)
	BytesRead     int64          // bytes read from the input file(s) as stored
}

// Import converts the dataset at in (JSONL, JSON, CSV, TSV, Parquet or
// Arrow; JSON and CSV also gzip-compressed) into the gotune dataset out,
// an Arrow IPC stream file written atomically. Invalid rows stop the import
// with a *RowError naming file, row and column, unless SkipInvalid is set.
func Import(in, out string, opts ImportOptions) (ImportReport, error) {
	return ImportContext(context.Background(), in, out, opts)
}

// ImportContext is Import with cancellation: a cancelled import writes
// nothing.
func ImportContext(ctx context.Context, in, out string, opts ImportOptions) (rep ImportReport, err error) {
	rep = ImportReport{Input: in, Output: out, Reasons: map[string]int{}}
	if err := opts.Validate(); err != nil {
		return rep, fmt.Errorf("import %s: %w", in, err)
	}
	src, format, err := openSource(ctx, in, opts.Format, opts.MaxRowBytes, &rep.BytesRead)
	if err != nil {
		return rep, err
	}
	defer src.close()
	rep.Format = format
	im := &importer{ctx: ctx, in: in, opts: opts, src: src, rep: &rep}
	if err := im.checkColumnMap(); err != nil {
		return rep, err
	}
	if err := im.detect(); err != nil {
		return rep, err
	}
	rep.Kind = shapeKind[rep.Shape]
	switch rep.Shape {
	case ShapeAlpaca:
		err = runImport(im, out, instructionColumns(), convertAlpaca)
	case ShapeMessages:
		err = runImport(im, out, conversationColumns(), convertMessages)
	case ShapeShareGPT:
		err = runImport(im, out, conversationColumns(), convertShareGPT)
	case ShapeSelfInstruct:
		err = runImport(im, out, generatedColumns(), convertSelfInstruct)
	case ShapeTRLStandard:
		err = runImport(im, out, preferenceColumns(false), convertTRLStandard)
	case ShapeTRLImplicit:
		err = runImport(im, out, preferenceColumns(false), convertTRLImplicit)
	case ShapeTRLConversational, ShapeTRLConversationalImplicit, ShapeUltraFeedback:
		err = runImport(im, out, preferenceColumns(true), convertConversational)
	case ShapeHHRLHF:
		err = runImport(im, out, preferenceColumns(true), convertHHRLHF)
	case ShapePrompts:
		err = runImport(im, out, promptColumns(false), convertPrompt)
	case ShapePromptsConversational:
		err = runImport(im, out, promptColumns(true), convertPromptConversational)
	}
	return rep, err
}

// importer carries one import's state between its steps.
type importer struct {
	ctx  context.Context
	in   string
	opts ImportOptions
	src  source
	rep  *ImportReport

	pending []pendingRecord // records read ahead for detection, replayed first
	srcDone bool
	rename  map[string]string // input column → gotune column
	display map[string]string // gotune column → input column, for messages
	header  map[string]bool   // the input's columns, renamed, when known up front
}

type pendingRecord struct {
	rec record
	err error
}

// checkColumnMap validates the column map against the input's columns
// where they are known up front.
func (im *importer) checkColumnMap() error {
	im.rename, im.display = map[string]string{}, map[string]string{}
	cols := im.src.columns()
	for to, from := range im.opts.ColumnMap {
		if !contains(knownColumns, to) {
			return fmt.Errorf("import %s: column map %s=%s: %w", im.in, to, from,
				&unknownNameError{what: "gotune column", name: to, known: knownColumns})
		}
		if cols != nil && !contains(cols, from) {
			return fmt.Errorf("import %s: column map %s=%s: no column %q (columns: %s)",
				im.in, to, from, from, strings.Join(cols, ", "))
		}
		if prev, dup := im.rename[from]; dup {
			return fmt.Errorf("import %s: column map: %q is mapped to both %q and %q", im.in, from, prev, to)
		}
		im.rename[from], im.display[to] = to, from
	}
	return nil
}

// applyMap renames the mapped columns of a record in place.
func (im *importer) applyMap(m map[string]any) {
	if len(im.rename) == 0 || m == nil {
		return
	}
	moved := make(map[string]any, len(im.rename))
	for from, to := range im.rename {
		if v, ok := m[from]; ok {
			moved[to] = v
			delete(m, from)
		}
	}
	for to, v := range moved {
		m[to] = v
	}
}

// read returns the next record: first those read ahead, then the source's.
func (im *importer) read() (record, error) {
	if len(im.pending) > 0 {
		p := im.pending[0]
		im.pending = im.pending[1:]
		return p.rec, p.err
	}
	if im.srcDone {
		return record{}, io.EOF
	}
	rec, err := im.src.next()
	if errors.Is(err, io.EOF) {
		im.srcDone = true
	}
	if err == nil {
		im.applyMap(rec.fields)
	}
	return rec, err
}

// detect reads ahead up to detectRows valid rows and decides the shape.
func (im *importer) detect() error {
	cols := map[string]bool{}
	if c := im.src.columns(); c != nil {
		for _, name := range c {
			cols[name] = true
		}
		for from, to := range im.rename {
			delete(cols, from)
			cols[to] = true
		}
	}
	var valid []map[string]any
	for len(valid) < detectRows && len(im.pending) < 100*detectRows {
		rec, err := im.src.next()
		if errors.Is(err, io.EOF) {
			im.srcDone = true
			break
		}
		var re *reasonError
		if err != nil && !errors.As(err, &re) {
			return im.fatal(err)
		}
		if err == nil {
			im.applyMap(rec.fields)
			valid = append(valid, rec.fields)
			if im.src.columns() == nil {
				for k := range rec.fields {
					cols[k] = true
				}
			}
		}
		im.pending = append(im.pending, pendingRecord{rec, err})
		if err != nil && !im.opts.SkipInvalid {
			break // this row stops the import anyway
		}
	}
	first := func(col string) any {
		for _, v := range valid {
			if x := v[col]; x != nil {
				return x
			}
		}
		return nil
	}
	shape := im.opts.Shape
	if shape == "" {
		var err error
		if shape, err = detectShape(im.opts.Kind, cols, first); err != nil {
			for _, p := range im.pending {
				var re *reasonError
				if errors.As(p.err, &re) {
					// No valid row to learn from; the first bad one explains why.
					return &RowError{File: im.in, Row: p.rec.row, Column: im.displayName(re.column), Reason: re.msg}
				}
			}
			if len(cols) == 0 {
				return fmt.Errorf("import %s: no rows", im.in)
			}
			return fmt.Errorf("import %s: cannot tell the dataset kind from the columns %s; set the kind or a column map",
				im.in, strings.Join(sortedKeys(cols), ", "))
		}
	}
	if im.opts.Kind != "" && shapeKind[shape] != im.opts.Kind {
		return fmt.Errorf("import %s: shape %s holds %s, not %s", im.in, shape, shapeKind[shape], im.opts.Kind)
	}
	im.rep.Shape = shape
	if im.src.columns() != nil {
		im.header = cols
		for _, c := range shapeColumns[shape] {
			if !cols[c] {
				return fmt.Errorf("import %s: missing column %q for shape %s (columns: %s)",
					im.in, im.displayName(c), shape, strings.Join(im.src.columns(), ", "))
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// displayName is the input's name for a gotune column.
func (im *importer) displayName(col string) string {
	if from, ok := im.display[col]; ok {
		return from
	}
	return col
}

// fatal names the input file in a source error.
func (im *importer) fatal(err error) error {
	var re *RowError
	if errors.As(err, &re) {
		re.File = im.in
		return re
	}
	return fmt.Errorf("import %s: %w", im.in, err)
}

// rejectLine is one line of the rejects file.
type rejectLine struct {
	Row    int    `json:"row"`
	Column string `json:"column,omitempty"`
	Reason string `json:"reason"`
	Error  string `json:"error"`
	Raw    string `json:"raw"`
}

// runImport converts every record with convert and writes the rows.
func runImport[T any](im *importer, out string, cols []column[T], convert func(fields) (T, *reasonError)) error {
	if im.header != nil {
		// Optional columns the input lacks stay out from the start; JSON
		// rows may bring any of them, so those wait for Commit to drop
		// the unused ones.
		var keep []column[T]
		for _, c := range cols {
			if !c.optional || im.header[c.name] {
				keep = append(keep, c)
			}
		}
		cols = keep
	}
	w, err := newRowWriter(out, cols)
	if err != nil {
		return err
	}
	var rejects *atomicFile
	if im.opts.SkipInvalid {
		im.rep.RejectsPath = im.opts.RejectsPath
		if im.rep.RejectsPath == "" {
			im.rep.RejectsPath = out + ".rejects.jsonl"
		}
		if rejects, err = createAtomic(im.rep.RejectsPath); err != nil {
			w.Abort()
			return err
		}
	}
	abort := func(err error) error {
		w.Abort()
		if rejects != nil {
			rejects.Abort()
		}
		return err
	}
	reject := func(rec record, re *reasonError) error {
		rowErr := &RowError{File: im.in, Row: rec.row, Column: im.displayName(re.column), Reason: re.msg}
		if !im.opts.SkipInvalid {
			return rowErr
		}
		im.rep.Rejected++
		im.rep.Reasons[re.class]++
		line, _ := json.Marshal(rejectLine{Row: rec.row, Column: rowErr.Column, Reason: re.class, Error: rowErr.Error(), Raw: rec.rawText()})
		_, err := rejects.Write(append(line, '\n'))
		return err
	}
	stringly := im.src.stringly()
	for {
		if im.rep.RowsRead%1024 == 0 {
			if err := im.ctx.Err(); err != nil {
				return abort(err)
			}
		}
		rec, err := im.read()
		if errors.Is(err, io.EOF) {
			break
		}
		var re *reasonError
		if err != nil && !errors.As(err, &re) {
			return abort(im.fatal(err))
		}
		im.rep.RowsRead++
		if re == nil {
			var row T
			row, re = convert(fields{m: rec.fields, stringly: stringly})
			if re == nil {
				if err := w.Write(&row); err != nil {
					return abort(err)
				}
				im.rep.RowsWritten++
				continue
			}
		}
		if err := reject(rec, re); err != nil {
			return abort(err)
		}
	}
	if im.rep.RowsWritten == 0 {
		if im.rep.RowsRead == 0 {
			return abort(fmt.Errorf("import %s: no rows", im.in))
		}
		if rejects != nil {
			rejects.Commit() // keep the reasons: they are the only output
		}
		return abort(fmt.Errorf("import %s: no valid rows (%d rejected, see %s)", im.in, im.rep.Rejected, im.rep.RejectsPath))
	}
	kept, err := w.Commit(true)
	if err != nil {
		return abort(err)
	}
	im.rep.Columns = kept
	if rejects != nil {
		return rejects.Commit()
	}
	return nil
}
