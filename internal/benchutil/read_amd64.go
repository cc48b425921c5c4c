//go:build amd64 && !purego

package benchutil

import "golang.org/x/sys/cpu"

// sumBytes adds up b as 64-bit words, four 32-byte loads a step (AVX2),
// so that only memory bounds it; len(b) must be a multiple of readBlock.
func sumBytes(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	if !cpu.X86.HasAVX2 {
		return sumBytesGo(b)
	}
	return sumBytesAVX2(&b[0], len(b))
}

//go:noescape
func sumBytesAVX2(p *byte, n int) uint64
