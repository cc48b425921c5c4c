package data

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/internal/benchutil"
)

// benchRows makes n preference rows of English-like text, about 1 KiB each.
func benchRows(n int) []obj {
	words := strings.Fields("the model learns to follow instructions from preference pairs written by people " +
		"who compare two answers and choose the better one for helpfulness honesty and harmlessness")
	rng := rand.New(rand.NewPCG(1, 2))
	text := func(k int) string {
		var b strings.Builder
		for i := 0; i < k; i++ {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[rng.IntN(len(words))])
		}
		return b.String()
	}
	rows := make([]obj, n)
	for i := range rows {
		rows[i] = obj{"prompt": text(40), "chosen": text(60), "rejected": text(60),
			"score_chosen": float64(rng.IntN(10)), "score_rejected": float64(rng.IntN(10))}
	}
	return rows
}

func benchmarkImport(b *testing.B, name string, write func(testing.TB, string, []obj)) {
	const n = 20000
	dir := b.TempDir()
	in, out := filepath.Join(dir, name), filepath.Join(dir, "out.arrow")
	write(b, in, benchRows(n))
	st, err := os.Stat(in)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(st.Size())
	cpu0 := benchutil.CPUSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Import(in, out, DefaultImportOptions())
		if err != nil || rep.RowsWritten != n {
			b.Fatalf("%+v %v", rep, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
	// On a shared machine wall time depends on the neighbours; the process's
	// CPU time (all threads, GC included) does much less.
	b.ReportMetric(float64(st.Size())*float64(b.N)/1e6/(benchutil.CPUSeconds()-cpu0), "MB/cpu-s")
}

// BenchmarkImport measures import speed per format: MB/s of input as stored
// and rows/s, for 20k preference rows of about 1 KiB.
func BenchmarkImport(b *testing.B) {
	for _, f := range []struct {
		name  string
		write func(testing.TB, string, []obj)
	}{
		{"prefs.jsonl", writeJSONL},
		{"prefs.jsonl.gz", writeJSONL},
		{"prefs.csv", func(t testing.TB, p string, r []obj) { writeCSV(t, p, r, false) }},
		{"prefs.parquet", writeParquet},
	} {
		b.Run(f.name, func(b *testing.B) { benchmarkImport(b, f.name, f.write) })
	}
}

// BenchmarkReadPreferences measures reading a dataset back into rows.
func BenchmarkReadPreferences(b *testing.B) {
	path := filepath.Join(b.TempDir(), "prefs.arrow")
	rows := make([]Preference, 20000)
	for i, r := range benchRows(len(rows)) {
		rows[i] = Preference{Prompt: r["prompt"].(string), Chosen: r["chosen"].(string), Rejected: r["rejected"].(string)}
	}
	if err := WritePreferences(path, rows); err != nil {
		b.Fatal(err)
	}
	st, _ := os.Stat(path)
	b.SetBytes(st.Size())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		got, err := ReadPreferences(path)
		if err != nil || len(got) != len(rows) {
			b.Fatal(fmt.Sprint(len(got), err))
		}
	}
	b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
}
