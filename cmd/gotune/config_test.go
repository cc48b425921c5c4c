package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/pipeline"
)

func newTestCommand(t *testing.T) *cobra.Command {
	t.Helper()
	cmd := &cobra.Command{Use: "probe", RunE: func(*cobra.Command, []string) error { return nil }}
	cmd.Flags().Int("lora-r", 8, "rank")
	cmd.Flags().String("out", "a", "out")
	cmd.PersistentFlags().String("config", "", "")
	bindFlags(cmd, "probe")
	return cmd
}

func TestConfigPrecedence(t *testing.T) {
	cmd := newTestCommand(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("probe:\n  lora_r: 16\n  out: fromfile\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GOTUNE_PROBE_OUT", "fromenv")
	if err := cmd.ParseFlags([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	if err := loadConfig(cmd); err != nil {
		t.Fatal(err)
	}
	if got := cfgInt("probe", "lora-r"); got != 16 {
		t.Errorf("lora-r from file = %d, want 16", got)
	}
	if got := cfgString("probe", "out"); got != "fromenv" {
		t.Errorf("out = %q, want env value", got)
	}
	if err := cmd.ParseFlags([]string{"--out", "fromflag"}); err != nil {
		t.Fatal(err)
	}
	if got := cfgString("probe", "out"); got != "fromflag" {
		t.Errorf("out = %q, want flag value", got)
	}
}

func TestConfigUnknownKey(t *testing.T) {
	cmd := newTestCommand(t)
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("probe:\n  lora_rank: 16\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.ParseFlags([]string{"--config", path}); err != nil {
		t.Fatal(err)
	}
	err := loadConfig(cmd)
	if err == nil || !strings.Contains(err.Error(), "probe.lora_rank") {
		t.Fatalf("want error naming probe.lora_rank, got %v", err)
	}
}

func TestPipelineSizeFlags(t *testing.T) {
	// Set the flag as a command line would (the override layer of cfg.Set
	// would outlive the test and hide later tests' flags).
	resetFlags(t, pipelineCmd)
	if err := pipelineCmd.Flags().Set("base-steps", "1234"); err != nil {
		t.Fatal(err)
	}

	z := pipeline.QuickSizes()
	overrideSizes(&z, "pipeline")
	want := pipeline.QuickSizes()
	want.BaseSteps = 1234 // set: overrides
	if z != want {
		t.Errorf("quick sizes with --base-steps 1234 = %+v, want %+v", z, want)
	}
	for _, name := range []string{"base-steps", "ppo-iterations", "world-seed", "eval-tasks"} {
		if pipelineCmd.Flags().Lookup(name) == nil {
			t.Errorf("gotune pipeline has no --%s flag", name)
		}
	}
}

func TestSpeedNote(t *testing.T) {
	if note := speedNote("purego", "pure Go"); !strings.Contains(note, "libopenblas-dev") {
		t.Errorf("pure-Go build without assembly kernels: note %q does not say how to get OpenBLAS", note)
	}
	if note := speedNote("purego", "pure Go + AVX-512 assembly"); note != "" {
		t.Errorf("pure-Go build on AVX-512: note %q, want none", note)
	}
	if note := speedNote("openblas", "Haswell"); note != "" {
		t.Errorf("OpenBLAS build: note %q, want none", note)
	}
}
