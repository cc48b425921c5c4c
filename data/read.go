package data

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
)

// ipcFileMagic opens (and closes) an Arrow IPC file; a stream has none.
var ipcFileMagic = []byte("ARROW1")

// batchReader is what both IPC readers offer: record batches until io.EOF.
type batchReader interface {
	Schema() *arrow.Schema
	Read() (arrow.RecordBatch, error)
}

// Dataset reads the record batches of a dataset on disk: one Arrow IPC
// stream or file, or a directory of such shards read in order.
type Dataset struct {
	path   string
	shards []string
	schema *arrow.Schema

	next  int // next shard to open
	file  *os.File
	cur   batchReader
	close func()
}

// OpenDataset opens an Arrow dataset. For a directory, the shard order is
// the one `datasets` records in state.json when present, else the sorted
// *.arrow files. All shards must share one schema.
func OpenDataset(path string) (*Dataset, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open dataset: %w", err)
	}
	d := &Dataset{path: path, shards: []string{path}}
	if st.IsDir() {
		if d.shards, err = shardFiles(path); err != nil {
			return nil, err
		}
	}
	if err := d.openShard(); err != nil {
		return nil, err
	}
	d.schema = d.cur.Schema()
	return d, nil
}

// shardFiles lists the shards of a dataset directory.
func shardFiles(dir string) ([]string, error) {
	if state, err := os.ReadFile(filepath.Join(dir, "state.json")); err == nil {
		var st struct {
			DataFiles []struct {
				Filename string `json:"filename"`
			} `json:"_data_files"`
		}
		if err := json.Unmarshal(state, &st); err != nil {
			return nil, fmt.Errorf("open dataset %s: state.json: %w", dir, err)
		}
		var out []string
		for _, f := range st.DataFiles {
			if f.Filename == "" || filepath.Base(f.Filename) != f.Filename {
				return nil, fmt.Errorf("open dataset %s: state.json: bad shard name %q", dir, f.Filename)
			}
			out = append(out, filepath.Join(dir, f.Filename))
		}
		if len(out) > 0 {
			return out, nil
		}
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.arrow"))
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", dir, err)
	}
	var out []string
	for _, m := range matches {
		if !strings.HasPrefix(filepath.Base(m), ".") { // skip temporary files
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("open dataset %s: no .arrow shards in directory", dir)
	}
	sort.Strings(out)
	return out, nil
}

// openShard opens the next shard, detecting stream or file format.
func (d *Dataset) openShard() error {
	d.closeShard()
	name := d.shards[d.next]
	d.next++
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("open dataset: %w", err)
	}
	head := make([]byte, len(ipcFileMagic))
	n, _ := io.ReadFull(f, head)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("open dataset %s: %w", name, err)
	}
	if n == len(head) && bytes.Equal(head, ipcFileMagic) {
		r, err := ipc.NewFileReader(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("open dataset %s: not a valid Arrow IPC file: %w", name, err)
		}
		d.file, d.cur, d.close = f, r, func() { r.Close() }
	} else {
		r, err := ipc.NewReader(bufio.NewReaderSize(f, 1<<20))
		if err != nil {
			f.Close()
			return fmt.Errorf("open dataset %s: not an Arrow IPC stream or file: %w", name, err)
		}
		d.file, d.cur, d.close = f, r, r.Release
	}
	if sc := d.cur.Schema(); d.schema != nil && !d.schema.Equal(sc) {
		d.closeShard()
		return fmt.Errorf("open dataset %s: shard %s has schema %s, first shard has %s",
			d.path, name, sc, d.schema)
	}
	return nil
}

func (d *Dataset) closeShard() {
	if d.close != nil {
		d.close()
		d.close = nil
	}
	if d.file != nil {
		d.file.Close()
		d.file = nil
	}
	d.cur = nil
}

// Schema is the schema shared by every shard.
func (d *Dataset) Schema() *arrow.Schema { return d.schema }

// Path is the dataset's path as opened.
func (d *Dataset) Path() string { return d.path }

// Next returns the next record batch, valid until the following call, or
// io.EOF after the last. Every batch is validated in full (offsets, lengths)
// before it is returned, so corrupt files give errors, not panics.
func (d *Dataset) Next() (arrow.RecordBatch, error) {
	for {
		if d.cur == nil {
			return nil, io.EOF
		}
		rec, err := d.cur.Read()
		if errors.Is(err, io.EOF) {
			if d.next >= len(d.shards) {
				d.closeShard()
				return nil, io.EOF
			}
			if err := d.openShard(); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", d.shards[d.next-1], err)
		}
		for i, col := range rec.Columns() {
			if err := array.ValidateFull(col); err != nil {
				return nil, fmt.Errorf("read %s: column %q: %w", d.shards[d.next-1], rec.ColumnName(i), err)
			}
		}
		return rec, nil
	}
}

// Close releases the open shard.
func (d *Dataset) Close() error {
	d.closeShard()
	return nil
}

// forEachBatch calls fn with every record batch of the dataset at path and
// the index of its first row.
func forEachBatch(path string, fn func(rec arrow.RecordBatch, firstRow int) error) (*arrow.Schema, error) {
	d, err := OpenDataset(path)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	row := 0
	for {
		rec, err := d.Next()
		if errors.Is(err, io.EOF) {
			return d.Schema(), nil
		}
		if err != nil {
			return nil, err
		}
		if err := fn(rec, row); err != nil {
			return nil, err
		}
		row += int(rec.NumRows())
	}
}

// CountRows returns the number of rows of the dataset at path.
func CountRows(path string) (int, error) {
	n := 0
	_, err := forEachBatch(path, func(rec arrow.RecordBatch, _ int) error {
		n += int(rec.NumRows())
		return nil
	})
	return n, err
}
