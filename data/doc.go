// Package data holds gotune's datasets: their Arrow schemas, reading and
// writing them as Hugging Face–compatible Arrow IPC stream files, importing
// them from JSONL, JSON, CSV and Parquet with validation that names the bad
// row, and turning tokenized rows into fixed-shape training batches.
//
// # Files
//
// Every dataset is one Arrow IPC stream file, the format Hugging Face
// `datasets` writes for its cache and reads with `Dataset.from_file`, carrying
// the "huggingface" schema metadata so the features survive the round trip.
// Readers also accept the IPC file format and directories of shards (as
// written by `Dataset.save_to_disk`). Writes go to a temporary file in the
// destination directory and are renamed into place, so an interrupted write
// never leaves a half-written dataset behind.
//
// # Kinds
//
//   - instructions: instruction, input, output (+ system, source), or a
//     whole conversation as messages, a list of {role, content} (+ source)
//   - generated_instructions: the above + most_similar_instructions, avg_similarity_score
//   - preferences: prompt, chosen, rejected as text, or as lists of
//     {role, content} messages (+ margin, score_chosen, score_rejected,
//     ref_chosen_logps, ref_rejected_logps)
//   - prompts: prompt as text or messages
//
// # Batches
//
// Stages tokenize rows themselves into [Example]s (token ids plus a mask of
// completion tokens); a [Batcher] truncates, buckets by length, optionally
// packs, shuffles deterministically and collates them into [Batch]es of
// static shape. [StreamBatcher] does the same over a window of rows for
// datasets larger than memory.
//
// A minimal round trip:
//
//	rows := []data.Instruction{{Instruction: "Add 2 and 3.", Output: "5"}}
//	if err := data.WriteInstructions("sft.arrow", rows); err != nil { ... }
//	back, err := data.ReadInstructions("sft.arrow")
//
// May import: data/..., tokenizer/..., checkpoints/..., internal/blas and
// internal/kernel; never model/..., finetune, train, lora, a stage or an
// application.
package data
