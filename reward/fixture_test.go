package reward

import (
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/internal/tinymodel"
)

// worldBaseDir is the small base model pretrained on the default world
// that the RLHF stages' tests start from.
var worldBaseDir = tinymodel.WorldBase()

// worldPreferences writes n preference pairs of the world's split to path.
func worldPreferences(t testing.TB, path string, split world.Split, n int) {
	t.Helper()
	if err := data.WritePreferences(path, world.New(1).Preferences(split, n).Rows()); err != nil {
		t.Fatal(err)
	}
}
