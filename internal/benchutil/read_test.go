package benchutil

import (
	"math/rand/v2"
	"testing"
)

// TestSumBytes checks the assembly sum against the Go one: a read that
// skipped bytes would report a bound it never met.
func TestSumBytes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, readBlock, 5 * readBlock, 1000 * readBlock} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if got, want := sumBytes(b), sumBytesGo(b); got != want {
			t.Errorf("%d bytes: sumBytes %d, Go %d", n, got, want)
		}
	}
}
