// Package dpo is the direct preference optimisation stage (Rafailov et al.
// 2023, "Direct Preference Optimization: Your Language Model is Secretly a
// Reward Model"): it trains a LoRA adapter on preference pairs (a prompt, a
// chosen and a rejected completion) so that the policy raises the chosen
// completion's likelihood relative to a frozen reference model more than the
// rejected one's.
//
// # Policy and reference
//
// The policy starts from the SFT result, and the reference is the SFT model
// itself, without a second copy of the weights: the SFT adapter is merged
// into the base weights (W ← W + s·B·A, finetune.Model.MergeAdapter), the
// merged weights become the frozen base, and a fresh DPO adapter is trained
// on top. Its B matrix starts at zero, so at step 0 the policy equals the
// reference exactly and every implicit reward is 0. The reference pass is the
// same gorgonia graph with the DPO adapter switched off
// (lora.Adapter.SetEnabled(false)): nothing is rebuilt or copied. Because
// the DPO adapter applies to the merged weights, the merged model is written
// to <out>/base/ and recorded as the adapter's base_model_name_or_path, so
// the adapter loads (in PEFT or `gotune export`) onto the model it was
// trained on. Without an SFT adapter the policy starts from the base model.
//
// With PrecomputeRef (TRL's precompute_ref_log_probs), one forward pass with
// the adapter off runs over the whole dataset before training and stores the
// reference's summed completion log-probabilities as the Arrow columns
// ref_chosen_logps and ref_rejected_logps (data.AddFloat64Columns) in
// <out>/data/; training then runs no reference pass at all. Columns already
// present in a dataset (for example from an interrupted run) are used as
// they are. Rows dropped by truncation get NaN.
//
// # Batches
//
// A micro-batch holds P pairs as 2P rows of T tokens, one forward pass for
// both sides as TRL's concatenated_forward: rows 0…P−1 are the chosen
// completions and rows P…2P−1 the rejected ones of the same pairs, each row
// its prompt followed by its completion, right-padded (data.Collate). T is
// the smallest length bucket that holds the batch's longest row, so a
// program is compiled per bucket. The graph's fused head gives per-token
// log-probabilities of the targets (model.Graph.TargetLogProbs); the loss
// (Step.TokenLoss) sums them over completion tokens and enters the graph
// through model.Graph.FuncLoss, which hands the gradient back to every
// completion token.
//
// Rows are tokenized as the SFT stage tokenizes its examples, so that the
// reference scores completions as it was trained on them: a plain row is
// its prompt and completion encoded as one text after BOS, EOS appended,
// the completion starting at the first token the prompt's own encoding does
// not share (tokenizer.EncodePromptCompletion, as Stanford Alpaca's
// train.py masks); a conversational row (message lists) is rendered with the
// chat template, the completion being the answer's turn after the prompt
// rendered with the generation prompt (tokenizer.RenderChat, EncodeChat).
//
// # Losses
//
// LossConfig.Type picks the loss (TRL's loss_type names): sigmoid (the DPO
// loss; with label_smoothing ε > 0 it is conservative DPO, cDPO), robust
// (TRL's rDPO, the unbiased loss under label noise ε, which differs from
// cDPO in the sign of the ε term), hinge (SLiC), ipo (per-token averaged
// log-ratios) and simpo (reference-free, length-normalised, with target
// margin γ). SFTWeight adds the chosen completions' negative
// log-likelihood (TRL's rpo_alpha); DefaultConfig sets it to 0.2, see there
// why.
//
// # Metrics
//
// <out>/metrics.jsonl carries TRL's names: rewards/chosen, rewards/rejected,
// rewards/accuracies, rewards/margins, logps/chosen, logps/rejected,
// logits/chosen, logits/rejected (the mean output logit over the
// completion tokens) and loss, and the same on the held-out pairs with the
// eval_ prefix, every EvalEvery updates and at the end.
//
// # Output
//
//	<out>/adapter/        the DPO adapter (PEFT files) with the tokenizer
//	<out>/base/           the base with the SFT adapter merged (when one was given)
//	<out>/data/*.arrow    datasets the run made, imported or extended
//	<out>/state/          the resumable checkpoint
//	<out>/metrics.jsonl   train and eval metrics
//
// May import: finetune, train, lora, model/..., tokenizer/..., data/...,
// checkpoints/..., internal/blas and internal/kernel; never another stage,
// the pipeline, serve or cmd.
package dpo
