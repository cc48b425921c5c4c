package gguf

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/gotune/gotune/checkpoints/gguf"
)

// fileOf writes metadata to an in-memory GGUF file and opens it.
func fileOf(t testing.TB, kv []gguf.KV) *gguf.File {
	t.Helper()
	var buf bytes.Buffer
	if err := gguf.Write(&buf, kv, nil); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// goldenTexts reads the "text" of each line of a golden.jsonl.
func goldenTexts(t testing.TB, path string) []string {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var out []string
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var g struct {
			Text string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &g); err != nil {
			t.Fatal(err)
		}
		out = append(out, g.Text)
	}
	return out
}
