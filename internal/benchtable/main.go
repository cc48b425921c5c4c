// Command benchtable reads `go test -bench` output on standard input,
// passes it through, and ends with a table that sets each gotune figure
// beside the reference figure it is compared with (shared/perf/ANCHORS.md:
// PyTorch 1.13 on two threads, and llama.cpp), as a ratio. PyTorch's
// figures are those of the OpenBLAS kernels the benchmarks ran on: the
// SkylakeX column when OPENBLAS_CORETYPE is SkylakeX, else the default
// (Haswell) column. `go tool task bench` pipes into it.
//
// May import: the other internal helpers (internal/blas, internal/kernel,
// internal/benchutil); nothing of the module's upper layers.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
)

// anchor is one reference figure and the benchmark metric compared with it.
// A row whose reference is another gotune benchmark of the same run (vs)
// has no fixed figure; a row with neither shows its figure alone.
type anchor struct {
	bench  string  // benchmark name prefix (without the -N suffix)
	unit   string  // the metric unit reported by the benchmark
	what   string  // the workload in words
	ref    float64 // under the default (Haswell) kernels; 0: none
	refBy  string
	higher bool    // a higher figure is better
	refSKX float64 // under OpenBLAS's SkylakeX kernels; 0: the same as ref
	vs     string  // a benchmark of this run whose figure in unit is the reference (gotune's, or PyTorch's: torchPrefix)
}

