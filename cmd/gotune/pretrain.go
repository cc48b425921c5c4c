package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/gotune/gotune/data/world"
	"github.com/gotune/gotune/model"
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
		cfg.Corpus, cfg.Preset, cfg.Tokenizer = cfgString(s, pretrain.KeyCorpus), cfgString(s, pretrain.KeyPreset), cfgString(s, pretrain.KeyTokenizer)
		cfg.VocabSize, cfg.SeqLen, cfg.BatchSize = cfgInt(s, pretrain.KeyVocabSize), cfgInt(s, pretrain.KeySeqLen), cfgInt(s, pretrain.KeyBatchSize)
		cfg.HeldOut, cfg.EvalMax = cfgFloat(s, pretrain.KeyHeldOut), cfgInt(s, pretrain.KeyEvalWindows)
		cfg.Out, cfg.Resume = cfgString(s, pretrain.KeyOut), cfgBool(s, pretrain.KeyResume)
		cfg.ModelSeed = uint64(cfgInt(s, pretrain.KeyModelSeed))
		cfg.Attention, cfg.GAUChunk = cfgString(s, pretrain.KeyAttention), cfgInt(s, pretrain.KeyGAUChunk)
		cfg.MaxPositions = cfgInt(s, pretrain.KeyMaxPositions)
		readTrainFlags(s, &cfg.Train)
		n := cfgInt(s, keyWorldDocs)
		if n < 0 {
			return fmt.Errorf("pretrain: %s must be ≥ 0 (0: --%s), got %d", keyWorldDocs, pretrain.KeyCorpus, n)
		}
		if n > 0 {
			cfg.Docs = world.New(int64(cfgInt(s, keyWorldSeed))).Corpus(n)
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
	f.String(pretrain.KeyCorpus, "", "corpus file: .jsonl with a \"text\" field per line, or plain text")
	f.Int(keyWorldDocs, 0, "use this many documents of the built-in world's corpus instead of --corpus")
	f.Int(keyWorldSeed, defaultWorldSeed, "seed of the built-in world")
	f.String(pretrain.KeyPreset, d.Preset, "model size: "+strings.Join(model.PresetNames, ", "))
	f.String(pretrain.KeyAttention, model.AttentionSoftmax, "attention: "+strings.Join(model.AttentionNames, ", ")+" (linear-time options at the preset's parameter count; see README)")
	f.Int(pretrain.KeyGAUChunk, 0, "chunk length of --attention gau's mixed form (default 256)")
	f.Int(pretrain.KeyMaxPositions, 0, "the preset's max_position_embeddings, the longest --seq-len it takes (default: the preset's own)")
	f.String(pretrain.KeyTokenizer, "", "tokenizer.json or a directory holding one (default: train a BPE tokenizer on the corpus)")
	f.Int(pretrain.KeyVocabSize, d.VocabSize, "vocabulary of a trained tokenizer (default: the preset's)")
	f.Int(pretrain.KeySeqLen, d.SeqLen, "tokens per sequence")
	f.Int(pretrain.KeyBatchSize, d.BatchSize, "sequences per micro-batch")
	addTrainFlags(f, d.Train, loopFlagUsage{steps: usageSteps, logEvery: usageLogEvery, seed: "seed of the data order"})
	f.Int(pretrain.KeyModelSeed, int(d.ModelSeed), "seed of the initial weights")
	f.Float64(pretrain.KeyHeldOut, d.HeldOut, "fraction of documents held out for evaluation")
	f.Int(pretrain.KeyEvalWindows, d.EvalMax, "held-out sequences evaluated at most (0: all)")
	f.String(pretrain.KeyOut, "models/base", "output model directory")
	f.Bool(pretrain.KeyResume, false, "continue from the checkpoint in --out")
	bindFlags(pretrainCmd, "pretrain")
	rootCmd.AddCommand(pretrainCmd)
}
