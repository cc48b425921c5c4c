package main

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/dpo"
	"github.com/gotune/gotune/grpo"
	"github.com/gotune/gotune/internal/configtest"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/ppo"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/sft"
	"github.com/gotune/gotune/train"
)

// TestFineTuneFlagDefaults reads each training command's adapter and loop
// flags as they are declared (once, in trainflags.go) and finds its
// stage's defaults: every command has every flag, lora-init included, and
// ppo has no --steps (its updates follow from its iterations).
func TestFineTuneFlagDefaults(t *testing.T) {
	// Every flag-backed field starts off its default, so that a flag that
	// is not read shows.
	scramble := func(l *lora.Config, tc *train.Config) {
		*l = lora.Config{R: -7, Alpha: -7, Dropout: -7, Targets: []string{"x"}, RSLoRA: true, Init: "x", Seed: 77}
		tc.Steps, tc.GradAccum, tc.LR, tc.WarmupSteps, tc.Schedule = -7, -7, -7, -7, "x"
		tc.MinLRRatio, tc.WeightDecay, tc.MaxGradNorm, tc.Seed = -7, -7, -7, 77
		tc.LogEvery, tc.EvalEvery, tc.CheckpointEvery, tc.Quiet = -7, -7, -7, true
		tc.MoEAuxLossAlpha = -7
	}
	for _, c := range []struct {
		section string
		cmd     *cobra.Command
		lora    lora.Config
		train   train.Config
		noSteps bool
	}{
		{"sft", sftCmd, sft.DefaultConfig().LoRA, sft.DefaultConfig().Train, false},
		{"dpo", dpoCmd, dpo.DefaultConfig().LoRA, dpo.DefaultConfig().Train, false},
		{"reward", rewardCmd, reward.DefaultConfig().LoRA, reward.DefaultConfig().Train, false},
		{"ppo", ppoCmd, ppo.DefaultConfig().LoRA, ppo.DefaultConfig().Train, true},
		{"grpo", grpoCmd, grpo.DefaultConfig().LoRA, grpo.DefaultConfig().Train, true},
	} {
		var l lora.Config
		tc := c.train
		scramble(&l, &tc)
		readFineTuneFlags(c.section, &l, &tc)
		want := c.train
		if c.noSteps {
			want.Steps = -7
			if c.cmd.Flags().Lookup(train.KeySteps) != nil {
				t.Errorf("%s has --%s", c.section, train.KeySteps)
			}
		}
		if !reflect.DeepEqual(l, c.lora) {
			t.Errorf("%s: adapter flags read %+v, want the stage's %+v", c.section, l, c.lora)
		}
		if !reflect.DeepEqual(tc, want) {
			t.Errorf("%s: loop flags read %+v, want the stage's %+v", c.section, tc, want)
		}
	}
	d := pretrain.DefaultConfig().Train
	tc := d
	var l lora.Config
	scramble(&l, &tc)
	readTrainFlags("pretrain", &tc)
	if !reflect.DeepEqual(tc, d) {
		t.Errorf("pretrain: loop flags read %+v, want the stage's %+v", tc, d)
	}
	if pretrainCmd.Flags().Lookup(lora.KeyR) != nil {
		t.Errorf("pretrain has --%s", lora.KeyR)
	}
}

// TestWorldDefault: without a dataset a command draws rows of the built-in
// world, and needs a positive number of them.
func TestWorldDefault(t *testing.T) {
	for _, c := range []struct {
		cmd  *cobra.Command
		args []string
		key  string
	}{
		{sftCmd, []string{"sft", "--" + keyWorldRows, "0"}, keyWorldRows},
		{dpoCmd, []string{"dpo", "--" + keyWorldPairs, "-1"}, keyWorldPairs},
		{dpoCmd, []string{"dpo", "--" + keyWorldEvalPairs, "-1"}, keyWorldEvalPairs},
		{rewardCmd, []string{"reward", "--" + keyWorldPairs, "0"}, keyWorldPairs},
		{ppoCmd, []string{"ppo", "--" + keyWorldPrompts, "0"}, keyWorldPrompts},
		{grpoCmd, []string{"grpo", "--" + keyWorldPrompts, "0"}, keyWorldPrompts},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			resetFlags(t, c.cmd)
			_, err := runGotune(t, c.args...)
			if err == nil || !configtest.NamesKey(err, c.key) {
				t.Errorf("%v: %v, want an error naming %s", c.args, err, c.key)
			}
		})
	}

	// The rows reach the stage: --world-rows training rows, --eval-rows
	// held-out rows of the valid split.
	dir, _ := tinyModelDir(t)
	resetFlags(t, sftCmd)
	got, err := runGotune(t, "sft", "--base", dir, "--out", filepath.Join(t.TempDir(), "sft"), "--world-rows", "12",
		"--eval-rows", "5", "--batch-size", "4", "--max-len", "320", "--buckets", "320", "--steps", "1", "--quiet")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got, "on 12 rows;") || !strings.Contains(got, "on 5 rows;") {
		t.Errorf("summary %q: want 12 training and 5 held-out rows", got)
	}
}

// TestLoRAInitFlag: reward and ppo read --lora-init like sft and dpo (the
// stage refuses an unknown init before it opens any model).
func TestLoRAInitFlag(t *testing.T) {
	for _, c := range []struct {
		cmd  *cobra.Command
		name string
	}{{sftCmd, "sft"}, {dpoCmd, "dpo"}, {rewardCmd, "reward"}, {ppoCmd, "ppo"}, {grpoCmd, "grpo"}} {
		resetFlags(t, c.cmd)
		args := []string{c.name, "--" + lora.KeyInit, "xavier", "--out", filepath.Join(t.TempDir(), "out")}
		if c.name == "dpo" {
			args = append(args, "--"+dpo.KeyBase, "base", "--"+keyWorldPairs, "4", "--"+keyWorldEvalPairs, "2")
		} else {
			args = append(args, "--"+keyWorldSeed, "2")
		}
		_, err := runGotune(t, args...)
		if err == nil || !strings.Contains(err.Error(), lora.KeyInit+` "xavier"`) {
			t.Errorf("%s --lora-init xavier: %v", c.name, err)
		}
	}
}
