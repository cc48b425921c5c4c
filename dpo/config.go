package dpo

import (
	"fmt"
	"slices"

	"github.com/gotune/gotune/data"
	"github.com/gotune/gotune/finetune"
	"github.com/gotune/gotune/lora"
	"github.com/gotune/gotune/tokenizer"
	"github.com/gotune/gotune/train"
)

// Keys of Config: the flags of `gotune dpo` and the keys under `dpo:` in a
// --config file. The adapter's and the loop's settings have lora's and
// train's keys.
const (
	KeyBase           = "base"
	KeySFTAdapter     = "sft-adapter"
	KeyData           = "data"
	KeyEvalData       = "eval-data"
	KeyEvalFraction   = "eval-fraction"
	KeyEvalPairs      = "eval-pairs"
	KeyOut            = "out"
	KeyResume         = "resume"
	KeyLossType       = "loss-type"
	KeyBeta           = "beta"
	KeyLabelSmoothing = "label-smoothing"
	KeySimPOGamma     = "simpo-gamma"
	KeyRPOAlpha       = "rpo-alpha"
	KeyPrecomputeRef  = "precompute-ref"
	KeyPairs          = "pairs"
	KeyMaxLen         = "max-len"
	KeyBuckets        = "buckets"
	KeyTruncation     = "truncation"
	KeyChatTemplate   = "chat-template"
	KeyBaseDtype      = finetune.KeyBaseDtype
)

// Config is a DPO run.
type Config struct {
	// Base is the base model directory (Hugging Face layout with its
	// tokenizer). "" takes the SFT adapter's base_model_name_or_path.
	Base string
	// SFTAdapter is the SFT result, a PEFT adapter directory merged into the
	// base before training: the policy starts from it and it is the
	// reference. "" starts from the base model.
	SFTAdapter string

	// Rows are the training pairs, written into <Out>/data/train.arrow.
	// When nil, Data is read.
	Rows []data.Preference
	// Data is the preference dataset: a gotune Arrow file (or directory of
	// shards), or any file `gotune data import` reads, in any shape it
	// knows (imported into <Out>/data/train.arrow).
	Data string
	// EvalRows are the held-out pairs, written into <Out>/data/eval.arrow.
	// When nil, EvalData is read.
	EvalRows []data.Preference
	// EvalData is the held-out preference dataset, read as Data. Without
	// EvalRows and EvalData a HeldOut fraction of the training pairs is
	// held out.
	EvalData string
	// HeldOut is the fraction of the training pairs held out for
	// evaluation when neither EvalRows nor EvalData is given.
	HeldOut float64
	// EvalMax caps the held-out pairs evaluated (0: all).
	EvalMax int

	// Out is the stage directory (adapter/, base/, data/, state/,
	// metrics.jsonl).
	Out string
	// Resume continues from the checkpoint in Out.
	Resume bool

	// Loss is the loss variant and its hyperparameters (β, …).
	Loss LossConfig
	// LoRA is the DPO adapter's configuration.
	LoRA lora.Config
	// Pairs is P, the preference pairs per micro-batch (2P rows per forward
	// pass); TRL's per_device_train_batch_size.
	Pairs int
	// MaxLen is the most tokens of a row, prompt and completion together
	// (TRL's max_length).
	MaxLen int
	// Truncation is how longer rows are cut: data.TruncateKeepStart (the end
	// of the completion goes; also "") or data.TruncateKeepEnd (the start
	// of the prompt goes).
	Truncation string
	// ChatTemplate renders conversational rows: tokenizer.TemplateChatML,
	// TemplateLlama3, TemplateAlpaca or TemplateJinja (the tokenizer's
	// chat_template). "" (or finetune.TemplateAuto) is SFT's default: the
	// tokenizer's chat_template, else Alpaca's prompt.
	ChatTemplate string
	// Buckets are the allowed row lengths T, ascending; a batch takes the
	// smallest that holds its longest row. Empty: powers of two from 32
	// up to MaxLen, and MaxLen.
	Buckets []int
	// PrecomputeRef computes the reference log-probabilities once before
	// training and stores them as dataset columns (TRL's
	// precompute_ref_log_probs), so training runs no reference pass.
	PrecomputeRef bool
	// BaseDtype is how the frozen base (merged with the SFT adapter) is
	// held while training: finetune.BaseFloat32 (also "") or
	// finetune.BaseBFloat16 (half the memory of its matrices; the merged
	// base written to <Out>/base stays float32).
	BaseDtype string

	// Train holds the optimisation settings; Train.Dir is set to Out.
	Train train.Config
}

// DefaultConfig is TRL's DPO loss (sigmoid, β = 0.1) with an SFT term of
// weight 0.2 on the chosen answers (TRL's rpo_alpha; Pang et al. 2024,
// "Iterative Reasoning Preference Optimization"), a rank-8 adapter on the
// attention projections, 4 pairs per micro-batch of at most 256 tokens per
// row, and a schedule sized for the built-in world and the tiny base model:
// 150 updates at a peak learning rate of 2·10⁻³ with 10 warmup updates and
// cosine decay, held-out metrics every 25 updates.
//
// The SFT term is there because, on the built-in world after SFT, plain DPO
// lowers the log-probabilities of the chosen answers along with the
// rejected ones (by 3–11 nats over 120 updates at learning rates of 10⁻³
// and above) and greedy answers get worse, while with the term the chosen
// answers keep their likelihood and the margin still grows.
func DefaultConfig() Config {
	tc := train.DefaultConfig()
	tc.Steps, tc.LR, tc.WarmupSteps, tc.MinLRRatio = 150, 2e-3, 10, 0.1
	tc.LogEvery, tc.EvalEvery, tc.CheckpointEvery = 5, 25, 50
	return Config{
		HeldOut: 0.05,
		Loss:    LossConfig{Type: Sigmoid, Beta: 0.1, SFTWeight: 0.2},
		LoRA:    lora.DefaultConfig(),
		Pairs:   4, MaxLen: 256, Truncation: data.TruncateKeepStart,
		BaseDtype: finetune.BaseFloat32,
		Train:     tc,
	}
}

