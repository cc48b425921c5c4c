// Package atomicfile writes files and directories so that a reader never
// sees a half-written one: data goes to a temporary name in the same
// directory, is synced, and is renamed over the target in one step.
//
// May import: checkpoints/..., internal/blas and internal/kernel; never
// model/..., tokenizer/..., data/... or anything above (file formats know
// tensors and bytes, not the model).
package atomicfile

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Write creates path atomically with the bytes fn writes. On any error the
// target is left as it was and the temporary file is removed.
func Write(path string, fn func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fn(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	syncDir(dir)
	return nil
}

// WriteBytes creates path atomically holding data.
func WriteBytes(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// ReplaceDir fills a fresh directory by fn and then puts it at dir in place
// of any previous one. fn writes into "<dir>.tmp"; the previous directory is
// moved to "<dir>.old" while the new one is renamed into place and removed
// only afterwards, so at every instant either dir or "<dir>.old" holds a
// complete copy (see Recover).
func ReplaceDir(dir string, fn func(tmp string) error) error {
	dir = filepath.Clean(dir)
	tmp, old := dir+".tmp", dir+".old"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	if err := fn(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	syncDir(tmp)
	if err := Recover(dir); err != nil {
		return err
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("replace %s: %w", dir, err)
		}
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("replace %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	syncDir(filepath.Dir(dir))
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("replace %s: %w", dir, err)
	}
	return nil
}

// Recover completes a ReplaceDir that was cut off between moving the old
// directory aside and renaming the new one into place: when dir is missing
// and "<dir>.old" exists, the old copy is moved back.
func Recover(dir string) error {
	dir = filepath.Clean(dir)
	old := dir + ".old"
	if _, err := os.Stat(dir); err == nil || !os.IsNotExist(err) {
		return nil
	}
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	if err := os.Rename(old, dir); err != nil {
		return fmt.Errorf("recover %s: %w", dir, err)
	}
	return nil
}

// syncDir flushes a directory entry change to disk where the platform
// allows it; failures are ignored because not every file system supports it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
