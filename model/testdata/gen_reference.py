#!/usr/bin/python3
"""Reference outputs for model/reference_test.go and
model/generate/reference_test.go.

A plain LLaMA-architecture forward pass written from the equations (not
taken from any library), run in float64 on small random checkpoints; for
model_type qwen3 it adds what Qwen3's published definition adds: an
RMSNorm over the head dimension of every query and key head (q_norm,
k_norm, weights of shape (head_dim)) after the projections and before
RoPE, with an explicit head_dim that need not be hidden_size / heads. For
each case it writes testdata/reference/<case>/:

  config.json    Hugging Face style config the Go test loads with LoadConfig
  fixture.json   batch shape, tokens, targets, loss weights, the expected
                 mean NLL (float64) and where each array lies in fixture.bin
  fixture.bin    little-endian float32: every weight (Hugging Face names),
                 then the expected logits (B*T, V) and log-probs (B*T)

Run with Debian's torch:  /usr/bin/python3 model/testdata/gen_reference.py
"""
import json
import math
import os
import struct

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def theta_of(cfg):
    if cfg.get("rope_theta"):
        return cfg["rope_theta"]
    return (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)


def scaling_of(cfg):
    for key in ("rope_scaling", "rope_parameters"):
        s = cfg.get(key) or {}
        kind = s.get("rope_type") or s.get("type")
        if kind and kind != "default":
            return s
    return None


def head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def inverse_frequencies(cfg):
    """theta^(-2i/D), then Llama-3 rescaling: long wavelengths divided by
    `factor`, short ones kept, a linear blend in between."""
    d = head_dim(cfg)
    inv = 1.0 / theta_of(cfg) ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    s = scaling_of(cfg)
    if s is None:
        return inv
    assert (s.get("rope_type") or s.get("type")) == "llama3"
    orig = s["original_max_position_embeddings"]
    low_wl, high_wl = orig / s["low_freq_factor"], orig / s["high_freq_factor"]
    wavelen = 2 * math.pi / inv
    smooth = (orig / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] - s["low_freq_factor"])
    blended = (1 - smooth) * inv / s["factor"] + smooth * inv
    out = torch.where(wavelen > low_wl, inv / s["factor"], blended)
    return torch.where(wavelen < high_wl, inv, out)


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rotate(x, cos, sin):
    """x (B, T, heads, D); pairs dimension i with i + D/2."""
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(cfg, w, tokens):
    """tokens (B, T) -> logits (B, T, V), in the weights' dtype."""
    B, T = tokens.shape
    C, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KVH = cfg.get("num_key_value_heads") or H
    D = head_dim(cfg)
    eps = cfg["rms_norm_eps"]
    bias = cfg.get("attention_bias", cfg["model_type"] == "qwen2")
    qk_norm = cfg["model_type"] == "qwen3"

    pos = torch.arange(T, dtype=torch.float64)
    angles = pos[:, None] * inverse_frequencies(cfg)[None, :]  # (T, D/2)
    dt = w["model.embed_tokens.weight"].dtype  # float64 for fixtures, float32 in bench_torch.py
    cos = torch.cos(angles)[None, :, None, :].to(dt)
    sin = torch.sin(angles)[None, :, None, :].to(dt)
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    x = w["model.embed_tokens.weight"][tokens]  # (B, T, C)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l

        def lin(inp, name, with_bias=False):
            y = inp @ w[p + name + ".weight"].T
            return y + w[p + name + ".bias"] if with_bias else y

        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = lin(h, "self_attn.q_proj", bias).view(B, T, H, D)
        k = lin(h, "self_attn.k_proj", bias).view(B, T, KVH, D)
        v = lin(h, "self_attn.v_proj", bias).view(B, T, KVH, D)
        if qk_norm:  # per head, over D, before RoPE
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, D)
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
        scores = scores.masked_fill(~causal, float("-inf"))
        att = torch.softmax(scores, dim=-1) @ v  # (B, H, T, D)
        att = att.transpose(1, 2).reshape(B, T, H * D)
        x = x + lin(att, "self_attn.o_proj")

        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate, up = lin(h, "mlp.gate_proj"), lin(h, "mlp.up_proj")
        x = x + lin(gate * torch.sigmoid(gate) * up, "mlp.down_proj")

    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def make_weights(cfg, gen):
    """Named float32 weights with O(1) activations: linear ~ N(0, 1/in),
    embeddings ~ N(0, 1), norms ~ 1 + N(0, 0.1²), biases ~ N(0, 0.1²),
    q/k norms ~ 1 + N(0, 0.3²)."""
    C, H, F, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["vocab_size"]
    KVH = cfg.get("num_key_value_heads") or H
    D = head_dim(cfg)
    bias = cfg.get("attention_bias", cfg["model_type"] == "qwen2")

    def normal(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean).float()

    w = {"model.embed_tokens.weight": normal(V, C)}
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = normal(C, std=0.1, mean=1.0)
        for name, out, inp in (("q_proj", H * D, C), ("k_proj", KVH * D, C), ("v_proj", KVH * D, C)):
            w[p + "self_attn." + name + ".weight"] = normal(out, inp, std=inp ** -0.5)
            if bias:
                w[p + "self_attn." + name + ".bias"] = normal(out, std=0.1)
        if cfg["model_type"] == "qwen3":
            w[p + "self_attn.q_norm.weight"] = normal(D, std=0.3, mean=1.0)
            w[p + "self_attn.k_norm.weight"] = normal(D, std=0.3, mean=1.0)
        w[p + "self_attn.o_proj.weight"] = normal(C, H * D, std=(H * D) ** -0.5)
        w[p + "post_attention_layernorm.weight"] = normal(C, std=0.1, mean=1.0)
        w[p + "mlp.gate_proj.weight"] = normal(F, C, std=C ** -0.5)
        w[p + "mlp.up_proj.weight"] = normal(F, C, std=C ** -0.5)
        w[p + "mlp.down_proj.weight"] = normal(C, F, std=F ** -0.5)
    w["model.norm.weight"] = normal(C, std=0.1, mean=1.0)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = normal(V, C, std=C ** -0.5)
    return w


