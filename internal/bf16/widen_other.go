//go:build !amd64 || purego

package bf16

// hasWiden is false: there is no vector widening here.
const hasWiden = false

// widen8 is never called where hasWiden is false.
func widen8(dst []float32, src []uint16) { panic("bf16: no widen8 on this architecture") }
