package reward

import (
	"fmt"
	"testing"
	"time"

	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/world"
)

func TestTokLen(t *testing.T) {
	for _, v := range []int{384, 512, 768} {
		for _, n := range []int{600, 2000} {
			t0 := time.Now()
			tok, _ := tokenizer.Train(world.New(7).Corpus(n), v, []string{"<|bos|>", "<|eos|>", "<|pad|>"})
			mx, sum := 0, 0
			ps := world.New(1).Preferences(world.Train, 500)
			for _, p := range ps {
				l := len(tok.Encode(p.Prompt, true)) + len(tok.Encode(p.Chosen, false)) + 1
				mx = max(mx, l)
				sum += l
			}
			fmt.Println(v, n, time.Since(t0), mx, float64(sum)/500)
		}
	}
}
