package tokenizer

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// benchLines is about 4 MB of mixed text in lines of up to a few hundred
// bytes: English-like prose over a Zipf-distributed lexicon of 50,000
// made-up words (so the word cache sees new words throughout), numbers,
// punctuation, code, Chinese, Japanese, accented Latin and emoji.
var benchLines = sync.OnceValue(func() []string {
	r := rand.New(rand.NewPCG(42, 42))
	syll := []string{"ka", "to", "ri", "en", "th", "an", "re", "qu", "ex", "sion", "ing", "al", "ou", "str", "pl", "ly", "ed", "er", "mo", "de"}
	lexicon := make([]string, 50000)
	for i := range lexicon {
		var b strings.Builder
		for n := 1 + r.IntN(4); n > 0; n-- {
			b.WriteString(syll[r.IntN(len(syll))])
		}
		lexicon[i] = b.String()
	}
	copy(lexicon, strings.Fields("the of and to a in is it you that he was for on are with as I his they be at one have this from"))
	zipf := rand.NewZipf(r, 1.1, 1, uint64(len(lexicon)-1))
	code := []string{"func (t *T) Run(ctx context.Context) error {", "\treturn fmt.Errorf(\"x: %w\", err)", "for i := 0; i < n; i++ {", "    x = np.dot(w, x) + b  # (B, T, C)", "}"}
	cjk := []string{"蒙特卡洛方法是强化学习中的重要算法。", "直接偏好优化将学习判断好坏合二为一。", "こんにちは、世界。カタカナとひらがな。"}
	other := []string{"café", "naïve", "Straße", "Ærø", "🤖", "👍🏽", "—", "“quoted”", "…"}
	var lines []string
	total := 0
	for total < 4<<20 {
		var b strings.Builder
		switch k := r.IntN(20); {
		case k < 2:
			b.WriteString(code[r.IntN(len(code))])
		case k < 3:
			b.WriteString(cjk[r.IntN(len(cjk))])
		default:
			for w := 5 + r.IntN(40); w > 0; w-- {
				word := lexicon[zipf.Uint64()]
				if r.IntN(15) == 0 {
					word = strings.ToUpper(word[:1]) + word[1:]
				}
				b.WriteString(word)
				switch p := r.IntN(30); {
				case p == 0:
					b.WriteString(", ")
				case p == 1:
					fmt.Fprintf(&b, " %d ", r.IntN(100000))
				case p == 2:
					b.WriteString(". ")
				case p == 3:
					b.WriteString(" " + other[r.IntN(len(other))] + " ")
				default:
					b.WriteString(" ")
				}
			}
			b.WriteString(".")
		}
		b.WriteString("\n")
		lines = append(lines, b.String())
		total += b.Len()
	}
	return lines
})

func benchSize(lines []string) int64 {
	var n int64
	for _, l := range lines {
		n += int64(len(l))
	}
	return n
}

// BenchmarkEncode reports encoding speed (MB/s) of each fixture tokenizer
// and of a trained one on the mixed text, line by line, with a warm word
// cache (steady state) and with the cache emptied before each pass.
func BenchmarkEncode(b *testing.B) {
	lines := benchLines()
	toks := map[string]*Tokenizer{}
	names := append(append([]string{}, fixtures...), "trained")
	for _, name := range names {
		toks[name] = loadFixture(b, name)
	}
	for _, name := range names {
		tok := toks[name]
		for _, cold := range []bool{false, true} {
			label := name + "/warm"
			if cold {
				label = name + "/cold"
			}
			b.Run(label, func(b *testing.B) {
				b.SetBytes(benchSize(lines))
				var nTok int
				cpu0 := cpuTime()
				for i := 0; i < b.N; i++ {
					if cold {
						tok.model.cache.reset()
					}
					nTok = 0
					for _, l := range lines {
						nTok += len(tok.Encode(l, false))
					}
				}
				if cpu := cpuTime() - cpu0; cpu > 0 {
					// MB per CPU-second: the speed of one core whatever else
					// the machine is running.
					b.ReportMetric(float64(benchSize(lines))*float64(b.N)/1e6/cpu.Seconds(), "MB/cpu-s")
				}
				b.ReportMetric(float64(benchSize(lines))/float64(nTok), "bytes/token")
			})
		}
	}
}

// BenchmarkDecode reports decoding speed (MB of text per second).
func BenchmarkDecode(b *testing.B) {
	lines := benchLines()[:2000]
	for _, name := range fixtures {
		tok := loadFixture(b, name)
		var ids [][]int
		for _, l := range lines {
			ids = append(ids, tok.Encode(l, false))
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(benchSize(lines))
			for i := 0; i < b.N; i++ {
				for _, x := range ids {
					tok.Decode(x, false)
				}
			}
		})
	}
}

// BenchmarkTrain reports training time on a 2,000-line corpus.
func BenchmarkTrain(b *testing.B) {
	corpus := syntheticCorpus(2000, 1)
	for i := 0; i < b.N; i++ {
		if _, err := Train(corpus, 400, trainSpecials); err != nil {
			b.Fatal(err)
		}
	}
}
