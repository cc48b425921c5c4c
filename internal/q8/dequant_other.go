//go:build !amd64 || purego

package q8

// hasDequantize is false: there is no vector dequantization here.
const hasDequantize = false

// dequantizeAVX2 is never called where hasDequantize is false.
func dequantizeAVX2(dst *float32, src *Block, n int) {
	panic("q8: no dequantizeAVX2 on this architecture")
}
