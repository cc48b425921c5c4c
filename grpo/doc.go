// Package grpo trains a LoRA policy by reinforcement learning with
// verifiable rewards and no critic: GRPO (DeepSeekMath, Shao et al. 2024;
// DeepSeek-R1) and RLOO (Ahmadian et al. 2024). For every prompt it samples
// a group of completions with the generation engine, scores them with
// reward functions (exact checkers, an external command, a reward model),
// turns each group's rewards into advantages and updates the policy with
// the clipped token-level objective, optionally with a KL penalty to the
// reference policy (the same model with the adapter off). Options and
// metrics use the names of TRL's GRPOTrainer.
//
// May import: the shared fine-tuning layer (finetune, train, lora),
// model/..., tokenizer/..., data/..., checkpoints/... and internal/; never
// another stage, the pipeline, serve or cmd.
package grpo
