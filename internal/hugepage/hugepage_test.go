package hugepage

import "testing"

func TestInner(t *testing.T) {
	for _, c := range []struct{ p, n, offset, length uintptr }{
		{0, 3 * Size, 0, 3 * Size},
		{1, 3 * Size, Size - 1, 2 * Size},
		{Size - 4, Size + 8, 4, Size},
		{Size - 4, Size + 3, 0, 0},
		{5 * Size, Size - 1, 0, 0},
		{100, 0, 0, 0},
	} {
		offset, length := inner(c.p, c.n)
		if offset != c.offset || length != c.length {
			t.Errorf("inner(%#x, %#x) = %#x, %#x; want %#x, %#x", c.p, c.n, offset, length, c.offset, c.length)
		}
	}
}

func TestMakeIsZeroed(t *testing.T) {
	for _, n := range []int{0, 1, Threshold/4 - 1, Threshold/4 + 12345} {
		s := Make[float32](n)
		if len(s) != n {
			t.Fatalf("Make(%d) has %d values", n, len(s))
		}
		for i, v := range s {
			if v != 0 {
				t.Fatalf("Make(%d)[%d] = %v", n, i, v)
			}
		}
	}
}
