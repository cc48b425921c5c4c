package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/gotune/gotune/internal/tinymodel"
)

// TestGGUFExportAndGenerate converts the world base model to GGUF with
// `gotune export --base DIR --out FILE.gguf` and generates from the file:
// the greedy text equals the one generated from the model directory.
func TestGGUFExportAndGenerate(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "world.gguf")
	msg, err := runGotune(t, "export", "--base", tinymodel.WorldBase(), "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, out) {
		t.Fatalf("export output %q does not name %s", msg, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "Modelfile")); err != nil {
		t.Fatal(err)
	}
	// Flags keep their values between runs in one process: --prompt
	// would accumulate.
	resetPrompts := func() {
		f := generateCmd.Flags().Lookup("prompt")
		f.Value.(pflag.SliceValue).Replace(nil)
		f.Changed = false
	}
	resetPrompts() // left set by earlier tests too
	t.Cleanup(resetPrompts)
	t.Cleanup(func() {
		for _, name := range []string{"base", "out", "dtype"} {
			f := exportCmd.Flags().Lookup(name)
			f.Value.Set(f.DefValue)
			f.Changed = false
		}
	})
	args := []string{"--prompt", "The fox", "--max-tokens", "12", "--temperature", "0", "--json"}
	fromDir, err := runGotune(t, append([]string{"generate", "--model", tinymodel.WorldBase()}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	resetPrompts()
	fromGGUF, err := runGotune(t, append([]string{"generate", "--model", out}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if fromGGUF != fromDir {
		t.Fatalf("generate from the GGUF file:\n%s\nfrom the directory:\n%s", fromGGUF, fromDir)
	}
	if _, err := runGotune(t, "export", "--base", tinymodel.WorldBase(), "--out", filepath.Join(dir, "x.gguf"), "--dtype", "q4_k"); err == nil || !strings.Contains(err.Error(), "dtype") {
		t.Fatalf("--dtype q4_k: error %v", err)
	}
}
