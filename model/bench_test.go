package model

import (
	"math/rand/v2"
	"os"
	"testing"

	"github.com/gotune/gotune/internal/benchutil"
	"github.com/gotune/gotune/internal/blas"
	"gorgonia.org/gorgonia"
)

// Training-step benchmarks on the stories15M shape at batch 8 × 256, the
// workloads of shared/perf/ANCHORS.md. Build with -tags openblas for the
// fast GEMM and set OPENBLAS_CORETYPE to compare with a PyTorch column;
// OPENBLAS_NUM_THREADS=1 makes the operations split products between
// goroutines instead of waking OpenBLAS's busy-waiting threads (faster and
// far cheaper in CPU time on a busy machine), e.g.
//
//	OPENBLAS_NUM_THREADS=1 OPENBLAS_CORETYPE=Haswell go test -tags openblas ./model -run x -bench Stories15M -benchtime 3x
//
// Each reports tokens/s, CPU seconds per step and the process's peak
// resident set (VmHWM), which is cumulative over the benchmarks run in one
// process: run one at a time for a clean memory figure.
// testdata/bench_torch.py measures PyTorch on the same workloads.
func BenchmarkStories15MFullFT(b *testing.B) { benchStories15M(b, "full") }

// BenchmarkStories15MFrozenBase trains only the attention projections
// (q, k, v, o), the frozen-base workload until adapters.
func BenchmarkStories15MFrozenBase(b *testing.B) { benchStories15M(b, "frozen") }

// BenchmarkStories15MForward is the forward pass and loss only.
func BenchmarkStories15MForward(b *testing.B) { benchStories15M(b, "forward") }

func benchStories15M(b *testing.B, mode string) {
	const B, T = 8, 256
	c, err := Preset("stories15M", 0)
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	opt := GraphOptions{B: B, T: T}
	switch mode {
	case "full":
		opt.Trainable = func(string) bool { return true }
	case "frozen":
		opt.Trainable = attentionOnly
	}
	g, err := Build(w, opt)
	if err != nil {
		b.Fatal(err)
	}
	loss := g.MeanNLL(g.InputVector("weights", B*T))
	r := rand.New(rand.NewPCG(1, 2))
	for i := range g.In.Tokens {
		g.In.Tokens[i] = int32(r.IntN(c.VocabSize))
		g.In.Targets[i] = int32(r.IntN(c.VocabSize))
		g.Vector("weights")[i] = 1
	}
	var wrt []*gorgonia.Node
	if mode != "forward" {
		wrt = g.Trainable
	}
	p, err := g.Compile(loss, wrt)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Run(); err != nil { // warm-up: first touch of every buffer
		b.Fatal(err)
	}
	cpu0 := benchutil.CPUSeconds()
	for b.Loop() {
		p.ZeroGrad()
		if err := p.Run(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tok/s")
	// CPU time is less sensitive than wall time to other work on the machine.
	b.ReportMetric((benchutil.CPUSeconds()-cpu0)/float64(b.N), "cpu-s/op")
	b.ReportMetric(benchutil.PeakRSSMiB(), "peakRSS-MiB")
	b.Logf("blas %s, OPENBLAS_CORETYPE=%q, loss %.4f", blas.Backend(), os.Getenv("OPENBLAS_CORETYPE"), Value32(loss)[0])
}
