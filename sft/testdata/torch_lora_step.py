"""PyTorch comparator for sft/bench_test.go: one LoRA SFT (or full fine-tune)
training step of the shapes of perf/ANCHORS.md — stories15M (batch 8 x 256),
small (4 x 512) or the Qwen2.5-0.5B-shaped qwen05 (1 x 512) — on random
weights, LoRA r=8 (alpha 16) on q, k, v, o, AdamW on the trainable tensors
only. Prints the median step time as tokens/s, tokens per CPU-second and
the peak RSS, also as a `go test -bench` line for internal/benchtable.

Run beside the Go benchmark, under the same OPENBLAS_CORETYPE and load:

    OPENBLAS_CORETYPE=Haswell GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
        /usr/bin/python3 sft/testdata/torch_lora_step.py [--config small] [--full] [--steps 5]

Plain torch (Debian python3-torch 1.13), no transformers or peft: the model
is LLaMA's (RMSNorm, RoPE, SwiGLU, untied lm_head) written out here.
"""
import argparse
import math
import resource
import statistics
import time

import torch
import torch.nn.functional as F

# name: dim, layers, heads, KV heads, FFN hidden, vocab, batch, tokens, tied
# head, RoPE theta, RMSNorm eps (the presets of model/config.go).
CONFIGS = {
    "stories15M": (288, 6, 6, 6, 768, 32000, 8, 256, False, 10000.0, 1e-5),
    "small": (768, 12, 12, 4, 2048, 32000, 4, 512, False, 10000.0, 1e-5),
    "qwen05": (896, 24, 14, 2, 4864, 151936, 1, 512, True, 1e6, 1e-6),
}
DIM, LAYERS, HEADS, KV, HIDDEN, VOCAB, B, T, TIED, THETA, EPS = CONFIGS["stories15M"]
R, ALPHA = 8, 16


class LoRALinear(torch.nn.Module):
    def __init__(self, d_in, d_out, lora):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(d_out, d_in) * 0.02)
        self.lora = lora
        if lora:
            self.a = torch.nn.Parameter(torch.empty(R, d_in).uniform_(-1 / math.sqrt(d_in), 1 / math.sqrt(d_in)))
            self.b = torch.nn.Parameter(torch.zeros(d_out, R))

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + (ALPHA / R) * F.linear(F.linear(x, self.a), self.b)
        return y


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x, cos, sin):
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)


class Layer(torch.nn.Module):
    def __init__(self, lora):
        super().__init__()
        D = DIM // HEADS
        self.q, self.o = LoRALinear(DIM, DIM, lora), LoRALinear(DIM, DIM, lora)
        self.k, self.v = LoRALinear(DIM, KV * D, lora), LoRALinear(DIM, KV * D, lora)
        self.gate, self.up = LoRALinear(DIM, HIDDEN, False), LoRALinear(DIM, HIDDEN, False)
        self.down = LoRALinear(HIDDEN, DIM, False)
        self.n1, self.n2 = torch.nn.Parameter(torch.ones(DIM)), torch.nn.Parameter(torch.ones(DIM))

    def forward(self, x, cos, sin):
        h = rmsnorm(x, self.n1)
        D = DIM // HEADS
        q = rope(self.q(h).view(B, T, HEADS, D).transpose(1, 2), cos, sin)
        k = rope(self.k(h).view(B, T, KV, D).transpose(1, 2), cos, sin)
        v = self.v(h).view(B, T, KV, D).transpose(1, 2)
        if KV != HEADS:
            k = k.repeat_interleave(HEADS // KV, dim=1)
            v = v.repeat_interleave(HEADS // KV, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        att = att.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf")).softmax(-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, DIM))
        h = rmsnorm(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="full fine-tune instead of LoRA")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--config", choices=sorted(CONFIGS), default="stories15M")
    args = ap.parse_args()
    global DIM, LAYERS, HEADS, KV, HIDDEN, VOCAB, B, T, TIED, THETA, EPS
    DIM, LAYERS, HEADS, KV, HIDDEN, VOCAB, B, T, TIED, THETA, EPS = CONFIGS[args.config]
    torch.set_num_threads(2)
    torch.manual_seed(0)
    lora = not args.full
    emb = torch.nn.Parameter(torch.randn(VOCAB, DIM) * 0.02)
    head = emb if TIED else torch.nn.Parameter(torch.randn(VOCAB, DIM) * 0.02)
    norm = torch.nn.Parameter(torch.ones(DIM))
    layers = torch.nn.ModuleList(Layer(lora) for _ in range(LAYERS))
    params = [emb, norm] + ([] if TIED else [head]) + list(layers.parameters())
    if lora:
        for p in params:
            p.requires_grad_(False)
        trainable = [p for l in layers for m in (l.q, l.k, l.v, l.o) for p in (m.a, m.b)]
        for p in trainable:
            p.requires_grad_(True)
    else:
        trainable = params
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=0)
    D = DIM // HEADS
    inv = 1.0 / (THETA ** (torch.arange(0, D, 2).float() / D))
    ang = torch.outer(torch.arange(T).float(), inv)
    cos, sin = ang.cos(), ang.sin()
    tokens = torch.randint(0, VOCAB, (B, T))
    targets = torch.randint(0, VOCAB, (B, T))

    def step():
        x = F.embedding(tokens, emb)
        for l in layers:
            x = l(x, cos, sin)
        logits = F.linear(rmsnorm(x, norm), head)
        loss = F.cross_entropy(logits.view(-1, VOCAB), targets.view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    times, cpu = [], []
    for _ in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    med = statistics.median(times)
    print(f"{args.config} {'full' if args.full else 'lora'}: {B * T / med:.1f} tok/s (median of {args.steps}, "
          f"min {B * T / max(times):.1f}, max {B * T / min(times):.1f}), "
          f"{B * T / statistics.median(cpu):.1f} tok/cpu-s, peak RSS {rss:.0f} MiB")
    # The same figures as a `go test -bench` line, which internal/benchtable
    # sets beside gotune's benchmark of the same name without "Torch".
    name = {"stories15M": "Stories15M", "small": "Small", "qwen05": "Qwen05"}[args.config]
    print(f"BenchmarkTorch{'FullFT' if args.full else 'LoRASFT'}{name} {args.steps} {med * 1e9:.0f} ns/op "
          f"{B * T / med:.1f} tok/s {B * T / statistics.median(cpu):.1f} tok/cpu-s {rss:.0f} peakRSS-MiB")


if __name__ == "__main__":
    main()
