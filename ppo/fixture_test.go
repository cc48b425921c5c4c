package ppo

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/tinymodel"
	"github.com/gotune/gotune/reward"
)

// worldBaseDir is the small base model pretrained on the default world
// that the RLHF stages' tests start from.
var worldBaseDir = tinymodel.WorldBase()

// writeWorldPrompts writes n prompts of the world's split to path.
func writeWorldPrompts(t testing.TB, path string, split world.Split, n int) {
	t.Helper()
	if err := data.WritePrompts(path, world.New(1).Prompts(split, n).Rows()); err != nil {
		t.Fatal(err)
	}
}

// fixture is a reward model trained briefly on default-world preferences
// (40 updates of 8 pairs on the committed base) and prompt files, made once
// for the package's tests.
var fixture struct {
	dir                 tinymodel.SharedDir
	rm, prompts, evalPs string
}

func TestMain(m *testing.M) {
	code := m.Run()
	fixture.dir.Remove()
	os.Exit(code)
}

func rlhfFixture(t *testing.T) {
	t.Helper()
	fixture.dir.Make(t, "ppo-test", func(d string) error {
		fixture.prompts, fixture.evalPs = filepath.Join(d, "prompts.arrow"), filepath.Join(d, "eval_prompts.arrow")
		prefs := world.New(1).Preferences(world.Train, 1000).Rows()
		if err := data.WritePreferences(filepath.Join(d, "prefs.arrow"), prefs); err != nil {
			return err
		}
		writeWorldPrompts(t, fixture.prompts, world.Train, 256)
		writeWorldPrompts(t, fixture.evalPs, world.Valid, 32)
		rc := reward.DefaultConfig()
		rc.Base, rc.Data, rc.HeldOut, rc.Out = worldBaseDir, filepath.Join(d, "prefs.arrow"), 0, filepath.Join(d, "rm")
		rc.Train.Steps, rc.Train.LR, rc.Train.Quiet = 40, 2e-3, true
		rc.Train.EvalEvery, rc.Train.CheckpointEvery, rc.Train.LogEvery = 0, 0, 10
		res, err := reward.Run(context.Background(), rc)
		fixture.rm = res.AdapterDir
		return err
	})
}
