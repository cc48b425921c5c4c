package pipeline

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/gotune/gotune/checkpoints/atomicfile"
	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/dpo"
	"github.com/gotune/gotune/export"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/grpo"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/model"
	"github.com/gotune/gotune/ppo"
	"github.com/gotune/gotune/pretrain"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/sft"
	"github.com/gotune/gotune/train"
)

// Dataset files the data stage writes under <run>/data.
const (
	FileInstructions      = "instructions.arrow"
	FileInstructionsEval  = "instructions_eval.arrow"
	FilePreferences       = "preferences.arrow"
	FilePreferencesEval   = "preferences_eval.arrow"
	FilePrompts           = "prompts.arrow"
	FilePromptsEval       = "prompts_eval.arrow"
	FileSeedTasks         = "seed_tasks.jsonl"
	FileGenerated         = "generated.arrow"
	FileGeneratedNoRougeL = "generated_no_rouge.arrow"
	FileSFT               = "sft.arrow"
	FileSFTChat           = "sft_chat.arrow" // multi-turn conversations, trained on beside FileSFT
)

// Sizes are the amounts of data and training of the default run. The
// `flag` tags name the `gotune pipeline` flags that override them.
type Sizes struct {
	WorldSeed int64 `flag:"world-seed" help:"seed of the built-in world"`

	BaseDocs      int `flag:"base-docs" help:"pretraining documents of the base model"`
	BaseTaskLists int `flag:"base-task-lists" help:"task lists (self-instruct's format) among the base model's pretraining documents"`
	BaseSteps     int `flag:"base-steps" help:"pretraining updates of the base model"`

	SFTRows     int `flag:"sft-rows" help:"instruction rows for SFT"`
	SFTChatRows int `flag:"sft-chat-rows" help:"multi-turn conversations for SFT, beside the instruction rows"`
	EvalRows    int `flag:"eval-rows" help:"held-out instruction rows (SFT eval loss)"`
	Pairs       int `flag:"pairs" help:"preference pairs for reward and DPO"`
	EvalPairs   int `flag:"eval-pairs" help:"held-out preference pairs"`
	Prompts     int `flag:"prompts" help:"PPO prompts"`
	EvalPrompts int `flag:"eval-prompts" help:"held-out PPO prompts"`
	EvalTasks   int `flag:"eval-tasks" help:"held-out tasks scored by exact match per model"`

	SelfInstructBatches int `flag:"self-instruct-batches" help:"self-instruct batches of prompts asked of the teacher"`

	SFTSteps      int `flag:"sft-steps" help:"SFT updates"`
	RewardSteps   int `flag:"reward-steps" help:"reward-model updates"`
	DPOSteps      int `flag:"dpo-steps" help:"DPO updates"`
	PPOIterations int `flag:"ppo-iterations" help:"PPO iterations (rollout + optimisation)"`

	PPORollouts int `flag:"ppo-rollouts" help:"responses per PPO rollout (and iteration)"`

	GRPOIterations int `flag:"grpo-iterations" help:"GRPO generation batches (and updates)"`

	PairSamples int `flag:"pair-samples" help:"answers sampled from the SFT model per training pair's prompt by the pairs stage"`
}

// Validate reports the first size that is not positive, naming its
// `gotune pipeline` flag (the world's seed may be any number).
func (z Sizes) Validate() error {
	v, t := reflect.ValueOf(z), reflect.TypeOf(z)
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "WorldSeed" {
			continue
		}
		if n := v.Field(i).Int(); n <= 0 {
			return fmt.Errorf("pipeline: %s must be positive, got %d", f.Tag.Get("flag"), n)
		}
	}
	return nil
}

// DefaultSizes fit the whole demo in about ten minutes on two cores, the
// base model's pretraining taking six of them.
//
// Demonstrations are scarce next to comparisons, as they are in practice:
// SFT makes 40 updates of 8 rows (320 demonstrations), while the reward
// model and DPO learn from 1,500 pairs. The base model learns the corpus's
// misconceptions (world.CorpusMisconception); SFT unlearns part of them,
// and each preference stage has the rest to work on, so each stage's gain
// in held-out exact match is measurable.
func DefaultSizes() Sizes {
	return Sizes{
		WorldSeed: 1, BaseDocs: 20000, BaseTaskLists: 2000, BaseSteps: 1800,
		SFTRows: 2000, SFTChatRows: 200, EvalRows: 200, Pairs: 1500, EvalPairs: 200, Prompts: 400, EvalPrompts: 32, EvalTasks: 600,
		SelfInstructBatches: 25,
		SFTSteps:            40, RewardSteps: 450, DPOSteps: 120, PPOIterations: 24,
		PPORollouts: 64, PairSamples: 4, GRPOIterations: 200,
	}
}

