// Package ops holds the custom gorgonia operations the decoders are built
// from: token embedding, RMSNorm, rotary position embedding (whole heads,
// or the interleaved rotary part of DeepSeek's heads), causal
// grouped-query attention (with its own value width for multi-head latent
// attention, whose keys MLAKeys and HeadSlice assemble), SwiGLU, linear
// layers, the residual add, the mixture of experts (MoE, routing by
// Router, experts run on their routed tokens only), the fused
// language-model head (lm_head + log-softmax + gather, chunked over tokens)
// and losses written as plain Go functions.
//
// Every operation has a hand-written forward and backward pass (gorgonia's
// Op + SDOp; SymDiff emits the backward as further custom nodes), works for
// float32 and float64 (the float64 path is what finite-difference gradient
// checks run on), and writes its results into buffers it owns and reuses
// from step to step: gorgonia's tape machine allocates every intermediate
// afresh on each run, and first-touching fresh memory is a large share of a
// training step on small machines.
//
// Rows are tokens: activations are 2-D (N, ·) with N = B·T, row n holding
// batch element n / T at position n % T. Linear weights use the Hugging Face
// layout [out, in], so y = x·Wᵀ.
//
// # Sharing rules the operations rely on
//
// A node's value is a buffer owned by its operation and rewritten on every
// run. Gorgonia may overwrite it in place once the node is dead (no later
// reader), which is harmless because the operation rewrites it completely
// the next time. State an operation keeps for its own backward pass
// (softmax probabilities, log-sum-exps, gradients computed during the
// forward pass) lives in private buffers never handed to gorgonia, and
// every backward node takes the forward node as a child so that it runs
// after it in the same program.
//
// # Gorgonia operations avoided
//
// Gorgonia v0.9.18 gets several building blocks of this model wrong (the
// model package keeps a regression test for each): SoftMax and LogSoftMax
// of one node hash alike and are merged; InverseSqrt has a wrong gradient
// (it would sit inside RMSNorm); ByIndices has a wrong gradient except for
// 2-D inputs along axis 0 (the embedding and target gathers); LogSumExp
// does not build. The operations here compute these pieces themselves.
//
// May import: model/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never data/..., finetune, train, lora, a stage or an
// application.
package ops
