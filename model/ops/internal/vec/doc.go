// Package vec holds the AVX2 kernels of the softmax and head passes
// (exp of a shifted slice with its sums; maximum and sum) and of SwiGLU's
// two passes (σ on the same exp, fused with the products); the widening of
// bfloat16 weights is internal/bf16's. Callers check
// Available and handle lengths that are not a multiple of 8.
//
// May import: model/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never data/..., finetune, train, lora, a stage or an
// application.
package vec
