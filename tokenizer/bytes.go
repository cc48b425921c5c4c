package tokenizer

import "unicode/utf8"

// GPT-2's reversible byte ↔ character table (Radford et al. 2019, the
// bytes_to_unicode function of the released encoder.py): printable Latin-1
// bytes stand for themselves and the other 68 bytes are shifted to
// U+0100..U+0143, so that every byte string is a string of visible
// characters and BPE never sees whitespace or control bytes.
var (
	byteToRune [256]rune
	runeToByte [324]int16 // -1 where a rune stands for no byte
)

func init() {
	for i := range runeToByte {
		runeToByte[i] = -1
	}
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = int16(b)
	}
}

// byteOfRune returns the byte a byte-level character stands for.
func byteOfRune(r rune) (byte, bool) {
	if r < 0 || int(r) >= len(runeToByte) || runeToByte[r] < 0 {
		return 0, false
	}
	return byte(runeToByte[r]), true
}

// byteLevelString maps raw bytes to their byte-level characters.
func byteLevelString(s string) string {
	buf := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToRune[s[i]])
	}
	return string(buf)
}

// unByteLevel maps a byte-level token back to its bytes; ok is false when a
// character of tok stands for no byte (as in an added token such as "<|x|>"
// written with characters outside the table).
func unByteLevel(dst []byte, tok string) ([]byte, bool) {
	n := len(dst)
	for _, r := range tok {
		b, ok := byteOfRune(r)
		if !ok {
			return dst[:n], false
		}
		dst = append(dst, b)
	}
	return dst, true
}

// appendLossy appends src to dst as valid UTF-8, replacing every maximal
// ill-formed subsequence by one U+FFFD, as the Unicode Standard recommends
// (§3.9, "U+FFFD Substitution of Maximal Subparts") and as Rust's
// String::from_utf8_lossy and the WHATWG decoder do.
func appendLossy(dst, src []byte) []byte {
	const repl = "\uFFFD"
	for i := 0; i < len(src); {
		c := src[i]
		if c < 0x80 {
			dst = append(dst, c)
			i++
			continue
		}
		need, lo, hi := 0, byte(0x80), byte(0xBF)
		switch {
		case c >= 0xC2 && c <= 0xDF:
			need = 1
		case c == 0xE0:
			need, lo = 2, 0xA0
		case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
			need = 2
		case c == 0xED:
			need, hi = 2, 0x9F
		case c == 0xF0:
			need, lo = 3, 0x90
		case c >= 0xF1 && c <= 0xF3:
			need = 3
		case c == 0xF4:
			need, hi = 3, 0x8F
		default:
			dst = append(dst, repl...)
			i++
			continue
		}
		j := i + 1
		ok := true
		for k := 0; k < need; k++ {
			if j >= len(src) || src[j] < lo || src[j] > hi {
				ok = false
				break
			}
			lo, hi = 0x80, 0xBF
			j++
		}
		if ok {
			dst = append(dst, src[i:j]...)
		} else {
			dst = append(dst, repl...)
		}
		i = j
	}
	return dst
}
