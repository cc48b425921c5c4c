package pipeline

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/dpo"
	"github.com/gotune/gotune/grpo"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/ppo"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/sft"
)

// TestDefaultRunConfigs pins every setting of the default run's training
// stages: each is the stage's DefaultConfig with the paths, the amounts of
// Sizes and the choices of DefaultRun, and nothing else; and each passes
// the stage's validation.
func TestDefaultRunConfigs(t *testing.T) {
	d := &Default{RunDir: "run", BaseDir: "base", Sizes: DefaultSizes(), Quiet: true}
	sftAdapter := filepath.Join("run", "sft", "adapter")
	mined := filepath.Join("run", "pairs", FileMinedPairs)

	base := pretrain.DefaultConfig()
	base.Docs = baseCorpus(world.New(1), 20000, 2000) // TestBaseCorpusInterleaves checks the mixing
	base.Preset, base.Out, base.Resume = "tiny", "base", true
	base.Train.Steps, base.Train.Quiet = 1800, true
	check(t, "base", d.baseConfig(true), base, base.Validate)

	s := sft.DefaultConfig()
	s.Base, s.Data, s.EvalData, s.Out = "base", filepath.Join("run", "data", FileSFT), filepath.Join("run", "data", FileInstructionsEval), filepath.Join("run", "sft")
	s.Train.Steps, s.Train.Quiet = 40, true
	s.Train.WarmupSteps, s.Train.LogEvery, s.Train.EvalEvery, s.Train.CheckpointEvery = 2, 1, 8, 8
	check(t, "sft", d.sftConfig(false), s, s.Validate)

	r := reward.DefaultConfig()
	r.Base, r.SFTAdapter, r.Data, r.EvalData, r.Out = "base", sftAdapter, mined, filepath.Join("run", "data", FilePreferencesEval), filepath.Join("run", "reward")
	r.Train.Steps, r.Train.Quiet = 450, true
	r.Train.WarmupSteps, r.Train.LogEvery, r.Train.EvalEvery, r.Train.CheckpointEvery = 22, 9, 90, 90
	check(t, "reward", d.rewardConfig(false), r, r.Validate)

	p := dpo.DefaultConfig()
	p.Base, p.SFTAdapter, p.Data, p.EvalData, p.Out = "base", sftAdapter, mined, filepath.Join("run", "data", FilePreferencesEval), filepath.Join("run", "dpo")
	p.Train.Steps, p.Train.Quiet = 120, true
	p.Train.WarmupSteps, p.Train.LogEvery, p.Train.EvalEvery, p.Train.CheckpointEvery = 6, 2, 24, 24
	p.Train.LR, p.Loss.Beta, p.Loss.SFTWeight, p.LoRA.Targets = 1e-3, 0.3, 1, []string{"all-linear"}
	check(t, "dpo", d.dpoConfig(false), p, p.Validate)

	o := ppo.DefaultConfig()
	o.Base, o.SFTAdapter, o.RewardAdapter, o.Out = "base", sftAdapter, filepath.Join("run", "reward", "adapter"), filepath.Join("run", "ppo")
	o.Prompts, o.EvalPrompts = filepath.Join("run", "data", FilePrompts), filepath.Join("run", "data", FilePromptsEval)
	o.Iterations, o.RolloutBatch, o.Train.Quiet, o.Train.LR = 24, 64, true, 5e-4
	check(t, "ppo", d.ppoConfig(false), o, o.Validate)

	g := grpo.DefaultConfig()
	g.Base, g.SFTAdapter, g.Out = "base", sftAdapter, filepath.Join("run", "grpo")
	g.Rows, g.EvalRows = worldRows(world.New(1).Prompts(world.Train, 400)), worldRows(world.New(1).Prompts(world.Valid, 32))
	g.RewardFuncs, g.Iterations, g.Train.Quiet = []string{grpo.RewardWorld}, 200, true
	check(t, "grpo", d.grpoConfig(false), g, g.Validate)
	if len(g.Rows) != 400 || g.Rows[0].Output == "" || g.Rows[0].Instruction == "" {
		t.Errorf("grpo rows: %d, the first %+v", len(g.Rows), g.Rows[0])
	}
}

// worldRows are prompts' tasks as instruction rows with their answers.
func worldRows(ps world.Prompts) []data.Instruction {
	out := make([]data.Instruction, len(ps))
	for i, p := range ps {
		out[i] = data.Instruction{Instruction: p.Task.Instruction, Input: p.Task.Input, Output: p.Task.Answer}
	}
	return out
}

func check(t *testing.T, stage string, got, want any, validate func() error) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: the default run's configuration\n%+v\nwant\n%+v", stage, got, want)
	}
	if err := validate(); err != nil {
		t.Errorf("%s: %v", stage, err)
	}
}

// With a linear-time attention the base stage pretrains that model and its
// key changes (a softmax base is not reused); under gau every adapter
// targets all linear modules (GAU has no q/k/v), under linear the defaults
// stay. Softmax keeps the key of earlier runs.
func TestDefaultRunAttention(t *testing.T) {
	key := func(d *Default) any { return d.Stages()[0].Config }
	soft := &Default{RunDir: "run", BaseDir: "base", Sizes: DefaultSizes()}
	for _, att := range []string{model.AttentionLinear, model.AttentionGAU} {
		d := &Default{RunDir: "run", BaseDir: "base", Sizes: DefaultSizes(), Attention: att}
		if got := d.baseConfig(false).Attention; got != att {
			t.Errorf("%s: base attention %q", att, got)
		}
		if reflect.DeepEqual(key(d), key(soft)) {
			t.Errorf("%s: the base stage's key is the softmax base's", att)
		}
		for name, c := range map[string][2][]string{
			"sft":    {d.sftConfig(false).LoRA.Targets, sft.DefaultConfig().LoRA.Targets},
			"reward": {d.rewardConfig(false).LoRA.Targets, reward.DefaultConfig().LoRA.Targets},
			"ppo":    {d.ppoConfig(false).LoRA.Targets, ppo.DefaultConfig().LoRA.Targets},
			"grpo":   {d.grpoConfig(false).LoRA.Targets, grpo.DefaultConfig().LoRA.Targets},
		} {
			got, want := c[0], c[1]
			if att == model.AttentionGAU {
				want = []string{lora.AllLinear}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: %s targets %v, want %v", att, name, got, want)
			}
		}
		if got := d.dpoConfig(false).LoRA.Targets; !reflect.DeepEqual(got, []string{lora.AllLinear}) {
			t.Errorf("%s: dpo targets %v", att, got)
		}
	}
	if soft.baseConfig(false).Attention != "" {
		t.Error("softmax: the base config names an attention")
	}
	raw, err := json.Marshal(key(soft))
	if err != nil || strings.Contains(string(raw), "Attention") {
		t.Errorf("softmax base key %s (%v): it must stay that of earlier runs", raw, err)
	}
}
