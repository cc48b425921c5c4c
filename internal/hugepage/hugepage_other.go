//go:build !linux

package hugepage

import "unsafe"

// advise does nothing where the system offers no transparent huge pages.
func advise(p unsafe.Pointer, n uintptr) {}
