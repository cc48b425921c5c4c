"""Greedy decoding with a KV cache in PyTorch on random stories15M weights.

The same workload as BenchmarkDecodeStories15M (32-token prompt, 128 new
tokens, batch 1 and 8), for a fresh side-by-side figure on the machine at
hand. A plain LLaMA forward in the shape of Hugging Face's modeling_llama
(RMSNorm, rotate-half RoPE, SwiGLU), float32, 2 threads.

Run:  OPENBLAS_CORETYPE=Haswell /usr/bin/python3 model/generate/testdata/bench_decode_torch.py
(THREADS=1 in the environment for one thread.) Prints one line per batch
size: median decode tok/s (prefill excluded; best of five beside it), e2e
tok/s, and decode tokens per second of process CPU time (comparable with the
Go benchmark's decode-tok/cpu-s when other work shares the machine).
"""
import os
import time

import torch

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
torch.manual_seed(0)

C, F, L, H, V, EPS, THETA = 288, 768, 6, 6, 32000, 1e-5, 10000.0
D = C // H
PROMPT, NEW = 32, 128


def rand(*shape, std=0.02):
    return torch.randn(*shape) * std


embed = rand(V, C)
head = rand(V, C)
layers = [dict(q=rand(C, C), k=rand(C, C), v=rand(C, C), o=rand(C, C), g=rand(F, C), u=rand(F, C), d=rand(C, F),
               n1=torch.ones(C), n2=torch.ones(C)) for _ in range(L)]
norm = torch.ones(C)
inv = 1.0 / THETA ** (torch.arange(0, D, 2).float() / D)
pos = torch.arange(PROMPT + NEW).float()
ang = torch.outer(pos, inv)
cos, sin = torch.cat([ang.cos(), ang.cos()], -1), torch.cat([ang.sin(), ang.sin()], -1)


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rot(x):
    return torch.cat([-x[..., D // 2:], x[..., :D // 2]], -1)


@torch.no_grad()
def forward(tok, start, cache):
    B, T = tok.shape
    x = embed[tok]
    c, s = cos[start:start + T], sin[start:start + T]
    for i, l in enumerate(layers):
        h = rms(x, l["n1"])
        q = (h @ l["q"].T).view(B, T, H, D).transpose(1, 2)
        k = (h @ l["k"].T).view(B, T, H, D).transpose(1, 2)
        v = (h @ l["v"].T).view(B, T, H, D).transpose(1, 2)
        q, k = q * c + rot(q) * s, k * c + rot(k) * s
        if cache[i] is not None:
            k, v = torch.cat([cache[i][0], k], 2), torch.cat([cache[i][1], v], 2)
        cache[i] = (k, v)
        a = (q @ k.transpose(-1, -2)) / D ** 0.5
        if T > 1:
            a = a + torch.full((T, T), float("-inf")).triu(1)
        o = (a.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + o @ l["o"].T
        h = rms(x, l["n2"])
        x = x + (torch.nn.functional.silu(h @ l["g"].T) * (h @ l["u"].T)) @ l["d"].T
    return rms(x[:, -1], norm) @ head.T


def run(B):
    prompt = torch.randint(0, V, (B, PROMPT))
    cache = [None] * L
    t0 = time.perf_counter()
    nxt = forward(prompt, 0, cache).argmax(-1, keepdim=True)
    t1, c1 = time.perf_counter(), time.process_time()
    for i in range(NEW - 1):
        nxt = forward(nxt, PROMPT + i, cache).argmax(-1, keepdim=True)
    t2, c2 = time.perf_counter(), time.process_time()
    return B * (NEW - 1) / (t2 - t1), B * NEW / (t2 - t0), B * (NEW - 1) / (c2 - c1)


for B in (1, 8):
    run(B)  # warm-up
    res = sorted(run(B) for _ in range(5))
    dec, e2e, cpu = res[len(res) // 2]
    print(f"pytorch batch {B}: decode {dec:.0f} tok/s (best {res[-1][0]:.0f}), e2e {e2e:.0f} tok/s, "
          f"decode {cpu:.0f} tok/cpu-s")
