// Package checkpoints groups the file formats gotune reads and writes:
// tensors and bytes only, never the model. Its subpackages are
// safetensors (the tensor file format, sharded sets included) and
// atomicfile (writes that replace a file whole or not at all). Turning a
// Hugging Face directory into model weights is the model's job (model/hf).
//
// May import: checkpoints/..., internal/blas and internal/kernel; never
// model/..., tokenizer/..., data/... or anything above (file formats know
// tensors and bytes, not the model).
package checkpoints
