package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/gotune/gotune/checkpoints/atomicfile"
)

// A set is either one file `<base>.safetensors` or shards
// `<base>-00001-of-0000N.safetensors` listed in `<base>.safetensors.index.json`
// (Hugging Face's sharded checkpoint layout).

// FileName is the single-file name of a set.
func FileName(base string) string { return base + ".safetensors" }

// IndexName is the index file name of a sharded set.
func IndexName(base string) string { return base + ".safetensors.index.json" }

// ShardName is the name of shard i (1-based) of n.
func ShardName(base string, i, n int) string {
	return fmt.Sprintf("%s-%05d-of-%05d.safetensors", base, i, n)
}

// maxIndexBytes bounds the index JSON a reader accepts.
const maxIndexBytes = 64 << 20

// Index is the content of a `.safetensors.index.json` file.
type Index struct {
	Metadata  map[string]any    `json:"metadata"`
	WeightMap map[string]string `json:"weight_map"`
}

// WriteOptions control how WriteSet stores tensors.
type WriteOptions struct {
	Dtype         Dtype // F32 (default), F16 or BF16
	MaxShardBytes int64 // shard when the data exceed this many bytes; 0 = never
}

// WriteSet writes tensors under dir as one file, or as shards of at most
// MaxShardBytes of data each (a larger tensor gets a shard of its own) plus
// an index. Every file is written atomically; shards come first and the
// index last, and files of an earlier set with the same base that the new
// one does not use are removed afterwards. It returns the file names written.
func WriteSet(dir, base string, tensors []Tensor, meta map[string]string, opt WriteOptions) ([]string, error) {
	if opt.Dtype == "" {
		opt.Dtype = F32
	}
	if err := storable(opt.Dtype); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", dir, err)
	}
	if err := checkTensors(tensors); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", dir, err)
	}
	size := int64(opt.Dtype.Size())
	var total int64
	for _, t := range tensors {
		total += int64(len(t.Data)) * size
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("safetensors %s: %w", dir, err)
	}
	var written []string
	if opt.MaxShardBytes <= 0 || total <= opt.MaxShardBytes {
		name := FileName(base)
		if err := WriteFile(filepath.Join(dir, name), tensors, meta, opt.Dtype); err != nil {
			return nil, err
		}
		written = append(written, name)
	} else {
		// Greedy packing in the given order, as transformers' shard_checkpoint.
		var shards [][]Tensor
		var cur []Tensor
		var curBytes int64
		for _, t := range tensors {
			n := int64(len(t.Data)) * size
			if len(cur) > 0 && curBytes+n > opt.MaxShardBytes {
				shards = append(shards, cur)
				cur, curBytes = nil, 0
			}
			cur = append(cur, t)
			curBytes += n
		}
		shards = append(shards, cur)
		idx := Index{Metadata: map[string]any{"total_size": total}, WeightMap: map[string]string{}}
		for i, sh := range shards {
			name := ShardName(base, i+1, len(shards))
			if err := WriteFile(filepath.Join(dir, name), sh, meta, opt.Dtype); err != nil {
				return nil, err
			}
			for _, t := range sh {
				idx.WeightMap[t.Name] = name
			}
			written = append(written, name)
		}
		raw, err := json.MarshalIndent(idx, "", "  ")
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteBytes(filepath.Join(dir, IndexName(base)), append(raw, '\n')); err != nil {
			return nil, err
		}
		written = append(written, IndexName(base))
	}
	if err := removeStale(dir, base, written); err != nil {
		return nil, err
	}
	return written, nil
}

// removeStale deletes the files of an earlier set with this base that are
// not among keep.
func removeStale(dir, base string, keep []string) error {
	shard := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + `-\d{5}-of-\d{5}\.safetensors$`)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("safetensors %s: %w", dir, err)
	}
	kept := map[string]bool{}
	for _, k := range keep {
		kept[k] = true
	}
	for _, e := range entries {
		n := e.Name()
		if kept[n] || !(n == FileName(base) || n == IndexName(base) || shard.MatchString(n)) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("safetensors %s: removing stale %s: %w", dir, n, err)
		}
	}
	return nil
}

// Set reads a single-file or sharded set as one collection of tensors.
type Set struct {
	Dir      string
	Metadata map[string]string // metadata of the first file
	readers  []*Reader
	where    map[string]*Reader
	names    []string
}