CASES = {
    # Grouped-query attention, untied head, right padding in the second row.
    "gqa_untied": dict(
        config={"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
                "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 64,
                "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
                "hidden_act": "silu"},
        batch=2, seq=8, pad=3),
    # Multi-query attention, tied head, q/k/v biases (Qwen2: implied by model_type).
    "mqa_tied_bias": dict(
        config={"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 32,
                "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 1, "vocab_size": 64, "max_position_embeddings": 64,
                "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": True,
                "hidden_act": "silu"},
        batch=2, seq=8, pad=0),
    # Llama-3 RoPE scaling given as `rope_parameters` (theta inside), with
    # frequencies in all three regimes (kept, blended, divided by factor).
    "gqa_llama3": dict(
        config={"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
                "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                "num_key_value_heads": 1, "vocab_size": 64, "max_position_embeddings": 128,
                "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "hidden_act": "silu",
                "rope_parameters": {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                    "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                    "original_max_position_embeddings": 32}},
        batch=2, seq=12, pad=2),
    # Qwen3: per-head q/k RMSNorm, head_dim 16 ≠ hidden/heads = 8, GQA,
    # untied head, no bias; with the metadata keys of a real Qwen3 config.
    "qwen3_gqa_untied": dict(
        config={"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 32,
                "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 64,
                "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
                "rope_scaling": None, "tie_word_embeddings": False, "hidden_act": "silu",
                "attention_bias": False, "attention_dropout": 0.0, "sliding_window": None,
                "use_sliding_window": False, "max_window_layers": 2, "initializer_range": 0.02,
                "use_cache": True, "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2},
        batch=2, seq=10, pad=3),
}


def main():
    for i, (name, case) in enumerate(sorted(CASES.items())):
        cfg = case["config"]
        gen = torch.Generator().manual_seed(1000 + i)
        w = make_weights(cfg, gen)
        B, T, V = case["batch"], case["seq"], cfg["vocab_size"]
        tokens = torch.randint(0, V, (B, T), generator=gen)
        targets = torch.randint(0, V, (B, T), generator=gen)
        weights = torch.ones(B, T, dtype=torch.float64)
        if case["pad"]:
            tokens[-1, -case["pad"]:] = 0
            weights[-1, -case["pad"]:] = 0
        weights[0, 0] = 0.5  # a fractional weight too

        logits = forward(cfg, {k: v.double() for k, v in w.items()}, tokens)  # (B, T, V)
        logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[..., None])[..., 0]
        loss = -(weights * logp).sum() / weights.sum()

        out = os.path.join(HERE, "reference", name)
        os.makedirs(out, exist_ok=True)
        blob, index, offset = bytearray(), [], 0
        for key in sorted(w):
            t = w[key].contiguous()
            blob += struct.pack("<%df" % t.numel(), *t.flatten().tolist())
            index.append({"name": key, "shape": list(t.shape), "offset": offset})
            offset += t.numel()

        def put(t):
            nonlocal blob, offset
            t = t.float().contiguous()
            blob += struct.pack("<%df" % t.numel(), *t.flatten().tolist())
            at = {"shape": list(t.shape), "offset": offset}
            offset += t.numel()
            return at

        fixture = {
            "batch": B, "seq": T,
            "tokens": tokens.flatten().tolist(), "targets": targets.flatten().tolist(),
            "loss_weights": weights.flatten().tolist(),
            "tensors": index,
            "logits": put(logits.reshape(B * T, V)),
            "logprobs": put(logp.reshape(B * T)),
            "loss": loss.item(),
        }
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        with open(os.path.join(out, "fixture.json"), "w") as f:
            json.dump(fixture, f, indent=1)
        with open(os.path.join(out, "fixture.bin"), "wb") as f:
            f.write(blob)
        print("%s: %d floats, loss %.6f" % (name, offset, loss.item()))


if __name__ == "__main__":
    main()
