package data

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// AddFloat64Columns copies the dataset at in to out with float64 columns
// added, or replaced where a column of that name exists: cols[name][i] is
// the value of row i, so every slice holds one value per row. Other columns
// are copied untouched (zero-copy per record batch) and the `datasets`
// features are kept and extended. in and out may be the same path: out is
// written to a temporary file and renamed into place at the end.
func AddFloat64Columns(in, out string, cols map[string][]float64) error {
	d, err := OpenDataset(in)
	if err != nil {
		return err
	}
	defer d.Close()
	src := d.Schema()

	// Column layout: replaced columns keep their place, new ones follow in
	// name order.
	names := make([]string, 0, len(cols))
	for name := range cols {
		names = append(names, name)
	}
	sort.Strings(names)
	fields := append([]arrow.Field(nil), src.Fields()...)
	target := make([]int, len(names)) // output column of each added name
	for i, name := range names {
		if idx := src.FieldIndices(name); len(idx) > 0 {
			target[i] = idx[0]
		} else {
			target[i] = len(fields)
			fields = append(fields, arrow.Field{})
		}
		fields[target[i]] = arrow.Field{Name: name, Type: arrow.PrimitiveTypes.Float64, Nullable: true}
	}
	schema, err := schemaWithFeatures(src, fields)
	if err != nil {
		return fmt.Errorf("add columns to %s: %w", in, err)
	}

	f, err := createAtomic(out)
	if err != nil {
		return err
	}
	w := ipc.NewWriter(f, ipc.WithSchema(schema))
	fail := func(err error) error {
		w.Close()
		f.Abort()
		return err
	}
	row := 0
	for {
		rec, err := d.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fail(err)
		}
		n := int(rec.NumRows())
		arrays := make([]arrow.Array, len(fields))
		copy(arrays, rec.Columns())
		var built []arrow.Array
		for i, name := range names {
			vals := cols[name]
			if row+n > len(vals) {
				for _, a := range built {
					a.Release()
				}
				return fail(fmt.Errorf("add columns to %s: column %q has %d values, the dataset has more rows", in, name, len(vals)))
			}
			b := array.NewFloat64Builder(memory.DefaultAllocator)
			b.AppendValues(vals[row:row+n], nil)
			arrays[target[i]] = b.NewArray()
			b.Release()
			built = append(built, arrays[target[i]])
		}
		out := array.NewRecordBatch(schema, arrays, int64(n))
		err = w.Write(out)
		out.Release()
		for _, a := range built {
			a.Release()
		}
		if err != nil {
			return fail(fmt.Errorf("add columns: write %s: %w", f.path, err))
		}
		row += n
	}
	for _, name := range names {
		if len(cols[name]) != row {
			return fail(fmt.Errorf("add columns to %s: column %q has %d values for %d rows", in, name, len(cols[name]), row))
		}
	}
	if err := w.Close(); err != nil {
		return fail(fmt.Errorf("add columns: write %s: %w", out, err))
	}
	return f.Commit()
}

// schemaWithFeatures builds a schema of the given fields whose "huggingface"
// features keep the entries of src's metadata for columns that did not
// change type, and describe the others from their Arrow types. Other
// metadata keys are kept; the `datasets` fingerprint is dropped since the
// content changed.
func schemaWithFeatures(src *arrow.Schema, fields []arrow.Field) (*arrow.Schema, error) {
	old := map[string][]byte{}
	md := src.Metadata()
	if i := md.FindKey(hfMetadataKey); i >= 0 {
		feats, ok, err := parseHFFeatures(md.Values()[i])
		if err != nil {
			return nil, err
		}
		if ok {
			for _, f := range feats {
				old[f.name] = f.js
			}
		}
	}
	features := make([]namedFeature, 0, len(fields))
	complete := true
	for _, f := range fields {
		if idx := src.FieldIndices(f.Name); len(idx) > 0 && arrow.TypeEqual(src.Field(idx[0]).Type, f.Type) {
			if js, ok := old[f.Name]; ok {
				features = append(features, namedFeature{f.Name, js})
				continue
			}
		}
		js, ok := hfFeature(f.Type)
		complete = complete && ok
		features = append(features, namedFeature{f.Name, js})
	}
	var keys, values []string
	for i, k := range md.Keys() {
		if k != hfMetadataKey {
			keys, values = append(keys, k), append(values, md.Values()[i])
		}
	}
	if complete {
		keys, values = append(keys, hfMetadataKey), append(values, hfMetadataJSON(features))
	}
	meta := arrow.NewMetadata(keys, values)
	return arrow.NewSchema(fields, &meta), nil
}
