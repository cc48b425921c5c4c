package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.json")
	if err := WriteBytes(path, []byte("old")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := Write(path, func(w io.Writer) error {
		w.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("content %q after failed write", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("temporary file left: %v", entries)
	}
	if err := WriteBytes(path, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "new" {
		t.Errorf("content %q", b)
	}
}

func TestReplaceDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	fill := func(content string) func(string) error {
		return func(tmp string) error { return os.WriteFile(filepath.Join(tmp, "x"), []byte(content), 0o644) }
	}
	if err := ReplaceDir(dir, fill("one")); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceDir(dir, fill("two")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x")); string(b) != "two" {
		t.Errorf("content %q", b)
	}
	// A failing fill leaves the previous copy and no temporary directory.
	if err := ReplaceDir(dir, func(string) error { return errors.New("no") }); err == nil {
		t.Fatal("error swallowed")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x")); string(b) != "two" {
		t.Errorf("content %q after failed replace", b)
	}
	for _, p := range []string{dir + ".tmp", dir + ".old"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind", p)
		}
	}
	// Cut off between the two renames: Recover brings the old copy back.
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := Recover(dir); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "x")); string(b) != "two" {
		t.Errorf("recovered content %q", b)
	}
}
