package benchutil

import "encoding/binary"

// sumBytesGo is sumBytes in Go: the 64-bit little-endian words of b
// added up in eight chains.
func sumBytesGo(b []byte) uint64 {
	var a [8]uint64
	for i := 0; i+64 <= len(b); i += 64 {
		for j := range a {
			a[j] += binary.LittleEndian.Uint64(b[i+8*j:])
		}
	}
	var s uint64
	for _, v := range a {
		s += v
	}
	return s
}
