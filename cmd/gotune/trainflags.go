package main

import (
	"github.com/spf13/pflag"

	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/train"
)

// loopFlagUsage holds what the training commands' loop flags say
// differently: their updates and their seed mean different things.
type loopFlagUsage struct {
	steps    string // usage of --steps; "" declares no --steps (ppo derives its updates)
	seed     string // usage of --seed
	logEvery string // usage of --log-every
}

// Usages of the loop flags shared by most commands.
const (
	usageSteps    = "optimizer updates"
	usageLogEvery = "log metrics every N updates"
)

// addLoRAFlags declares the adapter flags of the fine-tuning commands, with
// the stage's defaults.
func addLoRAFlags(f *pflag.FlagSet, d lora.Config) {
	f.Int(lora.KeyR, d.R, "LoRA rank r")
	f.Float64(lora.KeyAlpha, d.Alpha, "LoRA alpha (scale alpha/r)")
	f.Float64(lora.KeyDropout, d.Dropout, "dropout on the adapter input")
	f.StringSlice(lora.KeyTargets, d.Targets, "modules to adapt (q_proj … down_proj, or "+lora.AllLinear+")")
	f.Bool(lora.KeyRSLoRA, d.RSLoRA, "scale alpha/sqrt(r) (rsLoRA)")
	f.String(lora.KeyInit, d.Init, "adapter init: "+lora.InitKaiming+" or "+lora.InitGaussian)
}

// addTrainFlags declares the optimisation and bookkeeping flags of the
// training commands, with the stage's defaults.
func addTrainFlags(f *pflag.FlagSet, d train.Config, u loopFlagUsage) {
	if u.steps != "" {
		f.Int(train.KeySteps, d.Steps, u.steps)
	}
	f.Int(train.KeyGradAccum, d.GradAccum, "micro-batches per update")
	f.Float64(train.KeyPeakLR, d.LR, "peak learning rate")
	f.Int(train.KeyWarmup, d.WarmupSteps, "linear warmup updates")
	f.String(train.KeySchedule, d.Schedule, "learning-rate schedule: cosine, linear or constant")
	f.Float64(train.KeyMinLRRatio, d.MinLRRatio, "schedule floor as a fraction of --lr")
	f.Float64(train.KeyWeightDecay, d.WeightDecay, "AdamW decoupled weight decay")
	f.Float64(train.KeyMaxGradNorm, d.MaxGradNorm, "clip the global gradient norm (0: off)")
	f.Int(train.KeySeed, int(d.Seed), u.seed)
	f.Int(train.KeyLogEvery, d.LogEvery, u.logEvery)
	f.Int(train.KeyEvalEvery, d.EvalEvery, "evaluate every N updates (and at the end)")
	f.Int(train.KeySaveEvery, d.CheckpointEvery, "checkpoint every N updates (and at the end)")
	f.Bool(train.KeyQuiet, d.Quiet, "no progress bar")
	f.Float64(train.KeyMoEAuxLossAlpha, d.MoEAuxLossAlpha, "weight of DeepSeek-V2's expert balance loss for mixture-of-experts models (0: off)")
	f.Bool(train.KeyGradientCheckpointing, d.GradientCheckpointing, "recompute each decoder layer's activations in the backward pass instead of keeping them: less memory, about a third more compute, the same results")
}

// addFineTuneFlags declares the adapter and the loop flags of a fine-tuning
// command (sft, dpo, reward, ppo).
func addFineTuneFlags(f *pflag.FlagSet, d lora.Config, dt train.Config, u loopFlagUsage) {
	addLoRAFlags(f, d)
	addTrainFlags(f, dt, u)
}

// readLoRAFlags sets l from the resolved configuration of section s (flags
// declared by addLoRAFlags); the adapter's init seed is the command's
// --seed.
func readLoRAFlags(s string, l *lora.Config) {
	l.R, l.Alpha, l.Dropout = cfgInt(s, lora.KeyR), cfgFloat(s, lora.KeyAlpha), cfgFloat(s, lora.KeyDropout)
	l.Targets, l.RSLoRA, l.Init = cfgStringSlice(s, lora.KeyTargets), cfgBool(s, lora.KeyRSLoRA), cfgString(s, lora.KeyInit)
	l.Seed = uint64(cfgInt(s, train.KeySeed))
}

// readTrainFlags sets t from the resolved configuration of section s
// (flags declared by addTrainFlags; Steps only where the command has
// --steps).
func readTrainFlags(s string, t *train.Config) {
	if knownKeys[configKey(s, train.KeySteps)] {
		t.Steps = cfgInt(s, train.KeySteps)
	}
	t.GradAccum, t.LR, t.WarmupSteps = cfgInt(s, train.KeyGradAccum), cfgFloat(s, train.KeyPeakLR), cfgInt(s, train.KeyWarmup)
	t.Schedule, t.MinLRRatio = cfgString(s, train.KeySchedule), cfgFloat(s, train.KeyMinLRRatio)
	t.WeightDecay, t.MaxGradNorm = cfgFloat(s, train.KeyWeightDecay), cfgFloat(s, train.KeyMaxGradNorm)
	t.Seed, t.LogEvery = uint64(cfgInt(s, train.KeySeed)), cfgInt(s, train.KeyLogEvery)
	t.EvalEvery, t.CheckpointEvery = cfgInt(s, train.KeyEvalEvery), cfgInt(s, train.KeySaveEvery)
	t.Quiet, t.MoEAuxLossAlpha = cfgBool(s, train.KeyQuiet), cfgFloat(s, train.KeyMoEAuxLossAlpha)
	t.GradientCheckpointing = cfgBool(s, train.KeyGradientCheckpointing)
}

// readFineTuneFlags sets l and t from the flags of addFineTuneFlags.
func readFineTuneFlags(s string, l *lora.Config, t *train.Config) {
	readLoRAFlags(s, l)
	readTrainFlags(s, t)
}
