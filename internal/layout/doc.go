// Package layout holds no code; its test enforces the module's layers.
// Every package directory is placed in one layer (applications, stages,
// the shared fine-tuning layer, the model, tokenizer, data, file formats,
// internal helpers), and the non-test files of a package may import only
// the layers its own layer allows: a stage never imports another stage,
// the pipeline, serve or cmd; the model never imports data or anything
// above it; file formats know tensors and bytes, not the model. A package
// the table does not place fails the test, so a new package is placed
// deliberately.
//
// May import: nothing of the module (its test uses the standard library
// only).
package layout