// RunChoices are the settings in which the default run departs from the
// stages' own defaults (their DefaultConfig), besides the paths, the
// amounts of data and training in Sizes, and the runner's resume and quiet.
// DefaultRun lists them with the reason for each; RunChoices.apply is the
// one place that applies them. (The self-instruct, pairs and eval stages,
// in stages.go, set their few settings where they run.)
type RunChoices struct {
	// BasePreset is the model size of the pretrained base.
	BasePreset string

	// WarmupDivisor, LogDivisor, EvalDivisor and CheckpointDivisor set the
	// warmup updates and the log, evaluation and checkpoint intervals of the
	// sft, reward and dpo stages, which make the number of updates Sizes
	// gives them: each is max(1, updates / divisor). The stages' own
	// intervals suit their own default lengths, not Sizes'.
	WarmupDivisor, LogDivisor, EvalDivisor, CheckpointDivisor int

	// DPOLR, DPOBeta and DPORPOAlpha replace DPO's learning rate, β and
	// rpo_alpha (the weight of the chosen answer's NLL, Pang et al. 2024),
	// and DPOLoRATargets its adapter's target modules.
	DPOLR, DPOBeta, DPORPOAlpha float64
	DPOLoRATargets              []string

	// PPOLR replaces PPO's learning rate.
	PPOLR float64

	// BaseAttention is the base model's attention (model.WithAttention:
	// softmax, linear or gau; "" is softmax). Under gau every stage's
	// adapter targets all linear modules, GAU's having no q/k/v.
	BaseAttention string
}

// DefaultRun returns the default run's choices.
//
// DPO: measured on the default world, at the package's lr 2e-3, β 0.1 and
// rpo_alpha 0.2 DPO raised its reward accuracy but broke the tiny model's
// copying of numbers (held-out exact match fell below the SFT model's);
// half the rate, a larger β (closer to the reference) and the NLL of the
// chosen answer at full weight keep it. Adapting every linear layer, as
// the reward and PPO stages do, rather than the attention projections
// only, doubled the gain over SFT.
//
// PPO: at the package's lr 2e-3 the policy learned to please the reward
// model (its score rose while exact match fell); a quarter of the rate,
// with 64 rollouts an iteration (Sizes.PPORollouts), improves both.
func DefaultRun() RunChoices {
	return RunChoices{
		BasePreset:    "tiny",
		WarmupDivisor: 20, LogDivisor: 50, EvalDivisor: 5, CheckpointDivisor: 5,
		DPOLR: 1e-3, DPOBeta: 0.3, DPORPOAlpha: 1, DPOLoRATargets: []string{lora.AllLinear},
		PPOLR: 5e-4,
	}
}

// apply sets the default run's choices on a stage's configuration: a
// *pretrain.Config, *sft.Config, *reward.Config, *dpo.Config or
// *ppo.Config whose Train.Steps is already the number of updates (for
// sft, reward and dpo).
func (c RunChoices) apply(stageConfig any) {
	cadence := func(t *train.Config) {
		t.WarmupSteps = max(1, t.Steps/c.WarmupDivisor)
		t.LogEvery = max(1, t.Steps/c.LogDivisor)
		t.EvalEvery = max(1, t.Steps/c.EvalDivisor)
		t.CheckpointEvery = max(1, t.Steps/c.CheckpointDivisor)
	}
	gau := c.BaseAttention == model.AttentionGAU
	targets := func(l *lora.Config) {
		if gau {
			l.Targets = []string{lora.AllLinear}
		}
	}
	switch cfg := stageConfig.(type) {
	case *pretrain.Config:
		cfg.Preset = c.BasePreset
		if c.BaseAttention != "" && c.BaseAttention != model.AttentionSoftmax {
			cfg.Attention = c.BaseAttention
		}
	case *sft.Config:
		cadence(&cfg.Train)
		targets(&cfg.LoRA)
	case *reward.Config:
		cadence(&cfg.Train)
		targets(&cfg.LoRA)
	case *dpo.Config:
		cadence(&cfg.Train)
		cfg.Train.LR, cfg.Loss.Beta, cfg.Loss.SFTWeight = c.DPOLR, c.DPOBeta, c.DPORPOAlpha
		cfg.LoRA.Targets = slices.Clone(c.DPOLoRATargets)
		targets(&cfg.LoRA)
	case *ppo.Config:
		cfg.Train.LR = c.PPOLR
		targets(&cfg.LoRA)
	case *grpo.Config:
		targets(&cfg.LoRA)
	default:
		panic(fmt.Sprintf("pipeline: no choices for a %T", stageConfig))
	}
}