// anchors are the figures of shared/perf/ANCHORS.md (stories15M shape, 2
// threads). Where ANCHORS gives a SkylakeX range, refSKX is its upper end.
var anchors = []anchor{
	{"BenchmarkStories15MFullFT", "tok/s", "full fine-tune step, 8×256", 598, "PyTorch", true, 838, ""},
	{"BenchmarkStories15MFullFT", "peakRSS-MiB", "full fine-tune peak RSS", 1960 / 1.048576, "PyTorch", false, 1980 / 1.048576, ""},
	{"BenchmarkStories15MFrozenBase", "tok/s", "frozen base, q/k/v/o trainable, 8×256", 715, "PyTorch LoRA", true, 1064, ""},
	{"BenchmarkStories15MForward", "tok/s", "forward only, 8×256", 3100, "PyTorch prefill (SkylakeX)", true, 3200, ""},
	{"BenchmarkLoRASFTStories15M", "tok/s", "LoRA SFT step r=8 q,k,v,o, 8×256", 715, "PyTorch", true, 1064, ""},
	{"BenchmarkLoRASFTStories15M", "peakRSS-MiB", "LoRA SFT peak RSS", 1850 / 1.048576, "PyTorch", false, 0, ""},
	{"BenchmarkFullFTStories15M", "tok/s", "full fine-tune step (sft package), 8×256", 598, "PyTorch", true, 838, ""},
	// The larger sizes, each run in a process of its own (bench-sizes).
	// ANCHORS.md gives qwen05's PyTorch figures under SkylakeX only: the
	// default column compares with them too, and says so. Per CPU-second,
	// PyTorch's reference is its tok/s over its two busy threads. Model
	// GFLOP/s (4·N per token) is set beside the GEMM peak of both cores
	// that ANCHORS.md measured (the upper end of its range).
	{"BenchmarkLoRASFTSmall", "tok/s", "LoRA SFT step, small (dim 768, 12 layers), 4×512", 201, "PyTorch", true, 274, ""},
	{"BenchmarkLoRASFTSmall", "tok/cpu-s", "LoRA SFT step, small, per CPU-second", 201.0 / 2, "PyTorch tok/s ÷ 2 threads", true, 274.0 / 2, ""},
	{"BenchmarkLoRASFTSmall", "peakRSS-MiB", "LoRA SFT peak RSS, small", 4600 / 1.048576, "PyTorch", false, 4685, ""},
	{"BenchmarkLoRASFTSmall", "model-GFLOP/s", "LoRA SFT model GFLOP/s, small (of GEMM peak)", 190, "GEMM peak", true, 355, ""},
	{"BenchmarkLoRASFTQwen05", "tok/s", "LoRA SFT step, qwen05 (Qwen2.5-0.5B shape), 1×512", 36.9, "PyTorch (SkylakeX)", true, 0, ""},
	{"BenchmarkLoRASFTQwen05", "tok/cpu-s", "LoRA SFT step, qwen05, per CPU-second", 36.9 / 2, "PyTorch (SkylakeX) tok/s ÷ 2 threads", true, 0, ""},
	{"BenchmarkLoRASFTQwen05", "peakRSS-MiB", "LoRA SFT peak RSS, qwen05", 5233, "PyTorch (SkylakeX)", false, 0, ""},
	{"BenchmarkLoRASFTQwen05", "model-GFLOP/s", "LoRA SFT model GFLOP/s, qwen05 (of GEMM peak)", 190, "GEMM peak", true, 355, ""},
	// The same steps on a base held in bfloat16 (--base-dtype bfloat16),
	// against PyTorch's float32 LoRA and against the float32 rows.
	{"BenchmarkLoRASFTSmallBF16", "tok/s", "LoRA SFT step, small, bfloat16 base", 201, "PyTorch", true, 274, ""},
	{"BenchmarkLoRASFTSmallBF16", "peakRSS-MiB", "LoRA SFT peak RSS, small, bfloat16 base", 4600 / 1.048576, "PyTorch", false, 4685, ""},
	{"BenchmarkLoRASFTSmallBF16", "tok/cpu-s", "LoRA SFT step, small, bfloat16 base, per CPU-second", 0, "", true, 0, "BenchmarkLoRASFTSmall"},
	{"BenchmarkLoRASFTQwen05BF16", "tok/s", "LoRA SFT step, qwen05, bfloat16 base", 36.9, "PyTorch (SkylakeX)", true, 0, ""},
	{"BenchmarkLoRASFTQwen05BF16", "peakRSS-MiB", "LoRA SFT peak RSS, qwen05, bfloat16 base", 5233, "PyTorch (SkylakeX)", false, 0, ""},
	{"BenchmarkLoRASFTQwen05BF16", "tok/cpu-s", "LoRA SFT step, qwen05, bfloat16 base, per CPU-second", 0, "", true, 0, "BenchmarkLoRASFTQwen05"},
	// The full fine-tune step of the small size (ANCHORS.md: 159 tok/s
	// [135..175] on the Haswell kernels, 227–244 on SkylakeX, ≈ 5.5 GB).
	{"BenchmarkFullFTSmall", "tok/s", "full fine-tune step, small, 4×512", 159, "PyTorch", true, 244, ""},
	{"BenchmarkFullFTSmall", "tok/cpu-s", "full fine-tune step, small, per CPU-second", 159.0 / 2, "PyTorch tok/s ÷ 2 threads", true, 244.0 / 2, ""},
	{"BenchmarkFullFTSmall", "peakRSS-MiB", "full fine-tune peak RSS, small", 5500 / 1.048576, "PyTorch", false, 0, ""},
	{"BenchmarkFullFTSmall", "model-GFLOP/s", "full fine-tune model GFLOP/s, small (6·N a token, of GEMM peak)", 190, "GEMM peak", true, 355, ""},
	// PyTorch measured in the same run (sft/testdata/torch_lora_step.py,
	// which bench-sizes runs after each size when Debian's python3-torch
	// is installed), under the same OPENBLAS_CORETYPE: shown only when
	// its line is in the input.
	{"BenchmarkLoRASFTStories15M", "tok/s", "LoRA SFT step, stories15M", 0, "", true, 0, "BenchmarkTorchLoRASFTStories15M"},
	{"BenchmarkLoRASFTStories15M", "tok/cpu-s", "LoRA SFT step, stories15M, per CPU-second", 0, "", true, 0, "BenchmarkTorchLoRASFTStories15M"},
	{"BenchmarkLoRASFTStories15M", "peakRSS-MiB", "LoRA SFT peak RSS, stories15M", 0, "", false, 0, "BenchmarkTorchLoRASFTStories15M"},
	{"BenchmarkLoRASFTSmall", "tok/s", "LoRA SFT step, small", 0, "", true, 0, "BenchmarkTorchLoRASFTSmall"},
	{"BenchmarkLoRASFTSmall", "tok/cpu-s", "LoRA SFT step, small, per CPU-second", 0, "", true, 0, "BenchmarkTorchLoRASFTSmall"},
	{"BenchmarkLoRASFTSmall", "peakRSS-MiB", "LoRA SFT peak RSS, small", 0, "", false, 0, "BenchmarkTorchLoRASFTSmall"},
	{"BenchmarkLoRASFTSmallBF16", "tok/s", "LoRA SFT step, small, bfloat16 base", 0, "", true, 0, "BenchmarkTorchLoRASFTSmall"},
	{"BenchmarkLoRASFTSmallBF16", "peakRSS-MiB", "LoRA SFT peak RSS, small, bfloat16 base", 0, "", false, 0, "BenchmarkTorchLoRASFTSmall"},
	{"BenchmarkLoRASFTQwen05", "tok/s", "LoRA SFT step, qwen05", 0, "", true, 0, "BenchmarkTorchLoRASFTQwen05"},
	{"BenchmarkLoRASFTQwen05", "tok/cpu-s", "LoRA SFT step, qwen05, per CPU-second", 0, "", true, 0, "BenchmarkTorchLoRASFTQwen05"},
	{"BenchmarkLoRASFTQwen05", "peakRSS-MiB", "LoRA SFT peak RSS, qwen05", 0, "", false, 0, "BenchmarkTorchLoRASFTQwen05"},
	{"BenchmarkFullFTSmall", "tok/s", "full fine-tune step, small", 0, "", true, 0, "BenchmarkTorchFullFTSmall"},
	{"BenchmarkFullFTSmall", "tok/cpu-s", "full fine-tune step, small, per CPU-second", 0, "", true, 0, "BenchmarkTorchFullFTSmall"},
	{"BenchmarkFullFTSmall", "peakRSS-MiB", "full fine-tune peak RSS, small", 0, "", false, 0, "BenchmarkTorchFullFTSmall"},
	{"BenchmarkLoRASFTQwen05BF16", "tok/s", "LoRA SFT step, qwen05, bfloat16 base", 0, "", true, 0, "BenchmarkTorchLoRASFTQwen05"},
	{"BenchmarkLoRASFTQwen05BF16", "peakRSS-MiB", "LoRA SFT peak RSS, qwen05, bfloat16 base", 0, "", false, 0, "BenchmarkTorchLoRASFTQwen05"},
	{"BenchmarkDPOStories15M/live", "pairs/s", "DPO step, 4 pairs × 256", 0.9, "PyTorch", true, 1.7, ""},
	{"BenchmarkDPOStories15M/precomputed", "pairs/s", "DPO step, 4 pairs × 256, reference log-probs precomputed", 0, "", true, 0, "BenchmarkDPOStories15M/live"},
	{"BenchmarkDecodeStories15M/batch1", "decode-tok/s", "greedy decode, batch 1, 128 after 32", 184, "PyTorch", true, 239, ""},
	{"BenchmarkDecodeStories15M/batch1", "decode-tok/s", "greedy decode, batch 1, 128 after 32", 445, "llama.cpp f32", true, 0, ""},
	{"BenchmarkDecodeStories15M/batch8", "decode-tok/s", "decode, batch 8 (tokens of all rows)", 445, "llama.cpp f32 batch 1", true, 0, ""},
	{"BenchmarkEncode", "MB/s", "tokenizer encode", 2, "target", true, 0, ""},
	// The mixture-of-experts preset of the same active size, against the
	// dense rows of the same run (no external reference figure).
	{"BenchmarkLoRASFTStories15MMoE", "tok/s", "LoRA SFT step, stories15M-moe (MLA + MoE)", 0, "", true, 0, "BenchmarkLoRASFTStories15M"},
	{"BenchmarkLoRASFTStories15MMoE", "active-Mparams", "active parameters per token, stories15M-moe", 0, "", true, 0, "BenchmarkLoRASFTStories15M"},
	{"BenchmarkLoRASFTStories15MMoE", "peakRSS-MiB", "LoRA SFT peak RSS, stories15M-moe", 0, "", false, 0, "BenchmarkLoRASFTStories15M"},
	{"BenchmarkDecodeStories15MMoE/batch1", "decode-tok/s", "greedy decode, batch 1, stories15M-moe", 0, "", true, 0, "BenchmarkDecodeStories15M/batch1"},
	{"BenchmarkDecodeStories15MMoE/batch8", "decode-tok/s", "decode, batch 8, stories15M-moe", 0, "", true, 0, "BenchmarkDecodeStories15M/batch8"},
	{"BenchmarkDecodeStories15M/batch1", "KV-bytes/tok", "KV cache per token, stories15M", 0, "", false, 0, ""},
	{"BenchmarkDecodeStories15MMoE/batch1", "KV-bytes/tok", "KV cache per token, stories15M-moe (MLA latent)", 0, "", false, 0, "BenchmarkDecodeStories15M/batch1"},
	// SFT on length-skewed rows, packed against padded to length buckets
	// in the same run: dataset tokens per second, padding not counted.
	{"BenchmarkSFTPackingStories15M/padded", "real-tok/s", "LoRA SFT epoch, 128 length-skewed rows, padded to buckets", 0, "", true, 0, ""},
	{"BenchmarkSFTPackingStories15M/packed", "real-tok/s", "the same rows packed (--packing), 8×256", 0, "", true, 0, "BenchmarkSFTPackingStories15M/padded"},
	{"BenchmarkSFTPackingStories15M/packed", "real-tok/cpu-s", "the same rows packed, per CPU-second", 0, "", true, 0, "BenchmarkSFTPackingStories15M/padded"},
	// The GGUF export decoded by llama.cpp (node-llama-cpp) and by gotune
	// in the same run; the last row is their ratio.
	{"BenchmarkLlamaCppDecodeStories15M", "gotune-decode-tok/s", "greedy decode of the GGUF export's model, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "llamacpp-decode-tok/s", "greedy decode of the GGUF export, llama.cpp 1 thread", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "llamacpp-2threads-decode-tok/s", "greedy decode of the GGUF export, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "gotune/llamacpp", "gotune over llama.cpp (1 thread), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "gotune/llamacpp-2threads", "gotune over llama.cpp (2 threads), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "gotune-prefill-tok/s", "prefill of 255 tokens to the first token, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "llamacpp-prefill-tok/s", "prefill of 255 tokens to the first token, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "prefill-gotune/llamacpp", "prefill, gotune over llama.cpp, same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "read-bound-tok/s", "decode bound: one read of the weights a token, both cores", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "gotune/read-bound", "gotune decode over that bound", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeStories15M", "llamacpp/read-bound", "llama.cpp (1 thread) decode over that bound", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "gotune-decode-tok/s", "greedy decode of the qwen05 GGUF export, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "llamacpp-decode-tok/s", "greedy decode of the qwen05 GGUF export, llama.cpp 1 thread", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "llamacpp-2threads-decode-tok/s", "greedy decode of the qwen05 GGUF export, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "gotune/llamacpp", "qwen05 decode, gotune over llama.cpp (1 thread), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "gotune/llamacpp-2threads", "qwen05 decode, gotune over llama.cpp (2 threads), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "gotune-prefill-tok/s", "qwen05 prefill of 256 tokens, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "llamacpp-prefill-tok/s", "qwen05 prefill of 256 tokens, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "prefill-gotune/llamacpp", "qwen05 prefill, gotune over llama.cpp, same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "read-bound-tok/s", "qwen05 decode bound: one read of the weights a token, both cores", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "gotune/read-bound", "qwen05 gotune decode over that bound", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05", "llamacpp/read-bound", "qwen05 llama.cpp (1 thread) decode over that bound", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "gotune-decode-tok/s", "greedy decode of the qwen05 bf16 GGUF export, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "llamacpp-decode-tok/s", "greedy decode of the qwen05 bf16 GGUF export, llama.cpp 1 thread", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "llamacpp-2threads-decode-tok/s", "greedy decode of the qwen05 bf16 GGUF export, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "gotune/llamacpp", "qwen05 bf16 decode, gotune over llama.cpp (1 thread), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "gotune/llamacpp-2threads", "qwen05 bf16 decode, gotune over llama.cpp (2 threads), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "gotune-prefill-tok/s", "qwen05 bf16 prefill of 256 tokens, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "llamacpp-prefill-tok/s", "qwen05 bf16 prefill of 256 tokens, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "prefill-gotune/llamacpp", "qwen05 bf16 prefill, gotune over llama.cpp, same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "read-bound-tok/s", "qwen05 bf16 decode bound: one read of the weights a token, both cores", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "gotune/read-bound", "qwen05 bf16 gotune decode over that bound", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05BF16", "llamacpp/read-bound", "qwen05 bf16 llama.cpp (1 thread) decode over that bound", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "gotune-decode-tok/s", "greedy decode of the qwen05 Q8_0 GGUF export, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "llamacpp-decode-tok/s", "greedy decode of the qwen05 Q8_0 GGUF export, llama.cpp 1 thread", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "llamacpp-2threads-decode-tok/s", "greedy decode of the qwen05 Q8_0 GGUF export, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "gotune/llamacpp", "qwen05 Q8_0 decode, gotune over llama.cpp (1 thread), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "gotune/llamacpp-2threads", "qwen05 Q8_0 decode, gotune over llama.cpp (2 threads), same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "gotune-prefill-tok/s", "qwen05 Q8_0 prefill of 256 tokens, gotune", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "llamacpp-prefill-tok/s", "qwen05 Q8_0 prefill of 256 tokens, llama.cpp 2 threads", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "prefill-gotune/llamacpp", "qwen05 Q8_0 prefill, gotune over llama.cpp, same run", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "read-bound-tok/s", "qwen05 Q8_0 decode bound: one read of the weights a token, both cores", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "gotune/read-bound", "qwen05 Q8_0 gotune decode over that bound", 0, "", true, 0, ""},
	{"BenchmarkLlamaCppDecodeQwen05Q8", "llamacpp/read-bound", "qwen05 Q8_0 llama.cpp (1 thread) decode over that bound", 0, "", true, 0, ""},
	// The two builds in one run: the pure-Go (static, cgo-free) build's
	// products and training steps against the OpenBLAS build's, and raw
	// GEMM against the machine's figure in ANCHORS.md (OpenBLAS through
	// PyTorch and cblas_sgemm: ≈ 100–190 GFLOP/s on its Haswell kernels,
	// 340–360 on SkylakeX).
	{"BenchmarkGEMM/openblas/512", "GFLOP/s", "GEMM 512³, OpenBLAS build", 0, "", true, 0, ""},
	{"BenchmarkGEMM/openblas/1024", "GFLOP/s", "GEMM 1024³, OpenBLAS build", 190, "machine (ANCHORS)", true, 355, ""},
	{"BenchmarkGEMM/openblas/2048", "GFLOP/s", "GEMM 2048³, OpenBLAS build", 190, "machine (ANCHORS)", true, 355, ""},
	{"BenchmarkGEMM/purego/512", "GFLOP/s", "GEMM 512³, pure-Go build", 0, "", true, 0, "BenchmarkGEMM/openblas/512"},
	{"BenchmarkGEMM/purego/1024", "GFLOP/s", "GEMM 1024³, pure-Go build", 0, "", true, 0, "BenchmarkGEMM/openblas/1024"},
	{"BenchmarkGEMM/purego/2048", "GFLOP/s", "GEMM 2048³, pure-Go build", 0, "", true, 0, "BenchmarkGEMM/openblas/2048"},
	{"BenchmarkGEMM/purego/2048", "GFLOP/s", "GEMM 2048³, pure-Go build", 190, "machine (ANCHORS)", true, 355, ""},
	{"BenchmarkGEMM/purego/2048", "GFLOP/cpu-s", "GEMM 2048³ per CPU-second, pure-Go build", 0, "", true, 0, "BenchmarkGEMM/openblas/2048"},
	{"BenchmarkLoRASFTStories15M/purego", "tok/cpu-s", "LoRA SFT step per CPU-second, pure-Go build", 0, "", true, 0, "BenchmarkLoRASFTStories15M/openblas"},
	{"BenchmarkLoRASFTStories15M/purego", "tok/s", "LoRA SFT step, pure-Go build", 0, "", true, 0, "BenchmarkLoRASFTStories15M/openblas"},
	{"BenchmarkFullFTStories15M/purego", "tok/s", "full fine-tune step (sft), pure-Go build", 0, "", true, 0, "BenchmarkFullFTStories15M/openblas"},
	{"BenchmarkGEMMKernels/gotune/2048", "GFLOP/s", "GEMM 2048³, OpenBLAS build on gotune's kernels", 0, "", true, 0, "BenchmarkGEMMKernels/openblas/2048"},
	{"BenchmarkLoRASFTStories15MKernels/gotune", "tok/s", "LoRA SFT step, OpenBLAS build on gotune's kernels", 0, "", true, 0, "BenchmarkLoRASFTStories15MKernels/openblas"},
	{"BenchmarkLoRASFTStories15MKernels/gotune", "tok/cpu-s", "the same per CPU-second", 0, "", true, 0, "BenchmarkLoRASFTStories15MKernels/openblas"},
	// The fused head's forward pass with ∂L/∂h (a frozen output embedding):
	// vocabulary blocks against whole rows of logits, in the same run.
	{"BenchmarkHeadFrozen/stories15M/blocks", "GFLOP/s", "fused head + ∂L/∂h, stories15M (2048 rows, V 32000), vocabulary blocks", 0, "", true, 0, "BenchmarkHeadFrozen/stories15M/rows"},
	{"BenchmarkHeadFrozen/qwen05/blocks", "GFLOP/s", "fused head + ∂L/∂h, qwen05 (512 rows, V 151936), vocabulary blocks", 0, "", true, 0, "BenchmarkHeadFrozen/qwen05/rows"},
	// The RL stages' rollouts and updates, GRPO beside PPO in the same run.
	{"BenchmarkPPORolloutStories15M", "gen-tok/s", "PPO rollout, 8 responses ≤ 32 tokens after 64", 0, "", true, 0, ""},
	{"BenchmarkGRPORolloutStories15M", "gen-tok/s", "GRPO rollout, 2 prompts × 4, ≤ 32 tokens after 64", 0, "", true, 0, "BenchmarkPPORolloutStories15M"},
	{"BenchmarkPPOUpdateStories15M", "tok/s", "PPO update, 8 × 96 tokens", 0, "", true, 0, ""},
	{"BenchmarkGRPOUpdateStories15M", "tok/s", "GRPO update, 8 × 96 tokens", 0, "", true, 0, "BenchmarkPPOUpdateStories15M"},
}

