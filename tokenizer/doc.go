// Package tokenizer implements Hugging Face tokenizers (tokenizer.json)
// token for token, trains byte-level BPE tokenizers, and formats prompts
// and chat conversations with loss masks for fine-tuning.
//
// # Loading and encoding
//
// Load reads a tokenizer.json (or a directory with one, and the
// tokenizer_config.json beside it). The pipeline follows the reference
// implementation step by step:
//
//  1. added tokens are cut out of the raw text first (leftmost-longest,
//     honouring lstrip, rstrip, single_word and normalized);
//  2. each remaining piece is normalized (NFC, NFKC, Prepend, Replace,
//     Lowercase, Strip, ...);
//  3. the pre-tokenizer splits it into words (the GPT-2, Llama-3 and Qwen2
//     regexes are matched by hand, any other by a backtracking engine;
//     ByteLevel, Metaspace, Digits, Whitespace and Sequence are supported);
//  4. BPE merges each word (Sennrich et al. 2016), always merging the
//     adjacent pair of lowest merge rank, leftmost first, with byte
//     fallback, unknown-token fusing and ignore_merges;
//  5. the post-processor adds BOS/EOS (TemplateProcessing, Bert, Roberta).
//
// Decoding runs the tokenizer.json decoders (ByteLevel, Metaspace, Replace,
// ByteFallback, Fuse, Strip). Unsupported components are load errors, never
// silently skipped. The tests hold the package to golden encodings of the
// Qwen3, Llama-3 and Llama-2 (Mistral-shaped) tokenizers and to thousands of
// stress strings encoded by Hugging Face's own library.
//
// # Training
//
// Train learns a byte-level BPE vocabulary (bytes first, then special
// tokens, then merges) and writes, through Save, a tokenizer.json that
// Hugging Face tools read. NewByteLevel is the same with no merges.
//
// # Other formats
//
// Spec describes a BPE tokenizer in the terms other file formats store it
// (GGUF's tokenizer.ggml.* metadata: vocabulary, merges, the pre-tokenizer
// by name, special tokens), and FromSpec rebuilds the tokenizer from such
// a description.
//
// # Prompts and chats
//
// EncodePromptCompletion (with FormatAlpaca for Stanford Alpaca's prompts)
// and EncodeChat return token ids with a mask marking the completion
// tokens to count in the loss. Chat templates are "alpaca", "chatml",
// "llama3", or "jinja": the model's own chat_template, rendered by the
// Jinja subset in package jinja.
//
// May import: tokenizer/..., data/..., checkpoints/..., internal/blas and
// internal/kernel; never model/..., finetune, train, lora, a stage or an
// application.
package tokenizer