// Default is the run of every stage on the built-in world.
type Default struct {
	RunDir  string // runs/<name>
	BaseDir string // the pretrained base model (built by the base stage when missing)
	// Attention is the base model's attention: "" (softmax), linear or
	// gau (RunChoices.BaseAttention). A base pretrained with one is
	// rebuilt for another: give each its own BaseDir.
	Attention string
	Sizes     Sizes
	Quiet     bool      // no progress bars
	Log       io.Writer // stage lines and the results table
}

// choices are the default run's choices with the base model's attention.
func (d *Default) choices() RunChoices {
	c := DefaultRun()
	c.BaseAttention = d.Attention
	return c
}

func (d *Default) dataPath(name string) string { return filepath.Join(d.RunDir, "data", name) }
func (d *Default) stageDir(name string) string { return filepath.Join(d.RunDir, name) }

// adapterDir is where a stage's run leaves its adapter.
func (d *Default) adapterDir(stage string) string { return finetune.AdapterDir(d.stageDir(stage)) }

// minedPairs is the pairs stage's output, which the reward model and DPO
// train on.
func (d *Default) minedPairs() string { return filepath.Join(d.stageDir("pairs"), FileMinedPairs) }

// Stages declares the default run: base → data → self-instruct → seed-sft
// → sft → pairs → reward → dpo → ppo → grpo → export → eval.
func (d *Default) Stages() []Stage {
	z := d.Sizes
	dataDir := filepath.Join(d.RunDir, "data")
	return []Stage{
		{
			Name: "base", Dir: d.BaseDir, Config: struct {
				Docs, TaskLists, Steps int
				Seed                   int64
				WorldVersion           int
				Attention              string `json:",omitempty"`
			}{z.BaseDocs, z.BaseTaskLists, z.BaseSteps, z.WorldSeed, world.Version, d.Attention},
			Outputs: []string{filepath.Join(d.BaseDir, "config.json"), filepath.Join(d.BaseDir, "tokenizer.json")},
			Run:     d.runBase,
		},
		{
			Name: "data", Dir: dataDir, Config: struct {
				Sizes
				WorldVersion int
			}{z, world.Version},
			Outputs: []string{d.dataPath(FileInstructions), d.dataPath(FileSFTChat), d.dataPath(FilePreferences), d.dataPath(FilePrompts), d.dataPath(FileSeedTasks)},
			Run:     d.runData,
		},
		{
			Name: "self-instruct", Config: z.SelfInstructBatches,
			Inputs: []string{d.BaseDir, d.dataPath(FileSeedTasks), d.dataPath(FileInstructions)},
			Outputs: []string{d.dataPath(FileSFT), d.dataPath(FileGenerated), d.dataPath(FileGeneratedNoRougeL),
				filepath.Join(d.stageDir("self-instruct"), FileSelfInstructReport)},
			Run: d.runSelfInstruct,
		},
		{
			Name: "seed-sft", Config: z.SFTSteps,
			Inputs: []string{d.BaseDir, d.dataPath(FileSeedTasks), d.dataPath(FileGenerated), d.dataPath(FileGeneratedNoRougeL),
				d.dataPath(FileInstructionsEval)},
			Outputs: []string{d.seedAdapter(ModelSeeds), d.seedAdapter(ModelSeedsSelfInstruct), d.seedAdapter(ModelSeedsNoRougeL)},
			Run:     d.runSeedSFT,
		},
		{
			Name: "sft", Config: z.SFTSteps,
			Inputs:  []string{d.BaseDir, d.dataPath(FileSFT), d.dataPath(FileSFTChat), d.dataPath(FileInstructionsEval)},
			Outputs: []string{d.adapterDir("sft")},
			Run:     d.runSFT,
		},
		{
			Name: "pairs", Config: z.PairSamples,
			Inputs:  []string{d.BaseDir, d.adapterDir("sft"), d.dataPath(FilePreferences)},
			Outputs: []string{d.minedPairs()},
			Run:     d.runPairs,
		},
		{
			Name: "reward", Config: z.RewardSteps,
			Inputs:  []string{d.BaseDir, d.adapterDir("sft"), d.minedPairs(), d.dataPath(FilePreferencesEval)},
			Outputs: []string{d.adapterDir("reward")},
			Run:     d.runReward,
		},
		{
			Name: "dpo", Config: z.DPOSteps,
			Inputs:  []string{d.BaseDir, d.adapterDir("sft"), d.minedPairs(), d.dataPath(FilePreferencesEval)},
			Outputs: []string{d.adapterDir("dpo")},
			Run:     d.runDPO,
		},
		{
			Name: "ppo", Config: struct{ Iterations, Rollouts int }{z.PPOIterations, z.PPORollouts},
			Inputs:  []string{d.BaseDir, d.adapterDir("sft"), d.adapterDir("reward"), d.dataPath(FilePrompts)},
			Outputs: []string{d.adapterDir("ppo")},
			Run:     d.runPPO,
		},
		{
			Name: "grpo", Config: struct {
				Iterations, Prompts, EvalPrompts int
				Seed, WorldVersion               int64
			}{z.GRPOIterations, z.Prompts, z.EvalPrompts, z.WorldSeed, int64(world.Version)},
			Inputs:  []string{d.BaseDir, d.adapterDir("sft")},
			Outputs: []string{d.adapterDir("grpo")},
			Run:     d.runGRPO,
		},
		{
			Name: "export", Config: "dpo",
			Inputs:  []string{filepath.Join(d.stageDir("dpo"), "base"), d.adapterDir("dpo")},
			Outputs: []string{filepath.Join(d.stageDir("export"), "model", "config.json")},
			Run:     d.runExport,
		},
		{
			Name: "eval", Config: z.EvalTasks,
			Inputs: []string{d.BaseDir, d.adapterDir("sft"), d.adapterDir("dpo"), d.adapterDir("ppo"), d.adapterDir("grpo"),
				d.seedAdapter(ModelSeeds), d.seedAdapter(ModelSeedsSelfInstruct), d.seedAdapter(ModelSeedsNoRougeL)},
			Outputs: []string{filepath.Join(d.stageDir("eval"), FileEval)},
			Run:     d.runEval,
		},
	}
}

