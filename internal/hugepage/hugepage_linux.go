//go:build linux

package hugepage

import (
	"errors"
	"syscall"
	"unsafe"
)

// madvHugepage is MADV_HUGEPAGE of <linux/mman.h>.
const madvHugepage = 14

// advise marks the whole huge pages of [p, p+n) MADV_HUGEPAGE. A kernel
// built without transparent huge pages answers EINVAL: the slice then
// stays on small pages, which changes nothing but speed. Any other error
// means the range is not this process's memory: a programmer error.
func advise(p unsafe.Pointer, n uintptr) {
	offset, length := inner(uintptr(p), n)
	if length == 0 {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(p, offset)), length)
	if err := syscall.Madvise(b, madvHugepage); err != nil && !errors.Is(err, syscall.EINVAL) {
		panic("hugepage: madvise: " + err.Error())
	}
}
