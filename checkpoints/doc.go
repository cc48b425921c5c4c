// Package checkpoints groups the file formats gotune reads and writes:
// tensors and bytes only, never the model. Its subpackages are
// safetensors (the tensor file format, sharded sets included) and
// atomicfile (writes that replace a file whole or not at all). Turning a
// Hugging Face directory into model weights is the model's job (model/hf).
//
// May import: the standard library only (its subpackages import each
// other and the standard library).
package checkpoints