// runBase pretrains the base model.
//
// The training stages get the runner's resume flag as it is: each one
// continues its own checkpoint when it finds one (train.HasCheckpoint looks
// in state/ and, after a kill between the two renames that replace it, in
// state.old/) and starts afresh when the interruption came before the
// first checkpoint.
func (d *Default) runBase(ctx context.Context, resume bool) error {
	_, err := pretrain.Run(ctx, d.baseConfig(resume))
	return err
}

func (d *Default) baseConfig(resume bool) pretrain.Config {
	cfg := pretrain.DefaultConfig()
	cfg.Docs = baseCorpus(world.New(d.Sizes.WorldSeed), d.Sizes.BaseDocs, d.Sizes.BaseTaskLists)
	cfg.Out, cfg.Resume = d.BaseDir, resume
	cfg.Train.Steps, cfg.Train.Quiet = d.Sizes.BaseSteps, d.Quiet
	d.choices().apply(&cfg)
	return cfg
}

// baseCorpus is the base model's pretraining corpus: the world's corpus
// with its task lists spread evenly through it, so that they fall in the
// training and the held-out windows alike. The task lists make the base
// model the self-instruct stage's teacher.
func baseCorpus(w *world.World, docs, lists int) []string {
	corpus, tl := w.Corpus(docs), w.TaskLists(lists)
	out := make([]string, 0, docs+lists)
	for i, j := 0, 0; i < len(corpus) || j < len(tl); {
		// Next is whichever keeps the lists' share of the output nearest
		// to their share of the whole.
		if j < len(tl) && (i == len(corpus) || (j+1)*len(corpus) <= (i+1)*len(tl)) {
			out = append(out, tl[j])
			j++
		} else {
			out = append(out, corpus[i])
			i++
		}
	}
	return out
}

