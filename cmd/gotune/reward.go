package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/reward"
	"github.com/gotune/gotune/train"
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
		cfg.Base, cfg.SFTAdapter, cfg.Out = cfgString(s, reward.KeyBase), cfgString(s, reward.KeySFTAdapter), cfgString(s, reward.KeyOut)
		cfg.Data, cfg.EvalData = cfgString(s, reward.KeyData), cfgString(s, reward.KeyEvalData)
		cfg.HeldOut, cfg.EvalMax = cfgFloat(s, reward.KeyHeldOut), cfgInt(s, reward.KeyEvalPairs)
		cfg.BatchSize, cfg.MaxLength, cfg.Epochs = cfgInt(s, reward.KeyBatchSize), cfgInt(s, reward.KeyMaxLength), cfgFloat(s, reward.KeyEpochs)
		cfg.Loss.CenterCoefficient, cfg.Resume = cfgFloat(s, reward.KeyCenterRewards), cfgBool(s, reward.KeyResume)
		cfg.HeadSeed = uint64(cfgInt(s, train.KeySeed))
		cfg.BaseDtype = cfgString(s, reward.KeyBaseDtype)
		readFineTuneFlags(s, &cfg.LoRA, &cfg.Train)
		if cfg.Data == "" {
			if err := rewardWorldPairs(s, &cfg); err != nil {
				return err
			}
		}
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
			Base: cfgString(s, scoreKeyModel), SFTAdapter: cfgString(s, scoreKeySFTAdapter), Adapter: cfgString(s, scoreKeyAdapter),
			Data: cfgString(s, scoreKeyData), Out: cfgString(s, scoreKeyOut), BatchSize: cfgInt(s, scoreKeyBatchSize), MaxLength: cfgInt(s, scoreKeyMaxLength),
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "scored %d rows (%s) into %s: columns %v, mean %.4f, %d sequences truncated\n",
			res.Rows, res.Kind, cfgString(s, scoreKeyOut), res.Columns, res.Mean, res.Truncated)
		return nil
	},
}

// Keys of `gotune reward score`: the flags and the keys under
// `reward.score:` in a --config file.
const (
	scoreKeyModel      = "model"
	scoreKeySFTAdapter = "sft-adapter"
	scoreKeyAdapter    = "adapter"
	scoreKeyData       = "data"
	scoreKeyOut        = "out"
	scoreKeyBatchSize  = "batch-size"
	scoreKeyMaxLength  = "max-length"
)

// rewardWorldPairs gives cfg --world-pairs pairs of the built-in world's
// Train split and, without --eval-data, max(64, world pairs / 10) pairs of
// its Valid split.
func rewardWorldPairs(s string, cfg *reward.Config) error {
	n, err := worldCount(s, keyWorldPairs, reward.KeyData)
	if err != nil {
		return err
	}
	w := world.New(int64(cfgInt(s, keyWorldSeed)))
	cfg.Rows = w.Preferences(world.Train, n).Rows()
	if cfg.EvalData == "" {
		cfg.EvalRows = w.Preferences(world.Valid, max(64, n/10)).Rows()
	}
	return nil
}

func init() {
	d := reward.DefaultConfig()
	f := rewardCmd.Flags()
	f.String(reward.KeyBase, "models/base", "base model directory (Hugging Face layout)")
	f.String(reward.KeySFTAdapter, "", "SFT adapter merged into the base before training (the usual start of RLHF)")
	f.String(reward.KeyData, "", "preferences dataset (.arrow); default: the built-in world")
	f.Int(keyWorldPairs, 2000, "pairs of the built-in world to train on when --data is not given")
	f.Int(keyWorldSeed, defaultWorldSeed, "seed of the built-in world")
	f.String(reward.KeyEvalData, "", "held-out preferences dataset (.arrow)")
	f.Float64(reward.KeyHeldOut, d.HeldOut, "share of --data's prompts held out when --eval-data is not given")
	f.Int(reward.KeyEvalPairs, d.EvalMax, "held-out pairs evaluated at most (0: all)")
	f.Int(reward.KeyBatchSize, d.BatchSize, "pairs per micro-batch")
	f.Int(reward.KeyMaxLength, d.MaxLength, "tokens of prompt + completion at most; longer pairs are dropped (0: the model's positions)")
	f.Float64(reward.KeyEpochs, d.Epochs, "passes over the training pairs when --steps is 0")
	f.Float64(reward.KeyCenterRewards, d.Loss.CenterCoefficient, "weight of the reward-centering term c·mean((r_c + r_r)²) (0: off)")
	f.String(reward.KeyBaseDtype, d.BaseDtype, "how the frozen backbone's embeddings and linear weights are held while training: float32, or bfloat16 (half the memory; products in float32)")
	f.String(reward.KeyOut, "runs/default/reward", "output directory")
	f.Bool(reward.KeyResume, false, "continue from the checkpoint in --out")
	addFineTuneFlags(f, d.LoRA, d.Train, loopFlagUsage{steps: "optimizer updates (0: --epochs passes)", logEvery: usageLogEvery,
		seed: "seed of the data order, sampling, adapter and head init, and dropout"})
	bindFlags(rewardCmd, "reward")

	sf := rewardScoreCmd.Flags()
	sf.String(scoreKeyModel, "models/base", "base model directory")
	sf.String(scoreKeySFTAdapter, "", "SFT adapter the reward model was trained on (merged into the base first)")
	sf.String(scoreKeyAdapter, "runs/default/reward/adapter", "reward adapter directory")
	sf.String(scoreKeyData, "", "dataset to score (.arrow: instructions or preferences)")
	sf.String(scoreKeyOut, "", "dataset to write (may equal --data)")
	sf.Int(scoreKeyBatchSize, 8, "sequences per forward pass")
	sf.Int(scoreKeyMaxLength, 0, "tokens per sequence at most, longer ones keep their end (0: the model's positions)")
	bindFlags(rewardScoreCmd, "reward.score")
	rewardCmd.AddCommand(rewardScoreCmd)
	rootCmd.AddCommand(rewardCmd)
}
