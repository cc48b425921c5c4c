package kernel

import (
	"testing"

	"github.com/gotune/gotune/internal/benchutil"
)

var cpu0 float64


func fillT(n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(i % 17)
	}
	return x
}

func BenchmarkPackBT(b *testing.B) {
	n, k := 32000, 288
	w := fillT(n * k)
	dst := make([]float32, 512*288)
	cpu0 = benchutil.CPUSeconds()
	for b.Loop() {
		for jc := 0; jc < n; jc += 512 {
			packB(dst, 32, true, w, k, 0, jc, 288, min(512, n-jc))
		}
	}
	b.ReportMetric((benchutil.CPUSeconds()-cpu0)*1e9/float64(b.N)/float64(n*k), "cpu-ns/elem")
}

func BenchmarkPackBTsmall(b *testing.B) {
	n, k := 768, 288
	w := fillT(n * k)
	dst := make([]float32, 512*288)
	cpu0 = benchutil.CPUSeconds()
	for b.Loop() {
		for jc := 0; jc < n; jc += 512 {
			packB(dst, 32, true, w, k, 0, jc, 288, min(512, n-jc))
		}
	}
	b.ReportMetric((benchutil.CPUSeconds()-cpu0)*1e9/float64(b.N)/float64(n*k), "cpu-ns/elem")
}

func BenchmarkPackAN(b *testing.B) {
	m, k := 524, 32000
	a := fillT(m * k)
	dst := make([]float32, 1536*384)
	cpu0 = benchutil.CPUSeconds()
	for b.Loop() {
		for pc := 0; pc < k; pc += 384 {
			packA(dst, 12, false, a, k, 0, pc, m, min(384, k-pc))
		}
	}
	b.ReportMetric((benchutil.CPUSeconds()-cpu0)*1e9/float64(b.N)/float64(m*k), "cpu-ns/elem")
}

func BenchmarkPackANsmall(b *testing.B) {
	m, k := 1024, 288
	a := fillT(m * k)
	dst := make([]float32, 1536*384)
	cpu0 = benchutil.CPUSeconds()
	for b.Loop() {
		packA(dst, 12, false, a, k, 0, 0, m, 288)
	}
	b.ReportMetric((benchutil.CPUSeconds()-cpu0)*1e9/float64(b.N)/float64(m*k), "cpu-ns/elem")
}

func BenchmarkCopyBig(b *testing.B) {
	a := fillT(32000 * 288)
	d := make([]float32, len(a))
	copy(d, a)
	cpu0 = benchutil.CPUSeconds()
	for b.Loop() {
		copy(d, a)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(a)), "ns/elem")
}

func BenchmarkSumBig(b *testing.B) {
	a := fillT(32000 * 288)
	var s float32
	cpu0 = benchutil.CPUSeconds()
	for b.Loop() {
		for _, x := range a {
			s += x
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(a)), "ns/elem")
	_ = s
}
