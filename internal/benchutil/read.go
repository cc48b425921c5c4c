package benchutil

import (
	"math"
	"time"
)

// ReadSeconds is the shortest of three passes that read every byte of
// parts once, each part split among workers goroutines by parallel (give
// it the decoding engine's kernel.SpinParallel to split as the engine
// does): the time below which no batch-1 decoding step that reads those
// weights can run, its memory-bandwidth bound.
func ReadSeconds(parts [][]byte, workers int, parallel func(n, workers int, fn func(worker, lo, hi int))) float64 {
	sums := make([]uint64, workers)
	best := math.Inf(1)
	for range 3 {
		t0 := time.Now()
		for _, p := range parts {
			words := len(p) / readBlock
			parallel(words, workers, func(k, lo, hi int) {
				sums[k] += sumBytes(p[lo*readBlock : hi*readBlock])
			})
		}
		best = min(best, time.Since(t0).Seconds())
	}
	return best
}

// readBlock is the bytes sumBytes takes a step at a time; ReadSeconds
// leaves out the last readBlock-1 bytes of a part, at most 127 bytes of a
// matrix.
const readBlock = 128
