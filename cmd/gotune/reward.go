package main

import (
	"fmt"

	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/train"
	"github.com/spf13/cobra"
)

var rewardCmd = &cobra.Command{
	Use:   "reward",
	Short: "Train a reward model (LoRA + scalar head) on preference pairs",
	Long: `Train a reward model on a preferences dataset (--data: prompt, chosen,
rejected, optional margin) or, without it, on --world-pairs pairs of the
built-in world. The model is --base with --sft-adapter merged into it (when
given), a fresh LoRA adapter on the backbone and a scalar score head read at
the last token of prompt + completion + EOS, trained with the Bradley–Terry
loss −log σ(r_chosen − r_rejected − margin) (+ optional reward centering).
Held-out accuracy, margin and rewards are logged every --eval-every updates.
The output directory receives adapter/ (PEFT, task type SEQ_CLS, the head as
modules_to_save "score"), metrics.jsonl and the resumable checkpoint in
state/. "gotune reward score" adds reward-model scores to a dataset.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "reward"
		cfg := reward.DefaultConfig()
		cfg.Base, cfg.SFTAdapter, cfg.Out = cfgString(s, "base"), cfgString(s, "sft-adapter"), cfgString(s, "out")
		cfg.Data, cfg.EvalData, cfg.HeldOut, cfg.EvalMax = cfgString(s, "data"), cfgString(s, "eval-data"), cfgFloat(s, "held-out"), cfgInt(s, "eval-pairs")
		cfg.WorldPairs, cfg.WorldSeed = cfgInt(s, "world-pairs"), int64(cfgInt(s, "world-seed"))
		cfg.BatchSize, cfg.MaxLength, cfg.Epochs = cfgInt(s, "batch-size"), cfgInt(s, "max-length"), cfgFloat(s, "epochs")
		cfg.Loss.CenterCoefficient, cfg.Resume = cfgFloat(s, "center-rewards-coefficient"), cfgBool(s, "resume")
		cfg.HeadSeed = uint64(cfgInt(s, "seed"))
		readLoRA(s, &cfg.LoRA)
		readTrain(s, &cfg.Train)
		res, err := reward.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "trained a reward model on %d pairs (%d dropped as too long) for %d updates; held-out accuracy %.3f, margin %.3f on %d pairs; adapter in %s\n",
			res.TrainPairs, res.Dropped, res.Steps, res.Eval.Accuracy, res.Eval.Margin, res.EvalPairs, res.AdapterDir)
		return nil
	},
}

var rewardScoreCmd = &cobra.Command{
	Use:   "score --model BASE --adapter DIR --data IN --out OUT",
	Short: "Add reward-model scores to a dataset",
	Long: `Score every row of a dataset with a reward model (--model with
--sft-adapter merged when the reward model was trained on it, plus the
reward --adapter): an instructions dataset gets a "reward" column (the output
scored as the completion of the Alpaca prompt), a preferences dataset gets
"score_chosen" and "score_rejected". Other columns are kept; --out may equal
--data.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "reward.score"
		res, err := reward.Score(cmd.Context(), reward.ScoreConfig{
			Base: cfgString(s, "model"), SFTAdapter: cfgString(s, "sft-adapter"), Adapter: cfgString(s, "adapter"),
			Data: cfgString(s, "data"), Out: cfgString(s, "out"), BatchSize: cfgInt(s, "batch-size"), MaxLength: cfgInt(s, "max-length"),
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "scored %d rows (%s) into %s: columns %v, mean %.4f, %d sequences truncated\n",
			res.Rows, res.Kind, cfgString(s, "out"), res.Columns, res.Mean, res.Truncated)
		return nil
	},
}

// addLoRAFlags declares the adapter flags shared by the reward and PPO
// commands.
func addLoRAFlags(cmd *cobra.Command, r int, alpha, dropout float64, targets []string) {
	f := cmd.Flags()
	f.Int("lora-r", r, "LoRA rank r")
	f.Float64("lora-alpha", alpha, "LoRA alpha (scale alpha/r)")
	f.Float64("lora-dropout", dropout, "dropout on the adapter input")
	f.StringSlice("lora-targets", targets, "modules to adapt (q_proj … down_proj, or all-linear)")
	f.Bool("use-rslora", false, "scale alpha/sqrt(r) (rsLoRA)")
}