// OpenSet opens `<base>.safetensors.index.json` and its shards when the
// index exists, else `<base>.safetensors`. The index is validated: shard
// names must be plain file names in dir, every listed tensor must be in its
// shard, and every tensor of a shard must be listed there.
func OpenSet(dir, base string) (*Set, error) {
	s := &Set{Dir: dir, where: map[string]*Reader{}}
	idxPath := filepath.Join(dir, IndexName(base))
	raw, err := readLimited(idxPath, maxIndexBytes)
	if errors.Is(err, fs.ErrNotExist) {
		r, err := Open(filepath.Join(dir, FileName(base)))
		if err != nil {
			return nil, err
		}
		s.add(r)
		s.Metadata = r.Metadata
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("safetensors index %s: %w", idxPath, err)
	}
	idx, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("safetensors index %s: %w", idxPath, err)
	}
	byFile := map[string][]string{}
	for name, file := range idx.WeightMap {
		byFile[file] = append(byFile[file], name)
	}
	files := make([]string, 0, len(byFile))
	for f := range byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		if f == "" || f != filepath.Base(f) || strings.ContainsAny(f, `/\`) || f == "." || f == ".." {
			s.Close()
			return nil, fmt.Errorf("safetensors index %s: shard name %q is not a plain file name", idxPath, f)
		}
		r, err := Open(filepath.Join(dir, f))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("safetensors index %s: %w", idxPath, err)
		}
		s.readers = append(s.readers, r)
		if s.Metadata == nil {
			s.Metadata = r.Metadata
		}
		listed := map[string]bool{}
		for _, name := range byFile[f] {
			listed[name] = true
			if _, ok := r.Info(name); !ok {
				s.Close()
				return nil, fmt.Errorf("safetensors index %s: tensor %q is mapped to %s, which does not hold it", idxPath, name, f)
			}
		}
		for _, t := range r.Tensors {
			if !listed[t.Name] {
				s.Close()
				return nil, fmt.Errorf("safetensors index %s: shard %s holds tensor %q, which the index does not map to it", idxPath, f, t.Name)
			}
			s.where[t.Name] = r
			s.names = append(s.names, t.Name)
		}
	}
	return s, nil
}

func (s *Set) add(r *Reader) {
	s.readers = append(s.readers, r)
	for _, t := range r.Tensors {
		s.where[t.Name] = r
		s.names = append(s.names, t.Name)
	}
}

func parseIndex(raw []byte) (*Index, error) {
	fields, err := objectFields(raw)
	if err != nil {
		return nil, err
	}
	idx := &Index{}
	for _, f := range fields {
		switch f.key {
		case "metadata":
			if err := json.Unmarshal(f.raw, &idx.Metadata); err != nil {
				return nil, fmt.Errorf("metadata: %w", err)
			}
		case "weight_map":
			wm, err := objectFields(f.raw)
			if err != nil {
				return nil, fmt.Errorf("weight_map: %w", err)
			}
			idx.WeightMap = make(map[string]string, len(wm))
			for _, e := range wm {
				var file string
				if err := json.Unmarshal(e.raw, &file); err != nil {
					return nil, fmt.Errorf("weight_map: tensor %q: file name is not a string", e.key)
				}
				idx.WeightMap[e.key] = file
			}
		}
	}
	if len(idx.WeightMap) == 0 {
		return nil, errors.New("missing or empty weight_map")
	}
	return idx, nil
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%d bytes exceed the %d-byte limit", st.Size(), limit)
	}
	return os.ReadFile(path)
}

// Names lists every tensor, shard by shard in data order.
func (s *Set) Names() []string { return append([]string(nil), s.names...) }

// Info describes one tensor.
func (s *Set) Info(name string) (TensorInfo, bool) {
	r, ok := s.where[name]
	if !ok {
		return TensorInfo{}, false
	}
	return r.Info(name)
}

// ReadInto converts a tensor to float32 into dst (see Reader.ReadInto).
func (s *Set) ReadInto(name string, dst []float32) error {
	r, ok := s.where[name]
	if !ok {
		return fmt.Errorf("safetensors %s: no tensor %q", s.Dir, name)
	}
	return r.ReadInto(name, dst)
}

// Read returns a tensor as float32 with its shape.
func (s *Set) Read(name string) ([]float32, []int, error) {
	r, ok := s.where[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors %s: no tensor %q", s.Dir, name)
	}
	return r.Read(name)
}

// Close closes every file of the set.
func (s *Set) Close() error {
	var first error
	for _, r := range s.readers {
		if err := r.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
