package main

import (
	"github.com/spf13/pflag"

	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/train"
)

// addFineTuneFlags declares the adapter and optimisation settings of the
// sft and dpo commands, with the stage's defaults. (The reward and ppo
// commands, whose step and seed flags mean other things, use
// addLoRAFlags/addTrainFlags in reward.go.)
func addFineTuneFlags(f *pflag.FlagSet, d lora.Config, dt train.Config) {
	f.Int("lora-r", d.R, "LoRA rank r")
	f.Float64("lora-alpha", d.Alpha, "LoRA alpha (scale alpha/r)")
	f.Float64("lora-dropout", d.Dropout, "dropout on the adapter input")
	f.StringSlice("lora-targets", d.Targets, "modules to adapt (q_proj … down_proj, or all-linear)")
	f.Bool("use-rslora", false, "scale alpha/sqrt(r) (rsLoRA)")
	f.String("lora-init", d.Init, "adapter init: kaiming or gaussian")
	f.Int("steps", dt.Steps, "optimizer updates")
	f.Int("grad-accum", dt.GradAccum, "micro-batches per update")
	f.Float64("lr", dt.LR, "peak learning rate")
	f.Int("warmup", dt.WarmupSteps, "linear warmup updates")
	f.String("schedule", dt.Schedule, "learning-rate schedule: cosine, linear or constant")
	f.Float64("min-lr-ratio", dt.MinLRRatio, "schedule floor as a fraction of --lr")
	f.Float64("weight-decay", dt.WeightDecay, "AdamW decoupled weight decay")
	f.Float64("max-grad-norm", dt.MaxGradNorm, "clip the global gradient norm (0: off)")
	f.Int("seed", int(dt.Seed), "seed of the data order, held-out split, adapter init and dropout")
	f.Int("log-every", dt.LogEvery, "log metrics every N updates")
	f.Int("eval-every", dt.EvalEvery, "evaluate every N updates (and at the end)")
	f.Int("save-every", dt.CheckpointEvery, "checkpoint every N updates (and at the end)")
}

// readFineTuneFlags sets l and t from the resolved configuration of
// section s (flags declared by addFineTuneFlags, plus "quiet").
func readFineTuneFlags(s string, l *lora.Config, t *train.Config) {
	l.R, l.Alpha, l.Dropout = cfgInt(s, "lora-r"), cfgFloat(s, "lora-alpha"), cfgFloat(s, "lora-dropout")
	l.Targets, l.RSLoRA, l.Init = cfgStringSlice(s, "lora-targets"), cfgBool(s, "use-rslora"), cfgString(s, "lora-init")
	l.Seed = uint64(cfgInt(s, "seed"))
	t.Steps, t.GradAccum, t.LR, t.WarmupSteps = cfgInt(s, "steps"), cfgInt(s, "grad-accum"), cfgFloat(s, "lr"), cfgInt(s, "warmup")
	t.Schedule, t.MinLRRatio, t.WeightDecay, t.MaxGradNorm = cfgString(s, "schedule"), cfgFloat(s, "min-lr-ratio"), cfgFloat(s, "weight-decay"), cfgFloat(s, "max-grad-norm")
	t.Seed, t.LogEvery, t.EvalEvery, t.CheckpointEvery = uint64(cfgInt(s, "seed")), cfgInt(s, "log-every"), cfgInt(s, "eval-every"), cfgInt(s, "save-every")
	t.Quiet = cfgBool(s, "quiet")
}
