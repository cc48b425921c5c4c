// Package q8 is the Q8_0 weight format in one place: blocks of 32 values
// that share one scale d, each value d·q with q an int8 (ggml's block_q8_0,
// ggml-quants.c). A block is quantized by ggml's reference rule — d =
// max|x|/127, q = round(x/d) half away from zero, d kept as a float16 — so
// a block gotune quantizes and the block llama.cpp's quantizer writes for
// the same values are the same. The GGUF codec and the weights the
// generation engine holds in Q8_0 (with the kernels that read them)
// quantize and dequantize through it.
//
// May import: the other internal helpers (internal/...); nothing of the
// module's upper layers.
package q8

import (
	"math"
	"runtime"
	"sync"

	"github.com/gotune/gotune/internal/f16"
)

// BlockLen is the number of values in a block.
const BlockLen = 32

// Block is 32 consecutive values of a row: value i is D·Q[i]. D is held
// widened to float32 (36 bytes a block in memory, against the 34 of the
// file format whose scale is a float16), so that the kernels read it with
// one load; it is always a float16 value.
type Block struct {
	D float32
	Q [BlockLen]int8
}

// Quantize returns x's block by ggml's rule: the scale is the largest
// magnitude over 127, the values are rounded (half away from zero) after
// dividing by the unrounded scale, and the scale is then rounded to
// float16. len(x) must be BlockLen.
func Quantize(x []float32) Block {
	x = x[:BlockLen]
	var amax float32
	for _, v := range x {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	var b Block
	for i, v := range x {
		b.Q[i] = int8(math.Round(float64(v * id)))
	}
	b.D = f16.ToFloat32(f16.FromFloat32(d))
	return b
}

// QuantizeRow quantizes x (a whole number of blocks) into dst, a large
// x split over the cores (each block is quantized on its own, so the
// result does not depend on the split).
func QuantizeRow(dst []Block, x []float32) {
	if len(x) != len(dst)*BlockLen {
		panic("q8: QuantizeRow with a row that is not its blocks' length")
	}
	workers := min(runtime.GOMAXPROCS(0), len(dst)/parallelBlocks)
	if workers <= 1 {
		quantizeBlocks(dst, x)
		return
	}
	chunk := (len(dst) + workers - 1) / workers
	var wg sync.WaitGroup
	for lo := 0; lo < len(dst); lo += chunk {
		hi := min(lo+chunk, len(dst))
		wg.Add(1)
		go func() {
			defer wg.Done()
			quantizeBlocks(dst[lo:hi], x[lo*BlockLen:hi*BlockLen])
		}()
	}
	wg.Wait()
}

// parallelBlocks is the fewest blocks QuantizeRow gives each core (a
// quarter of a megabyte of values).
const parallelBlocks = 1 << 11

func quantizeBlocks(dst []Block, x []float32) {
	for i := range dst {
		dst[i] = Quantize(x[i*BlockLen : (i+1)*BlockLen])
	}
}

// Dequantize writes the values of src into dst (len(dst) ≥
// len(src)·BlockLen): each D·Q[i], rounded once to float32; eight at a
// time on AVX2.
func Dequantize(dst []float32, src []Block) {
	dst = dst[:len(src)*BlockLen]
	if hasDequantize && len(src) > 0 {
		dequantizeAVX2(&dst[0], &src[0], len(src))
		return
	}
	dequantizeGo(dst, src)
}

// dequantizeGo is Dequantize in plain Go.
func dequantizeGo(dst []float32, src []Block) {
	for i := range src {
		b := &src[i]
		o := dst[i*BlockLen : (i+1)*BlockLen : (i+1)*BlockLen]
		for j, q := range b.Q {
			o[j] = b.D * float32(q)
		}
	}
}
