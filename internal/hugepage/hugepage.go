// Package hugepage allocates the large, long-lived slices of the model (its
// weights) so that the kernel backs them with 2 MiB transparent huge pages
// where it can. Decoding streams every weight once per token: on 4 KiB
// pages that is one TLB miss every 4 KiB and a hardware prefetcher that
// stops at each page boundary; on huge pages the stream runs uninterrupted
// (the qwen05 shape's matrix-vector products read 2 GB a token about 10 %
// faster, see the README's decode section).
//
// On Linux the slice comes from the Go heap as any other and is advised
// (madvise MADV_HUGEPAGE) before anything writes to it, so its first writes
// fault in huge pages when the system's transparent huge pages are
// "madvise" or "always"; elsewhere, or with them "never", it is a plain
// slice. Memory the heap reuses from freed allocations that is still
// resident stays on the small pages it has: the advice pays for weights
// allocated as a model loads, not for memory churned before. Either way the memory is the same zeroed Go slice: the advice
// changes speed, never contents.
//
// May import: the other internal helpers (internal/...); nothing of the
// module's upper layers.
package hugepage

import "unsafe"

// Size is the size of a huge page: the alignment of the advised range.
const Size = 2 << 20

// Threshold is the smallest allocation, in bytes, that is advised: below
// it the slice cannot hold a whole huge page.
const Threshold = Size

// Make returns a zeroed slice of n values of T. When it spans at least
// Threshold bytes, the whole huge pages inside it are advised as such
// before it is returned (see the package comment); the caller's first
// writes then fault them in.
func Make[T any](n int) []T {
	s := make([]T, n)
	var zero T
	if bytes := uintptr(n) * unsafe.Sizeof(zero); n > 0 && bytes >= Threshold {
		advise(unsafe.Pointer(&s[0]), bytes)
	}
	return s
}

// inner returns the whole huge pages inside the n bytes at address p: the
// offset of the first from p and their length in bytes (0 when there is
// none).
func inner(p, n uintptr) (offset, length uintptr) {
	lo := (p + Size - 1) &^ (Size - 1)
	hi := (p + n) &^ (Size - 1)
	if hi <= lo {
		return 0, 0
	}
	return lo - p, hi - lo
}
