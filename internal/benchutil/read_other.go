//go:build !amd64 || purego

package benchutil

// sumBytes adds up b as 64-bit words; len(b) must be a multiple of
// readBlock.
func sumBytes(b []byte) uint64 { return sumBytesGo(b) }
