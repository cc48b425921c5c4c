package ppo

import (
	"os"
	"context"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/checkpoints"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/world"
)

// headScale sharpens the random base's output distributions (see worldBase).
var headScale float32 = 20

// worldBase writes a small randomly initialised model with a BPE tokenizer
// trained on the default world's corpus into dir (the Alpaca boilerplate
// becomes a few tokens, so prompts are short).
func worldBase(t testing.TB, dir string) {
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
	c.TieWordEmbeddings = false
	w, err := model.NewRandom(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A random model's next-token distributions are nearly uniform (≈ ln V
	// nats), and a frozen head of std 0.02 behind the final RMSNorm keeps
	// them so whatever the adapter learns. Scaling the output head makes
	// them as peaked as a trained model's, so that the policy has
	// preferences for PPO to shift.
	for _, n := range w.Named() {
		if n.Name == "lm_head.weight" {
			for i, v := range model.F32(n.Tensor) {
				model.F32(n.Tensor)[i] = v * headScale
			}
		}
	}
	if err := checkpoints.SaveModel(dir, w, checkpoints.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
}

// worldPrompts writes n prompts of the world's split to path.
func worldPrompts(t testing.TB, path string, split world.Split, n int) {
	t.Helper()
	var rows []data.Prompt
	for _, p := range world.New(1).Prompts(split, n) {
		rows = append(rows, data.Prompt{Prompt: p.Prompt})
	}
	if err := data.WritePrompts(path, rows); err != nil {
		t.Fatal(err)
	}
}

// rlhfFixture is a base model, a reward model trained briefly on default
// world preferences, and prompt files, in one directory.
type rlhfFixture struct {
	dir, base, rm, prompts, evalPrompts string
	rmResult                            reward.Result
}

func newFixture(t testing.TB, rmSteps int) rlhfFixture {
	t.Helper()
	dir := t.TempDir()
	f := rlhfFixture{dir: dir, base: baseDir(t, dir), prompts: filepath.Join(dir, "prompts.arrow"),
		evalPrompts: filepath.Join(dir, "eval_prompts.arrow")}
	var prefs []data.Preference
	for _, p := range world.New(1).Preferences(world.Train, 1000) {
		prefs = append(prefs, data.Preference{Prompt: p.Prompt, Chosen: p.Chosen, Rejected: p.Rejected})
	}
	if err := data.WritePreferences(filepath.Join(dir, "prefs.arrow"), prefs); err != nil {
		t.Fatal(err)
	}
	worldPrompts(t, f.prompts, world.Train, 256)
	worldPrompts(t, f.evalPrompts, world.Valid, 32)
	rc := reward.DefaultConfig()
	rc.Base, rc.Data, rc.HeldOut, rc.Out = f.base, filepath.Join(dir, "prefs.arrow"), 0, filepath.Join(dir, "rm")
	rc.Train.Steps, rc.Train.LR, rc.Train.Quiet = rmSteps, 2e-3, true
	rc.Train.EvalEvery, rc.Train.CheckpointEvery = 0, 0
	res, err := reward.Run(context.Background(), rc)
	if err != nil {
		t.Fatal(err)
	}
	f.rm, f.rmResult = res.AdapterDir, res
	return f
}

// baseDir is the base model of the tests: the pretrained one when PRE is
// set, else a random one.
func baseDir(t testing.TB, dir string) string {
	if os.Getenv("PRE") != "" {
		return "../reward/testdata/worldbase"
	}
	worldBase(t, filepath.Join(dir, "base"))
	return filepath.Join(dir, "base")
}
