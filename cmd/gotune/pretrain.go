package main

import (
	"fmt"
	"math"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/pretrain"
	"github.com/spf13/cobra"
)

var pretrainCmd = &cobra.Command{
	Use:   "pretrain",
	Short: "Train a causal language model from scratch on a text corpus",
	Long: `Train every parameter of a LLaMA-architecture model of a preset size on a
corpus (--corpus: a .jsonl file of {"text": …} lines, or plain text with
blank-line separated documents, else one document per line), or on
--world-docs documents of the built-in world. Without --tokenizer a
byte-level BPE tokenizer of --vocab-size tokens is trained on the corpus.
The output directory is a Hugging Face model directory, plus metrics.jsonl
and the resumable checkpoint in state/.`,
	Args: cobra.NoArgs,
	RunE: func(cmd *cobra.Command, _ []string) error {
		const s = "pretrain"
		cfg := pretrain.DefaultConfig()
		cfg.Corpus, cfg.Preset, cfg.Tokenizer = cfgString(s, "corpus"), cfgString(s, "preset"), cfgString(s, "tokenizer")
		cfg.VocabSize, cfg.SeqLen, cfg.BatchSize = cfgInt(s, "vocab-size"), cfgInt(s, "seq-len"), cfgInt(s, "batch-size")
		cfg.HeldOut, cfg.EvalMax, cfg.Out, cfg.Resume = cfgFloat(s, "held-out"), cfgInt(s, "eval-windows"), cfgString(s, "out"), cfgBool(s, "resume")
		cfg.ModelSeed = uint64(cfgInt(s, "model-seed"))
		t := &cfg.Train
		t.Steps, t.GradAccum, t.LR, t.WarmupSteps = cfgInt(s, "steps"), cfgInt(s, "grad-accum"), cfgFloat(s, "lr"), cfgInt(s, "warmup")
		t.Schedule, t.MinLRRatio, t.WeightDecay, t.MaxGradNorm = cfgString(s, "schedule"), cfgFloat(s, "min-lr-ratio"), cfgFloat(s, "weight-decay"), cfgFloat(s, "max-grad-norm")
		t.Seed, t.LogEvery, t.EvalEvery, t.CheckpointEvery = uint64(cfgInt(s, "seed")), cfgInt(s, "log-every"), cfgInt(s, "eval-every"), cfgInt(s, "save-every")
		t.Quiet = cfgBool(s, "quiet")
		if n := cfgInt(s, "world-docs"); n > 0 {
			cfg.Docs = world.New(int64(cfgInt(s, "world-seed"))).Corpus(n)
		}
		res, err := pretrain.Run(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "pretrained %d parameters on %d tokens; held-out loss %.4f (perplexity %.3f) on %d tokens; model in %s\n",
			res.Params, res.TrainTokens, res.EvalLoss, math.Exp(res.EvalLoss), res.HeldOutTokens, cfg.Out)
		return nil
	},
}

func init() {
	d := pretrain.DefaultConfig()
	f := pretrainCmd.Flags()
	f.String("corpus", "", "corpus file: .jsonl with a \"text\" field per line, or plain text")
	f.Int("world-docs", 0, "use this many documents of the built-in world's corpus instead of --corpus")
	f.Int("world-seed", 1, "seed of the built-in world")
	f.String("preset", d.Preset, "model size: tiny, stories15M or small")
	f.String("tokenizer", "", "tokenizer.json or a directory holding one (default: train a BPE tokenizer on the corpus)")
	f.Int("vocab-size", 0, "vocabulary of a trained tokenizer (default: the preset's)")
	f.Int("seq-len", d.SeqLen, "tokens per sequence")
	f.Int("batch-size", d.BatchSize, "sequences per micro-batch")
	f.Int("grad-accum", d.Train.GradAccum, "micro-batches per update")
	f.Int("steps", d.Train.Steps, "optimizer updates")
	f.Float64("lr", d.Train.LR, "peak learning rate")
	f.Int("warmup", d.Train.WarmupSteps, "linear warmup updates")
	f.String("schedule", d.Train.Schedule, "learning-rate schedule: cosine, linear or constant")
	f.Float64("min-lr-ratio", d.Train.MinLRRatio, "schedule floor as a fraction of --lr")
	f.Float64("weight-decay", d.Train.WeightDecay, "AdamW decoupled weight decay")
	f.Float64("max-grad-norm", d.Train.MaxGradNorm, "clip the global gradient norm (0: off)")
	f.Int("seed", int(d.Train.Seed), "seed of the data order")
	f.Int("model-seed", int(d.ModelSeed), "seed of the initial weights")
	f.Float64("held-out", d.HeldOut, "fraction of documents held out for evaluation")
	f.Int("eval-windows", d.EvalMax, "held-out sequences evaluated at most (0: all)")
	f.Int("log-every", d.Train.LogEvery, "log metrics every N updates")
	f.Int("eval-every", d.Train.EvalEvery, "evaluate every N updates (and at the end)")
	f.Int("save-every", d.Train.CheckpointEvery, "checkpoint every N updates (and at the end)")
	f.String("out", "models/base", "output model directory")
	f.Bool("resume", false, "continue from the checkpoint in --out")
	f.Bool("quiet", false, "no progress bar")
	bindFlags(pretrainCmd, "pretrain")
	rootCmd.AddCommand(pretrainCmd)
}
