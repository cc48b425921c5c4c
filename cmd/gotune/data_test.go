package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/spf13/pflag"
)

func runGotune(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetArgs(args)
	err := rootCmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestDataCommands(t *testing.T) {
	t.Cleanup(func() {
		// Flags keep their values between runs in one process; leave no
		// --config behind for the other commands' tests.
		fl := rootCmd.PersistentFlags().Lookup("config")
		fl.Value.Set("")
		fl.Changed = false
		cfg.MergeConfigMap(map[string]any{"data": map[string]any{"import": map[string]any{
			"skip_invalid": false, "column_map": []string{}}}})
		for _, name := range []string{"out", "column-map"} {
			f := dataImportCmd.Flags().Lookup(name)
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				sv.Replace(nil)
			} else {
				f.Value.Set("")
			}
			f.Changed = false
		}
	})
	dir := t.TempDir()
	in := filepath.Join(dir, "se.jsonl")
	lines := `{"question": "How do I exit vim?", "good": "Type :q", "bad": "Reboot."}
{"question": "Same?", "good": "x", "bad": "x"}
{"question": "Undo?", "good": "Press u", "bad": "Cry."}
`
	if err := os.WriteFile(in, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prefs.arrow")

	// Without --skip-invalid the identical pair stops the import.
	_, err := runGotune(t, "data", "import", in, "--out", out,
		"--column-map", "prompt=question", "--column-map", "chosen=good,rejected=bad")
	if err == nil || err.Error() != in+`: row 2, column "bad": identical to chosen` {
		t.Fatalf("want the row error, got %v", err)
	}

	// The column map and skip-invalid may come from the config file.
	fl := dataImportCmd.Flags().Lookup("column-map") // flags keep their values between runs in one process
	fl.Value.(pflag.SliceValue).Replace(nil)
	fl.Changed = false
	cfgPath := filepath.Join(dir, "gotune.yaml")
	cfgText := "data:\n  import:\n    skip_invalid: true\n    column_map: [prompt=question, chosen=good, rejected=bad]\n"
	os.WriteFile(cfgPath, []byte(cfgText), 0o644)
	text, err := runGotune(t, "--config", cfgPath, "data", "import", in, "--out", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2 rows of preferences (trl-standard, jsonl)", "1 of 3 rows rejected (identical to chosen: 1), written to " + out + ".rejects.jsonl"} {
		if !strings.Contains(text, want) {
			t.Fatalf("import output lacks %q:\n%s", want, text)
		}
	}
	rows, err := data.ReadPreferences(out)
	if err != nil || len(rows) != 2 || rows[1].Chosen != "Press u" {
		t.Fatalf("rows %+v, %v", rows, err)
	}

	text, err = runGotune(t, "data", "head", out, "-n", "1")
	if err != nil {
		t.Fatal(err)
	}
	if text != `{"prompt":"How do I exit vim?","chosen":"Type :q","rejected":"Reboot."}`+"\n" {
		t.Fatalf("head: %q", text)
	}

	text, err = runGotune(t, "data", "stats", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "preferences, 2 rows") || !strings.Contains(text, "prompt length (bytes): min 5") {
		t.Fatalf("stats:\n%s", text)
	}

	dataImportCmd.Flags().Set("out", "") // flags keep their values between runs in one process
	if _, err := runGotune(t, "data", "import", in); err == nil || !strings.Contains(err.Error(), "needs --out") {
		t.Fatalf("missing --out: %v", err)
	}
}