// torchPrefix begins the benchmark lines of the PyTorch comparators
// (sft/testdata/torch_lora_step.py); a row compared with one is left out
// when it did not run.
const torchPrefix = "BenchmarkTorch"

var line = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+\d+\s+(.*)$`)

// parse returns benchmark name → unit → value for the lines of r, copying
// them to w.
func parse(r io.Reader, w io.Writer) (map[string]map[string]float64, error) {
	out := map[string]map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		text := sc.Text()
		fmt.Fprintln(w, text)
		m := line.FindStringSubmatch(text)
		if m == nil {
			continue
		}
		fields := strings.Fields(m[3])
		vals := out[m[1]]
		if vals == nil {
			vals = map[string]float64{}
			out[m[1]] = vals
		}
		for i := 0; i+1 < len(fields); i += 2 {
			if v, err := strconv.ParseFloat(fields[i], 64); err == nil {
				// peakRSS_MiB and peakRSS-MiB are the same unit.
				vals[strings.ReplaceAll(fields[i+1], "_", "-")] = v
			}
		}
	}
	return out, sc.Err()
}

// table writes one row per anchor whose benchmark ran, against the
// SkylakeX figures when skx is set. A row without a reference figure (no
// fixed figure, and its vs benchmark absent from the run or none) shows
// "—" for the reference and the ratio; a row compared with a PyTorch
// benchmark of the run is left out when that benchmark is absent.
func table(w io.Writer, results map[string]map[string]float64, skx bool) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tgotune\tunit\treference\tby\tratio\t")
	rows := 0
	for _, a := range anchors {
		v, found := lookup(results, a.bench, a.unit)
		if !found {
			continue
		}
		ref, by := a.ref, a.refBy
		if skx && a.refSKX != 0 {
			ref = a.refSKX
			if !strings.Contains(by, "SkylakeX") {
				by += " (SkylakeX)"
			}
		}
		if a.vs != "" {
			x, ok := lookup(results, a.vs, a.unit)
			ref, by = x, "gotune "+strings.TrimPrefix(a.vs, "Benchmark")
			if strings.HasPrefix(a.vs, torchPrefix) {
				if !ok {
					continue
				}
				by = "PyTorch, this run"
			}
		}
		if ref == 0 {
			if by == "" {
				by = "—"
			}
			fmt.Fprintf(tw, "%s\t%.4g\t%s\t—\t%s\t—\t\n", a.what, v, a.unit, by)
			rows++
			continue
		}
		ratio := v / ref
		note := "×"
		if !a.higher {
			note = "× (lower is better)"
		}
		fmt.Fprintf(tw, "%s\t%.4g\t%s\t%.4g\t%s\t%.2f%s\t\n", a.what, v, a.unit, ref, by, ratio, note)
		rows++
	}
	tw.Flush()
	return rows
}

// lookup finds the figure in unit of benchmark bench (or of one of its
// sub-benchmarks).
func lookup(results map[string]map[string]float64, bench, unit string) (float64, bool) {
	// The benchmark itself, else its first sub-benchmark by name that
	// reports unit: map order would pick a different one each run.
	if x, ok := results[bench][unit]; ok {
		return x, true
	}
	var names []string
	for name, vals := range results {
		if _, ok := vals[unit]; ok && strings.HasPrefix(name, bench+"/") {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return 0, false
	}
	sort.Strings(names)
	return results[names[0]][unit], true
}

func main() {
	results, err := parse(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	fmt.Println()
	skx := strings.EqualFold(os.Getenv("OPENBLAS_CORETYPE"), "SkylakeX")
	column := "default (Haswell)"
	if skx {
		column = "SkylakeX"
	}
	fmt.Printf("gotune beside shared/perf/ANCHORS.md, PyTorch's %s column (reference figures measured on an idle machine; ratios > 1 mean gotune is ahead):\n", column)
	if table(os.Stdout, results, skx) == 0 {
		fmt.Println("(no benchmark with a reference figure ran)")
	}
}
