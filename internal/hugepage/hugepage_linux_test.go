//go:build linux

package hugepage

import (
	"bufio"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// thpMode is the bracketed word of the system's transparent huge page
// setting ("always", "madvise" or "never"); "" when there is none.
func thpMode() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil {
		return ""
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	return s[i+1 : j]
}

// hugeBytes is the AnonHugePages of the mapping of this process holding
// address p, in bytes, from /proc/self/smaps.
func hugeBytes(t *testing.T, p uintptr) int {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	defer f.Close()
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			lo, hi, _ := strings.Cut(fields[0], "-")
			a, err1 := strconv.ParseUint(lo, 16, 64)
			b, err2 := strconv.ParseUint(hi, 16, 64)
			in = err1 == nil && err2 == nil && uint64(p) >= a && uint64(p) < b
			continue
		}
		if in && len(fields) == 3 && fields[0] == "AnonHugePages:" {
			kb, err := strconv.Atoi(fields[1])
			if err != nil {
				t.Fatalf("smaps line %q: %v", line, err)
			}
			return kb << 10
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	panic(fmt.Sprintf("no mapping holds %#x", p))
}

// TestMakeGetsHugePages checks that a large slice's whole huge pages are
// faulted in as huge pages once written, and — where the system gives
// them only to advised memory — that fresh memory never advised is not.
func TestMakeGetsHugePages(t *testing.T) {
	mode := thpMode()
	if mode != "madvise" && mode != "always" {
		t.Skipf("transparent huge pages are %q here", mode)
	}
	// Memory the heap freed and kept (an earlier run of this test) is
	// resident on small pages; returned to the system it faults anew.
	debug.FreeOSMemory()
	const n = 8 * Size / 4 // 16 MiB of float32
	touch := func(s []float32) uintptr {
		for i := range s {
			s[i] = 1
		}
		p := uintptr(unsafe.Pointer(&s[0]))
		offset, _ := inner(p, uintptr(len(s))*4)
		return p + offset
	}
	advised := Make[float32](n)
	got := hugeBytes(t, touch(advised))
	if got < Size {
		t.Errorf("a written %d MiB slice from Make holds %d bytes of huge pages; want at least one page (%d)", n*4>>20, got, Size)
	}
	if mode == "madvise" {
		// The control: fresh memory of the same size, never advised (a Go
		// slice might reuse memory advised earlier in the process).
		b, err := syscall.Mmap(-1, 0, 4*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
		if err != nil {
			t.Fatal(err)
		}
		defer syscall.Munmap(b)
		plain := unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
		if got := hugeBytes(t, touch(plain)); got != 0 {
			t.Errorf("memory never advised holds %d bytes of huge pages under THP %q: the check cannot tell advice from none", got, mode)
		}
	}
}