// Validate reports the first setting that cannot be used, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Out == "":
		return fmt.Errorf("dpo: %s (the output directory) is not set", KeyOut)
	case finetune.CheckBaseDtype(c.BaseDtype) != nil:
		return fmt.Errorf("dpo: %w", finetune.CheckBaseDtype(c.BaseDtype))
	case c.Base == "" && c.SFTAdapter == "":
		return fmt.Errorf("dpo: %s (the base model directory) is not set, and there is no %s that names its base", KeyBase, KeySFTAdapter)
	case c.Rows == nil && c.Data == "":
		return fmt.Errorf("dpo: %s (a preference dataset) is not set and no pairs are given", KeyData)
	case c.Pairs <= 0:
		return fmt.Errorf("dpo: %s (pairs per micro-batch) must be positive, got %d", KeyPairs, c.Pairs)
	case c.MaxLen < 2:
		return fmt.Errorf("dpo: %s must be at least 2, got %d", KeyMaxLen, c.MaxLen)
	case !(c.HeldOut >= 0 && c.HeldOut < 1):
		return fmt.Errorf("dpo: %s must be in [0, 1), got %v", KeyEvalFraction, c.HeldOut)
	case c.EvalMax < 0:
		return fmt.Errorf("dpo: %s must be ≥ 0 (0: all), got %d", KeyEvalPairs, c.EvalMax)
	case c.Truncation != data.TruncateKeepStart && c.Truncation != data.TruncateKeepEnd && c.Truncation != "":
		return fmt.Errorf("dpo: %s %q is unknown (want %s or %s)", KeyTruncation, c.Truncation, data.TruncateKeepStart, data.TruncateKeepEnd)
	}
	switch c.ChatTemplate {
	case "", finetune.TemplateAuto, tokenizer.TemplateChatML, tokenizer.TemplateLlama3, tokenizer.TemplateAlpaca, tokenizer.TemplateJinja:
	default:
		return fmt.Errorf("dpo: %s %q is unknown (want %s, %s, %s or %s)", KeyChatTemplate, c.ChatTemplate,
			tokenizer.TemplateChatML, tokenizer.TemplateLlama3, tokenizer.TemplateAlpaca, tokenizer.TemplateJinja)
	}
	if len(c.Buckets) > 0 {
		if !slices.IsSorted(c.Buckets) || c.Buckets[0] < 2 {
			return fmt.Errorf("dpo: %s %v must be ascending and at least 2", KeyBuckets, c.Buckets)
		}
		if c.Buckets[len(c.Buckets)-1] < c.MaxLen {
			return fmt.Errorf("dpo: %s: the largest, %d, is below %s %d", KeyBuckets, c.Buckets[len(c.Buckets)-1], KeyMaxLen, c.MaxLen)
		}
	}
	if err := c.Loss.Validate(); err != nil {
		return err
	}
	if err := c.LoRA.Validate(); err != nil {
		return fmt.Errorf("dpo: %w", err)
	}
	t := c.Train
	t.Dir = c.Out
	if err := t.Validate(); err != nil {
		return fmt.Errorf("dpo: %w", err)
	}
	return nil
}

// buckets returns the allowed row lengths.
func (c Config) buckets() []int {
	if len(c.Buckets) > 0 {
		return c.Buckets
	}
	var b []int
	for t := 32; t < c.MaxLen; t *= 2 {
		b = append(b, t)
	}
	return append(b, c.MaxLen)
}

// Result summarises a finished run.
type Result struct {
	TrainPairs, EvalPairs int                   // pairs trained and evaluated on
	Truncation            data.TruncationReport // what fitting rows to MaxLen did (chosen and rejected rows)
	Eval                  *Evaluation           // the final held-out evaluation (nil without held-out pairs)
	AdapterDir            string                // where the DPO adapter was written
	BaseDir               string                // the base the adapter applies to (the merged SFT model, or Base)
}

// Evaluation is the policy measured on held-out pairs against the
// reference.
type Evaluation struct {
	Pairs   int
	Metrics Metrics // TRL's rewards/…, logps/… and loss
	// LogitsChosen and LogitsRejected are the mean output logit over the
	// completion tokens (TRL's logits/chosen and logits/rejected).
	LogitsChosen, LogitsRejected float64
	// PolicyPrefersChosen and ReferencePrefersChosen are the fractions of
	// pairs whose chosen completion is more likely than the rejected one
	// (summed log-probabilities) under the policy and under the reference.
	PolicyPrefersChosen, ReferencePrefersChosen float64
}

// Map returns the evaluation's metrics under TRL's names, prefixed.
func (e *Evaluation) Map(prefix string) map[string]float64 {
	m := e.Metrics.Map(prefix)
	m[prefix+"logits/chosen"] = e.LogitsChosen
	m[prefix+"logits/rejected"] = e.LogitsRejected
	return m
}
