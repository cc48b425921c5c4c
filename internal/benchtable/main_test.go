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

// Rows compared with another benchmark of the same run take its figure as
// the reference; a row whose reference did not run, or that has none,
// shows "—" instead of a ratio.
func TestSameRunRows(t *testing.T) {
	in := `BenchmarkLoRASFTStories15M-2   	       1	 1 ns/op	      1000 tok/s	  24.00 active-Mparams
BenchmarkLoRASFTStories15MMoE-2   	       1	 1 ns/op	      500.0 tok/s	  22.00 active-Mparams
BenchmarkDecodeStories15M/batch1-2   	       1	 1 ns/op	      400.0 decode-tok/s	 13824 KV-bytes/tok
BenchmarkDecodeStories15MMoE/batch1-2   	       1	 1 ns/op	      300.0 decode-tok/s	 2112 KV-bytes/tok
BenchmarkDecodeStories15MMoE/batch8-2   	       1	 1 ns/op	      900.0 decode-tok/s	 2112 KV-bytes/tok
`
	res, err := parse(strings.NewReader(in), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	table(&out, res, false)
	text := out.String()
	for _, want := range []string{
		"0.50×",                   // MoE LoRA SFT tok/s over dense
		"0.92×",                   // active parameters 22/24
		"0.75×",                   // decode batch 1
		"0.15× (lower is better)", // KV bytes 2112/13824
		"gotune LoRASFTStories15M",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
	noRatio := 0
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[len(f)-1] == "—" {
			noRatio++
			if !strings.Contains(l, "KV cache per token, stories15M ") && !strings.Contains(l, "decode, batch 8, stories15M-moe") {
				t.Errorf("unexpected row without a ratio: %q", l)
			}
		}
	}
	if noRatio != 2 {
		t.Errorf("%d rows without a ratio, want 2 (dense KV bytes, MoE batch 8 without the dense run):\n%s", noRatio, text)
	}
}

// A row of a benchmark with sub-benchmarks reads the same one every time:
// the benchmark itself when it reports the unit, else the first
// sub-benchmark by name (map order must not choose).
func TestLookupIsDeterministic(t *testing.T) {
	results := map[string]map[string]float64{
		"BenchmarkX/b": {"u": 2}, "BenchmarkX/a": {"u": 1}, "BenchmarkX/c": {"v": 9},
		"BenchmarkY": {"u": 5}, "BenchmarkY/a": {"u": 6},
	}
	for range 20 {
		if x, ok := lookup(results, "BenchmarkX", "u"); !ok || x != 1 {
			t.Fatalf("BenchmarkX: %v %v, want the first sub-benchmark's 1", x, ok)
		}
		if x, _ := lookup(results, "BenchmarkY", "u"); x != 5 {
			t.Fatalf("BenchmarkY: %v, want its own 5", x)
		}
	}
	if _, ok := lookup(results, "BenchmarkX", "w"); ok {
		t.Fatal("a unit no benchmark reports was found")
	}
}

// The pure-Go build's rows take the OpenBLAS build's figures of the same
// run as their reference; the training rows against PyTorch take the
// OpenBLAS build's figure (the first sub-benchmark by name).
func TestBuildsSideBySide(t *testing.T) {
	in := `BenchmarkGEMM/openblas/1024-2   	       3	 1 ns/op	       150.0 GFLOP/s
BenchmarkLoRASFTStories15M/openblas-2   	       3	 1 ns/op	      1000 tok/s
BenchmarkGEMM/purego/1024-2   	       3	 1 ns/op	       180.0 GFLOP/s
BenchmarkLoRASFTStories15M/purego-2   	       3	 1 ns/op	      900.0 tok/s
`
	res, err := parse(strings.NewReader(in), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	table(&out, res, false)
	text := out.String()
	for _, want := range []string{
		"1.20×", // GEMM pure-Go over OpenBLAS, 180/150
		"0.79×", // OpenBLAS GEMM over the machine's 190
		"0.90×", // LoRA SFT pure-Go over OpenBLAS
		"1.40×", // LoRA SFT (OpenBLAS build) over PyTorch's 715
		"gotune GEMM/openblas/1024",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}

// The larger sizes' rows: qwen05 has PyTorch figures under SkylakeX only,
// which both columns compare with and name; model GFLOP/s is a fraction of
// the GEMM peak.
func TestLargerSizes(t *testing.T) {
	in := `BenchmarkLoRASFTSmall-2   	       1	 1 ns/op	 100.0 model-GFLOP/s	 2343 peakRSS-MiB	 201.0 tok/cpu-s	 402.0 tok/s
BenchmarkLoRASFTQwen05-2   	       1	 1 ns/op	 95.00 model-GFLOP/s	 2616 peakRSS-MiB	 36.90 tok/cpu-s	 73.80 tok/s
`
	res, err := parse(strings.NewReader(in), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	for _, skx := range []bool{false, true} {
		var out bytes.Buffer
		if n := table(&out, res, skx); n != 8 {
			t.Fatalf("skx %v: %d rows, want 8:\n%s", skx, n, out.String())
		}
		want := []string{"2.00×", "0.50× (lower is better)", "PyTorch (SkylakeX) tok/s ÷ 2 threads", "GEMM peak"}
		if !skx {
			want = append(want, "0.53×") // 100/190 of the GEMM peak
		}
		for _, w := range want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("skx %v: table lacks %q:\n%s", skx, w, out.String())
			}
		}
	}
}

// PyTorch's figures measured in the same run (torch_lora_step.py's bench
// lines) give their own rows, named so; without those lines the rows are
// left out rather than shown empty.
func TestTorchSameRun(t *testing.T) {
	gotune := "BenchmarkLoRASFTSmall-2   	       1	 1 ns/op	 2343 peakRSS-MiB	 201.0 tok/cpu-s	 402.0 tok/s\n"
	torch := "BenchmarkTorchLoRASFTSmall 4 10000000000 ns/op 160.8 tok/s 100.5 tok/cpu-s 4686 peakRSS-MiB\n"
	rows := func(in string) (int, string) {
		res, err := parse(strings.NewReader(in), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		return table(&out, res, false), out.String()
	}
	alone, _ := rows(gotune)
	both, text := rows(gotune + torch)
	if both != alone+3 {
		t.Fatalf("%d rows with PyTorch's line, %d without: want 3 more:\n%s", both, alone, text)
	}
	for _, want := range []string{"PyTorch, this run", "2.50×", "2.00×", "0.50× (lower is better)"} {
		if !strings.Contains(text, want) {
			t.Errorf("table lacks %q:\n%s", want, text)
		}
	}
}