// addTrainFlags declares the optimizer and bookkeeping flags shared by the
// reward and PPO commands, with d's defaults (a steps flag only withSteps).
func addTrainFlags(cmd *cobra.Command, d train.Config, withSteps bool) {
	f := cmd.Flags()
	if withSteps {
		f.Int("steps", d.Steps, "optimizer updates (0: --epochs passes)")
	}
	f.Int("grad-accum", d.GradAccum, "micro-batches per update")
	f.Float64("lr", d.LR, "peak learning rate")
	f.Int("warmup", d.WarmupSteps, "linear warmup updates")
	f.String("schedule", d.Schedule, "learning-rate schedule: cosine, linear or constant")
	f.Float64("min-lr-ratio", d.MinLRRatio, "schedule floor as a fraction of --lr")
	f.Float64("weight-decay", d.WeightDecay, "AdamW decoupled weight decay")
	f.Float64("max-grad-norm", d.MaxGradNorm, "clip the global gradient norm (0: off)")
	f.Int("seed", int(d.Seed), "seed of the data order, sampling, adapter and head init, and dropout")
	f.Int("log-every", d.LogEvery, "log metrics every N updates")
	f.Int("eval-every", d.EvalEvery, "evaluate every N updates (and at the end)")
	f.Int("save-every", d.CheckpointEvery, "checkpoint every N updates (and at the end)")
	f.Bool("resume", false, "continue from the checkpoint in --out")
	f.Bool("quiet", false, "no progress bar")
}

// readLoRA fills an adapter configuration from addLoRAFlags' flags.
func readLoRA(s string, l *lora.Config) {
	l.R, l.Alpha, l.Dropout = cfgInt(s, "lora-r"), cfgFloat(s, "lora-alpha"), cfgFloat(s, "lora-dropout")
	l.Targets, l.RSLoRA, l.Seed = cfgStringSlice(s, "lora-targets"), cfgBool(s, "use-rslora"), uint64(cfgInt(s, "seed"))
}

// readTrain fills a loop configuration from addTrainFlags' flags (steps
// only where the command has that flag).
func readTrain(s string, t *train.Config) {
	if knownKeys[configKey(s, "steps")] {
		t.Steps = cfgInt(s, "steps")
	}
	t.GradAccum, t.LR, t.WarmupSteps = cfgInt(s, "grad-accum"), cfgFloat(s, "lr"), cfgInt(s, "warmup")
	t.Schedule, t.MinLRRatio, t.WeightDecay, t.MaxGradNorm = cfgString(s, "schedule"), cfgFloat(s, "min-lr-ratio"), cfgFloat(s, "weight-decay"), cfgFloat(s, "max-grad-norm")
	t.Seed, t.LogEvery, t.EvalEvery, t.CheckpointEvery = uint64(cfgInt(s, "seed")), cfgInt(s, "log-every"), cfgInt(s, "eval-every"), cfgInt(s, "save-every")
	t.Quiet = cfgBool(s, "quiet")
}

func init() {
	d := reward.DefaultConfig()
	f := rewardCmd.Flags()
	f.String("base", "models/base", "base model directory (Hugging Face layout)")
	f.String("sft-adapter", "", "SFT adapter merged into the base before training (the usual start of RLHF)")
	f.String("data", "", "preferences dataset (.arrow); default: the built-in world")
	f.Int("world-pairs", 2000, "pairs of the built-in world to train on when --data is not given")
	f.Int("world-seed", int(d.WorldSeed), "seed of the built-in world")
	f.String("eval-data", "", "held-out preferences dataset (.arrow)")
	f.Float64("held-out", d.HeldOut, "share of --data's prompts held out when --eval-data is not given")
	f.Int("eval-pairs", d.EvalMax, "held-out pairs evaluated at most (0: all)")
	f.Int("batch-size", d.BatchSize, "pairs per micro-batch")
	f.Int("max-length", d.MaxLength, "tokens of prompt + completion at most; longer pairs are dropped (0: the model's positions)")
	f.Float64("epochs", d.Epochs, "passes over the training pairs when --steps is 0")
	f.Float64("center-rewards-coefficient", 0, "weight of the reward-centering term c·mean((r_c + r_r)²) (0: off)")
	f.String("out", "runs/default/reward", "output directory")
	addLoRAFlags(rewardCmd, d.LoRA.R, d.LoRA.Alpha, d.LoRA.Dropout, d.LoRA.Targets)
	addTrainFlags(rewardCmd, d.Train, true)
	bindFlags(rewardCmd, "reward")

	sf := rewardScoreCmd.Flags()
	sf.String("model", "models/base", "base model directory")
	sf.String("sft-adapter", "", "SFT adapter the reward model was trained on (merged into the base first)")
	sf.String("adapter", "runs/default/reward/adapter", "reward adapter directory")
	sf.String("data", "", "dataset to score (.arrow: instructions or preferences)")
	sf.String("out", "", "dataset to write (may equal --data)")
	sf.Int("batch-size", 8, "sequences per forward pass")
	sf.Int("max-length", 0, "tokens per sequence at most, longer ones keep their end (0: the model's positions)")
	bindFlags(rewardScoreCmd, "reward.score")
	rewardCmd.AddCommand(rewardScoreCmd)
	rootCmd.AddCommand(rewardCmd)
}
