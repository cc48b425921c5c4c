#!/usr/bin/python3
"""PyTorch figures for the stories15M benchmarks of model/bench_test.go.

Same shapes and workloads (batch 8 x 256, full fine-tune / attention-only
training / forward with loss), measured on this machine so the Go figures
can be given as ratios from one environment. Uses the from-scratch forward
of gen_reference.py in float32 with 2 threads and plain SGD-free steps
(forward + backward only, like the Go benchmark).

  OPENBLAS_CORETYPE=Haswell /usr/bin/python3 model/testdata/bench_torch.py [full|frozen|forward] [steps] [threads]

Besides wall-clock tokens/s it prints CPU seconds per step (all threads),
which is less sensitive to other work on a shared machine.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_reference import forward, make_weights  # noqa: E402

CFG = {"model_type": "llama", "hidden_size": 288, "intermediate_size": 768, "num_hidden_layers": 6,
       "num_attention_heads": 6, "num_key_value_heads": 6, "vocab_size": 32000,
       "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False}


def peak_rss_mib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(1)
    w = {k: v.clone().requires_grad_(mode == "full" or (mode == "frozen" and any(
        m in k for m in ("q_proj", "k_proj", "v_proj", "o_proj")))) for k, v in make_weights(CFG, gen).items()}
    B, T, V = 8, 256, CFG["vocab_size"]
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)

    def step():
        if mode == "forward":
            with torch.no_grad():
                logits = forward(CFG, w, tokens)
                return torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1))
        logits = forward(CFG, w, tokens)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, V), targets.view(-1))
        loss.backward()
        for p in w.values():
            p.grad = None
        return loss

    step()  # warm-up
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    times.sort()
    cpu.sort()
    med = times[len(times) // 2]
    print("torch %s %s, %d threads: %.0f tok/s (median of %d steps, %.2f s/step, %.2f cpu-s/step), peak RSS %.0f MiB, OPENBLAS_CORETYPE=%s" % (
        torch.__version__, mode, threads, B * T / med, steps, med, cpu[len(cpu) // 2], peak_rss_mib(),
        os.environ.get("OPENBLAS_CORETYPE", "")))


if __name__ == "__main__":
    main()
