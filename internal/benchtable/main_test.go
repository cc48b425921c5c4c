package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseAndTable(t *testing.T) {
	in := `goos: linux
BenchmarkLoRASFTStories15M-2   	       3	 1500000000 ns/op	      1430 tok/s	  820.5 peakRSS-MiB
BenchmarkDecodeStories15M/batch1-2         	       3	   1.2 ns/op	       890.0 decode-tok/s
PASS
`
	var echo bytes.Buffer
	res, err := parse(strings.NewReader(in), &echo)
	if err != nil {
		t.Fatal(err)
	}
	if echo.String() != in {
		t.Error("input not passed through unchanged")
	}
	if res["BenchmarkLoRASFTStories15M"]["tok/s"] != 1430 || res["BenchmarkDecodeStories15M/batch1"]["decode-tok/s"] != 890 {
		t.Fatalf("parsed %v", res)
	}
	var out bytes.Buffer
	if n := table(&out, res, false); n != 4 {
		t.Fatalf("%d rows, want 4 (LoRA tok/s, LoRA RSS, decode vs PyTorch, decode vs llama.cpp):\n%s", n, out.String())
	}
	for _, want := range []string{"2.00×", "4.84×"} { // 1430/715, 890/184
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks ratio %s:\n%s", want, out.String())
		}
	}
	out.Reset()
	table(&out, res, true)
	for _, want := range []string{"1.34×", "3.72×", "2.00×", "PyTorch (SkylakeX)"} { // 1430/1064, 890/239, 890/445
		if !strings.Contains(out.String(), want) {
			t.Errorf("SkylakeX table lacks %s:\n%s", want, out.String())
		}
	}
}
