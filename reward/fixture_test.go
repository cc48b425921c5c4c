package reward

import (
	"testing"

	"github.com/gotune/gotune/checkpoints"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/world"
)

// worldBase writes a small randomly initialised model with a BPE tokenizer
// trained on the default world's corpus into dir: the Alpaca boilerplate
// becomes a few tokens, so prompts are short.
func worldBase(t testing.TB, dir string, seed uint64) {
	t.Helper()
	tok, err := tokenizer.Train(world.New(7).Corpus(600), 512, []string{"<|bos|>", "<|eos|>", "<|pad|>"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := model.Preset("tiny", tok.VocabSize())
	if err != nil {
		t.Fatal(err)
	}
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 64, 160, 2
	c.NumAttentionHeads, c.NumKeyValueHeads, c.MaxPositionEmbeddings = 4, 2, 128
	c.BOSTokenID, c.EOSTokenID = tok.BOS(), tok.EOS()
	w, err := model.NewRandom(c, seed)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkpoints.SaveModel(dir, w, checkpoints.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
}

// worldPreferences writes n preference pairs of the world's split to path.
func worldPreferences(t testing.TB, path string, split world.Split, n int) {
	t.Helper()
	var rows []data.Preference
	for _, p := range world.New(1).Preferences(split, n) {
		rows = append(rows, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected})
	}
	if err := data.WritePreferences(path, rows); err != nil {
		t.Fatal(err)
	}
}
