package data

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzImport imports content from a file named name twice, stopping at the
// first bad row and skipping bad rows, and checks the invariants: no panic,
// errors that name the file, outputs only on success and readable, and
// every row read either written or rejected.
func fuzzImport(t *testing.T, name string, content []byte) {
	syncFiles = false // throughput; durability is not under test
	dir := t.TempDir()
	in, out := filepath.Join(dir, name), filepath.Join(dir, "out.arrow")
	if err := os.WriteFile(in, content, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, skip := range []bool{false, true} {
		os.Remove(out)
		rep, err := Import(in, out, ImportOptions{SkipInvalid: skip, MaxRowBytes: 1 << 12})
		if err != nil {
			if !strings.Contains(err.Error(), in) {
				t.Fatalf("error does not name the file: %v", err)
			}
			var re *RowError
			if errors.As(err, &re) && (re.Row < 1 || re.File != in) {
				t.Fatalf("row error without a row: %+v", re)
			}
			if _, statErr := os.Stat(out); !os.IsNotExist(statErr) {
				t.Fatalf("failed import (%v) left output", err)
			}
			continue
		}
		if rep.RowsWritten+rep.Rejected != rep.RowsRead || rep.RowsWritten == 0 {
			t.Fatalf("report does not add up: %+v", rep)
		}
		if !skip && rep.Rejected != 0 {
			t.Fatalf("rows rejected without SkipInvalid: %+v", rep)
		}
		n, err := CountRows(out)
		if err != nil || n != rep.RowsWritten {
			t.Fatalf("output has %d rows (%v), report says %d", n, err, rep.RowsWritten)
		}
	}
}

func FuzzImportJSONL(f *testing.F) {
	for _, seed := range []string{
		`{"prompt": "p", "chosen": "c", "rejected": "r"}`,
		"{\"instruction\": \"i\", \"input\": \"\", \"output\": \"o\"}\n\n{\"instruction\": \"j\", \"output\": 3}\n",
		`{"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}], "score_chosen": 1}`,
		`{"chosen": "\n\nHuman: hi\n\nAssistant: yo", "rejected": "\n\nHuman: hi\n\nAssistant: no"}`,
		"{\"prompt\": \"\xff\"}\r\n[1]\nnull\n{\"prompt\": {\"a\": 1}}",
		`{"prompt": [{"role": "user"}]}`,
		`{"chosen": "same", "rejected": "same"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		fuzzImport(t, "in.jsonl", content)
	})
}

func FuzzImportCSV(f *testing.F) {
	for _, seed := range []string{
		"prompt,chosen,rejected\np,c,r\n",
		"instruction,input,output\n\"multi\nline\",,o\ni,x\n",
		"prompt,chosen,rejected,score_chosen\np,c,r,NaN\np,\"c\"\"q\",r,1e400\n",
		"\ufeffprompt\nhello\n\xfe\n",
		"a,a\n1,2\n",
		"chosen,rejected\nThe sky is blue.,The sky is green.\n",
		"prompt,chosen\n\"unterminated,x\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, content []byte) {
		fuzzImport(t, "in.csv", content)
	})
}
