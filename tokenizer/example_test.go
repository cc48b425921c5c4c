package tokenizer_test

import (
	"fmt"

	"github.com/gotune/gotune/tokenizer"
)

func Example() {
	corpus := []string{"low lower lowest", "new newer newest", "low new lower newer"}
	tok, err := tokenizer.Train(corpus, 280, []string{"<|bos|>", "<|eos|>", "<|pad|>"})
	if err != nil {
		panic(err)
	}
	ids := tok.Encode("lowest newer<|eos|>", true)
	fmt.Println(len(ids), ids[0] == tok.BOS(), ids[len(ids)-1] == tok.EOS())
	fmt.Printf("%q\n", tok.Decode(ids, true))
	// Output:
	// 5 true true
	// "lowest newer"
}

func ExampleTokenizer_EncodePromptCompletion() {
	tok := tokenizer.NewByteLevel([]string{"<s>", "</s>"})
	prompt := tokenizer.FormatAlpaca("Say hi.", "")
	e := tok.EncodePromptCompletion(prompt, "Hi", true, true)
	n := 0
	for _, m := range e.Mask {
		if m {
			n++
		}
	}
	fmt.Println(len(e.IDs), n, tok.Turns(e))
	// Output: 150 3 [Hi</s>]
}
