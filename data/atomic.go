package data

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
)

// syncFiles makes Commit fsync before renaming, so a crash cannot leave a
// renamed but empty file. Fuzz tests turn it off for throughput.
var syncFiles = true

// atomicFile is a temporary file in the destination's directory that takes
// the destination's name only on Commit: readers never see a half-written
// file, and an interrupted write leaves the destination as it was.
type atomicFile struct {
	f    *os.File
	w    *bufio.Writer
	path string
	done bool
}

func createAtomic(path string) (*atomicFile, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &atomicFile{f: f, w: bufio.NewWriterSize(f, 1<<20), path: path}, nil
}

// Write buffers p for the temporary file.
func (a *atomicFile) Write(p []byte) (int, error) { return a.w.Write(p) }

// Commit flushes, syncs and renames the temporary file into place.
func (a *atomicFile) Commit() error {
	if a.done {
		return fmt.Errorf("write %s: already closed", a.path)
	}
	a.done = true
	tmp := a.f.Name()
	err := a.w.Flush()
	if err == nil && syncFiles {
		err = a.f.Sync()
	}
	if cerr := a.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, a.path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", a.path, err)
	}
	return nil
}

// Abort discards the temporary file; it is a no-op after Commit.
func (a *atomicFile) Abort() {
	if a.done {
		return
	}
	a.done = true
	a.f.Close()
	os.Remove(a.f.Name())
}
