package main

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkAttentionTrain/linear/T=1024-2         	       2	 500000000 ns/op	      8192 tok/s	         0.25 cpu-s/op	       348.0 peakRSS-MiB
BenchmarkAttentionTrain/softmax/T=256-2         	       2	 250000000 ns/op	     16384 tok/s	         0.5 cpu-s/op	       431.0 peakRSS-MiB
BenchmarkAttentionTrain/softmax/T=1024-2        	       2	1000000000 ns/op	      4096 tok/s	         1.0 cpu-s/op	       642.0 peakRSS-MiB
PASS
`

// The parser derives tokens per CPU-second from the line's own figures
// (tokens per step = tok/s × s/op), passes the input through, and the
// figures are written.
func TestParseAndDraw(t *testing.T) {
	var echo bytes.Buffer
	cases, err := parse(strings.NewReader(sample), &echo)
	if err != nil {
		t.Fatal(err)
	}
	if echo.String() != sample {
		t.Errorf("input not passed through: %q", echo.String())
	}
	sm, lin := cases["softmax"], cases["linear"]
	if len(sm) != 2 || len(lin) != 1 || len(cases) != 2 {
		t.Fatalf("cases %+v", cases)
	}
	// 16384 tok/s × 0.25 s = 4096 tokens a step, over 0.5 CPU-s.
	if sm[0].T != 256 || math.Abs(sm[0].tokPerCPUSecond-8192) > 1e-9 || sm[0].peakRSSMiB != 431 {
		t.Errorf("softmax T=256: %+v", sm[0])
	}
	if lin[0].T != 1024 || math.Abs(lin[0].tokPerCPUSecond-16384) > 1e-9 {
		t.Errorf("linear T=1024: %+v", lin[0])
	}
	out := filepath.Join(t.TempDir(), "att")
	if err := draw(out+"-train.png", "t", "y", cases, func(q point) float64 { return q.tokPerCPUSecond }); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(out + "-train.png"); err != nil || !bytes.HasPrefix(raw, []byte("\x89PNG")) {
		t.Errorf("figure: %v, %d bytes", err, len(raw))
	}
	if _, err := parse(strings.NewReader("BenchmarkAttentionTrain/gau/T=256-2 2 100 ns/op 5 tok/s\n"), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a line without cpu-s/op: %v", err)
	}
}
