package data_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gotune/gotune/data"
)

// Import a TRL preference pair with an implicit prompt, read it back, and
// batch a tokenized row.
func Example() {
	dir, _ := os.MkdirTemp("", "gotune-data")
	defer os.RemoveAll(dir)
	in, out := filepath.Join(dir, "prefs.jsonl"), filepath.Join(dir, "prefs.arrow")
	os.WriteFile(in, []byte(`{"chosen": "The sky is blue.", "rejected": "The sky is green."}`+"\n"), 0o644)

	rep, err := data.Import(in, out, data.DefaultImportOptions())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(rep.Kind, rep.Shape, rep.RowsWritten)
	rows, _ := data.ReadPreferences(out)
	fmt.Printf("%q %q %q\n", rows[0].Prompt, rows[0].Chosen, rows[0].Rejected)

	// Token ids 5 6 are the prompt, 7 8 the completion.
	b := data.Collate([]data.Example{{IDs: []int{5, 6, 7, 8}, Mask: []bool{false, false, true, true}}}, 6, 0)
	fmt.Println(b.Inputs, b.Targets, b.Weights)
	// Output:
	// preferences trl-standard-implicit-prompt 1
	// "The sky is" " blue." " green."
	// [5 6 7 8 0 0] [6 7 8 0 0 0] [0 1 1 0 0 0]
}
