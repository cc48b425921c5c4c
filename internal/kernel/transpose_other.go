//go:build !amd64 || purego

package kernel

// haveTranspose8 is false: there is no vector transpose here.
const haveTranspose8 = false

// transpose8Rows is never called where haveTranspose8 is false.
func transpose8Rows(dst *float32, ldd int, src *float32, lds int, blocks int) {
	panic("kernel: transpose8Rows without a vector transpose")
}