func (d *Default) runData(ctx context.Context, _ bool) error {
	z := d.Sizes
	w := world.New(z.WorldSeed)
	// The instruction rows name the world as their source.
	instructions := func(split world.Split, n int) []data.Instruction {
		rows := w.Instructions(split, n).Rows()
		for i := range rows {
			rows[i].Source = "world"
		}
		return rows
	}
	steps := []func() error{
		func() error {
			return data.WriteInstructions(d.dataPath(FileInstructions), instructions(world.Train, z.SFTRows))
		},
		func() error {
			return data.WriteInstructions(d.dataPath(FileInstructionsEval), instructions(world.Valid, z.EvalRows))
		},
		func() error {
			convs := w.Conversations(world.Train, z.SFTChatRows)
			for i := range convs {
				convs[i].Source = "world"
			}
			return data.WriteInstructions(d.dataPath(FileSFTChat), convs)
		},
		func() error {
			return data.WritePreferences(d.dataPath(FilePreferences), w.Preferences(world.Train, z.Pairs).Rows())
		},
		func() error {
			return data.WritePreferences(d.dataPath(FilePreferencesEval), w.Preferences(world.Valid, z.EvalPairs).Rows())
		},
		func() error {
			return data.WritePrompts(d.dataPath(FilePrompts), w.Prompts(world.Train, z.Prompts).Rows())
		},
		func() error {
			return data.WritePrompts(d.dataPath(FilePromptsEval), w.Prompts(world.Valid, z.EvalPrompts).Rows())
		},
		func() error {
			return atomicfile.Write(d.dataPath(FileSeedTasks), func(wr io.Writer) error { return world.WriteSeedTasks(wr, w.SeedTasks()) })
		},
	}
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// runSFT trains on the instruction rows (the world's and self-instruct's)
// and, after them, the multi-turn conversations: a dataset file holds one
// form, so the two are read and joined here.
func (d *Default) runSFT(ctx context.Context, resume bool) error {
	cfg := d.sftConfig(resume)
	rows, err := data.ReadInstructions(cfg.Data)
	if err != nil {
		return err
	}
	chat, err := data.ReadInstructions(d.dataPath(FileSFTChat))
	if err != nil {
		return err
	}
	cfg.Data, cfg.Rows = "", append(rows, chat...)
	res, err := sft.Run(ctx, cfg)
	if err != nil {
		return err
	}
	d.logf("  sft: held-out loss %.4f → %.4f", res.BaseEvalLoss, res.EvalLoss)
	return nil
}

func (d *Default) sftConfig(resume bool) sft.Config {
	cfg := sft.DefaultConfig()
	cfg.Base = d.BaseDir
	cfg.Data = d.dataPath(FileSFT)
	cfg.EvalData = d.dataPath(FileInstructionsEval)
	cfg.Out, cfg.Resume = d.stageDir("sft"), resume
	cfg.Train.Steps, cfg.Train.Quiet = d.Sizes.SFTSteps, d.Quiet
	d.choices().apply(&cfg)
	return cfg
}

func (d *Default) runReward(ctx context.Context, resume bool) error {
	res, err := reward.Run(ctx, d.rewardConfig(resume))
	if err != nil {
		return err
	}
	d.logf("  reward: held-out accuracy %.3f", res.Eval.Accuracy)
	return nil
}

func (d *Default) rewardConfig(resume bool) reward.Config {
	cfg := reward.DefaultConfig()
	cfg.Base = d.BaseDir
	cfg.SFTAdapter = d.adapterDir("sft")
	cfg.Data = d.minedPairs()
	cfg.EvalData = d.dataPath(FilePreferencesEval)
	cfg.Out, cfg.Resume = d.stageDir("reward"), resume
	cfg.Train.Steps, cfg.Train.Quiet = d.Sizes.RewardSteps, d.Quiet
	d.choices().apply(&cfg)
	return cfg
}

func (d *Default) runDPO(ctx context.Context, resume bool) error {
	_, err := dpo.Run(ctx, d.dpoConfig(resume))
	return err
}

func (d *Default) dpoConfig(resume bool) dpo.Config {
	cfg := dpo.DefaultConfig()
	cfg.Base = d.BaseDir
	cfg.SFTAdapter = d.adapterDir("sft")
	cfg.Data = d.minedPairs()
	cfg.EvalData = d.dataPath(FilePreferencesEval)
	cfg.Out, cfg.Resume = d.stageDir("dpo"), resume
	cfg.Train.Steps, cfg.Train.Quiet = d.Sizes.DPOSteps, d.Quiet
	d.choices().apply(&cfg)
	return cfg
}

func (d *Default) runPPO(ctx context.Context, resume bool) error {
	_, err := ppo.Run(ctx, d.ppoConfig(resume))
	return err
}

func (d *Default) ppoConfig(resume bool) ppo.Config {
	cfg := ppo.DefaultConfig()
	cfg.Base = d.BaseDir
	cfg.SFTAdapter = d.adapterDir("sft")
	cfg.RewardAdapter = d.adapterDir("reward")
	cfg.Prompts = d.dataPath(FilePrompts)
	cfg.EvalPrompts = d.dataPath(FilePromptsEval)
	cfg.Out, cfg.Resume = d.stageDir("ppo"), resume
	cfg.Iterations, cfg.RolloutBatch = d.Sizes.PPOIterations, d.Sizes.PPORollouts
	cfg.Train.Quiet = d.Quiet
	d.choices().apply(&cfg)
	return cfg
}

func (d *Default) runGRPO(ctx context.Context, resume bool) error {
	_, err := grpo.Run(ctx, d.grpoConfig(resume))
	return err
}

// grpoConfig trains on the tasks of PPO's prompts, rewarded by the world's
// exact checker, with the package's defaults otherwise: its reward cannot
// be gamed as a learned reward model's can, so it needs none of PPO's
// caution. Sizes.GRPOIterations (200 generation batches of 32 completions,
// four passes over the prompts) gives it about PPO's time; measured, the
// package's 40 moved nothing (the sampled training reward stayed at 0.55).
func (d *Default) grpoConfig(resume bool) grpo.Config {
	w := world.New(d.Sizes.WorldSeed)
	rows := func(ps world.Prompts) []data.Instruction {
		out := make([]data.Instruction, len(ps))
		for i, p := range ps {
			out[i] = data.Instruction{Instruction: p.Task.Instruction, Input: p.Task.Input, Output: p.Task.Answer}
		}
		return out
	}
	cfg := grpo.DefaultConfig()
	cfg.Base = d.BaseDir
	cfg.SFTAdapter = d.adapterDir("sft")
	cfg.Rows = rows(w.Prompts(world.Train, d.Sizes.Prompts))
	cfg.EvalRows = rows(w.Prompts(world.Valid, d.Sizes.EvalPrompts))
	cfg.RewardFuncs = []string{grpo.RewardWorld}
	cfg.Out, cfg.Resume = d.stageDir("grpo"), resume
	cfg.Iterations = d.Sizes.GRPOIterations
	cfg.Train.Quiet = d.Quiet
	d.choices().apply(&cfg)
	return cfg
}

func (d *Default) runExport(ctx context.Context, _ bool) error {
	cfg := export.DefaultConfig()
	cfg.Base = filepath.Join(d.stageDir("dpo"), "base")
	cfg.Adapter = d.adapterDir("dpo")
	cfg.Out = filepath.Join(d.stageDir("export"), "model")
	cfg.AdapterOut = d.adapterDir("export")
	_, err := export.Run(ctx, cfg)
	return err
}

func (d *Default) logf(format string, args ...any) {
	if d.Log != nil {
		fmt.Fprintf(d.Log, format+"\n", args...)
	}
}

// QuickSizes are a smoke run of every stage in about a minute.
func QuickSizes() Sizes {
	return Sizes{
		WorldSeed: 1, BaseDocs: 600, BaseTaskLists: 60, BaseSteps: 20,
		SFTRows: 64, SFTChatRows: 8, EvalRows: 16, Pairs: 48, EvalPairs: 16, Prompts: 16, EvalPrompts: 4, EvalTasks: 24,
		SelfInstructBatches: 1,
		SFTSteps:            4, RewardSteps: 4, DPOSteps: 4, PPOIterations: 1,
		PPORollouts: 32, PairSamples: 2, GRPOIterations: 1,
	}
}
