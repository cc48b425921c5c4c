#!/usr/bin/python3
"""Reference outputs for model/reference_test.go and
model/generate/reference_test.go.

A plain LLaMA-architecture forward pass written from the equations (not
taken from any library), run in float64 on small random checkpoints; for
model_type qwen3 it adds what Qwen3's published definition adds: an
RMSNorm over the head dimension of every query and key head (q_norm,
k_norm, weights of shape (head_dim)) after the projections and before
RoPE, with an explicit head_dim that need not be hidden_size / heads. For
model_type deepseek_v2 and deepseek_v3 it runs DeepSeek's decoder as the
DeepSeek-V2 paper (arXiv 2405.04434, §2.1-2.2) and DeepSeek-V3 report
(arXiv 2412.19437, §2.1) define it and DeepSeek's published modeling code
structures it (deepseek_forward below). For gotune's own attention
options (config key gotune_attention) it runs, from the papers: causal
linear attention (Katharopoulos et al. 2020, "Transformers are RNNs",
eq. 6, phi = elu + 1, written as the masked quadratic form, no RoPE) in
place of softmax attention, and the Gated Attention Unit (Hua et al.
2022, "Transformer Quality in Linear Time", eq. 1-5 and the mixed chunk
form of its code 8: relu(q k / C)^2 inside a chunk, with RoPE, and the
linear kernel q' k' / C across chunks, by an exclusive cumulative sum of
per-chunk k'^T v) in place of attention + MLP (gau_forward below). For
each case it writes
testdata/reference/<case>/:

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
        linear = cfg.get("gotune_attention") == "linear"
        if not linear:  # linear attention has no positional encoding
            q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, T, D)
        k = k.repeat_interleave(H // KVH, dim=1)
        v = v.repeat_interleave(H // KVH, dim=1)
        if linear:
            att = linear_attention(q, k, v, causal)
        else:
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


def phi(x):
    """The feature map of Katharopoulos et al. eq. 7: elu(x) + 1."""
    return torch.nn.functional.elu(x) + 1


def linear_attention(q, k, v, causal):
    """q, k, v (B, heads, T, D): eq. 6 as its explicit masked quadratic form,
    V'_i = sum_{j<=i} phi(q_i).phi(k_j) v_j / sum_{j<=i} phi(q_i).phi(k_j)."""
    sim = (phi(q) @ phi(k).transpose(-1, -2)) * causal  # (B, H, T, T)
    return (sim @ v) / sim.sum(-1, keepdim=True)


def gau_forward(cfg, w, tokens):
    """Gated Attention Unit layers (no MLP): per layer, with silu as phi,
    U = phi(h Wu), V = phi(h Wv), Z = phi(h Wz), Q_j = Z * gamma_j + beta_j;
    the mixed chunk form: chunks of C positions, quadratic part
    relu(RoPE(Q_0) RoPE(Q_1)^T / C)^2 masked causally inside the chunk,
    linear part Q_2 (sum over earlier chunks of Q_3^T V) / C; out = U * A,
    x += out Wo."""
    B, T = tokens.shape
    C, S, n = cfg["hidden_size"], cfg["gotune_gau_shared_dim"], cfg["gotune_gau_chunk"]
    eps = cfg["rms_norm_eps"]
    inv = 1.0 / theta_of(cfg) ** (torch.arange(0, S, 2, dtype=torch.float64) / S)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = torch.cos(angles)[None], torch.sin(angles)[None]  # (1, T, S/2)
    silu = torch.nn.functional.silu
    G = -(-T // n)  # chunks; pad T to G*n with positions that read nothing
    pad = G * n - T
    x = w["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d.self_attn." % l
        h = rms_norm(x, w["model.layers.%d.input_layernorm.weight" % l], eps)
        u = silu(h @ w[p + "u_proj.weight"].T)
        v = silu(h @ w[p + "v_proj.weight"].T)
        z = silu(h @ w[p + "z_proj.weight"].T)
        qk = z[:, :, None, :] * w[p + "qk_gamma"].view(4, S) + w[p + "qk_beta"].view(4, S)  # (B, T, 4, S)
        quad_q, quad_k = rotate(qk[:, :, 0], cos, sin), rotate(qk[:, :, 1], cos, sin)
        lin_q, lin_k = qk[:, :, 2], qk[:, :, 3]

        def chunked(t):  # (B, T, d) -> (B, G, n, d)
            return torch.nn.functional.pad(t, (0, 0, 0, pad)).view(B, G, n, t.shape[-1])

        quad_q, quad_k, lin_q, lin_k, vg = map(chunked, (quad_q, quad_k, lin_q, lin_k, v))
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        kernel = torch.relu(quad_q @ quad_k.transpose(-1, -2) / n) ** 2 * causal  # (B, G, n, n)
        quadratic = kernel @ vg
        lin_kv = lin_k.transpose(-1, -2) @ vg / n  # (B, G, S, E) per chunk
        lin_kv = torch.cumsum(lin_kv, dim=1) - lin_kv  # exclusive: earlier chunks only
        linear = lin_q @ lin_kv
        a = (quadratic + linear).reshape(B, G * n, -1)[:, :T]
        x = x + (u * a) @ w[p + "o_proj.weight"].T
    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def rotate_interleaved(x, cos, sin):
    """DeepSeek's rotary embedding of x (B, T, heads, D): its published code
    first de-interleaves each head, (x0, x1, x2, x3, ...) -> (x0, x2, ...,
    x1, x3, ...), then applies rotate_half; that is a rotation of the pairs
    (x[2i], x[2i+1]) by angle i, returned in the de-interleaved layout."""
    B, T, Hh, D = x.shape
    x = x.reshape(B, T, Hh, D // 2, 2).transpose(4, 3).reshape(B, T, Hh, D)
    return rotate(x, cos, sin)


def route(cfg, h, w, p):
    """The MoE gate of one layer on h (N, C): returns the chosen experts
    (N, k), their weights (N, k), the smallest gap between the k-th
    and the (k+1)-th choice score (so that the fixture can avoid near-ties,
    where float32 and float64 could choose differently) and the scores."""
    E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    logits = h @ w[p + "mlp.gate.weight"].T
    if cfg["scoring_func"] == "softmax":
        scores = torch.softmax(logits, dim=-1)
    else:
        scores = torch.sigmoid(logits)
    method = cfg["topk_method"]
    N = h.shape[0]
    if method == "greedy":
        choice = scores
    else:
        G = cfg["n_group"]
        if method == "noaux_tc":
            # Selection sees score + correction bias; weights do not.
            choice = scores + w[p + "mlp.gate.e_score_correction_bias"][None, :]
            group_scores = choice.view(N, G, -1).topk(2, dim=-1)[0].sum(dim=-1)
        else:  # group_limited_greedy
            choice = scores
            group_scores = scores.view(N, G, -1).max(dim=-1).values
        group_idx = torch.topk(group_scores, k=cfg["topk_group"], dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores).scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(N, G, E // G).reshape(N, -1)
        choice = choice.masked_fill(~score_mask.bool(), 0.0)
    ranked = torch.sort(choice, dim=-1, descending=True)[0]
    gap = (ranked[:, k - 1] - ranked[:, k]).min().item() if k < E else 1.0
    idx = torch.topk(choice, k=k, dim=-1, sorted=False)[1]
    weight = scores.gather(1, idx)
    if k > 1 and cfg["norm_topk_prob"]:
        weight = weight / (weight.sum(dim=-1, keepdim=True) + 1e-20)
        if cfg["model_type"] == "deepseek_v3":
            weight = weight * cfg["routed_scaling_factor"]
    else:
        weight = weight * cfg["routed_scaling_factor"]
    return idx, weight, gap, scores


def yarn_mscale(scale, m):
    return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0


def yarn_rope(s, inv, dim, base, softmax_scale):
    """DeepSeek's YaRN (DeepseekV2YarnRotaryEmbedding and the softmax
    correction of DeepseekV2Attention): frequencies between the beta_fast
    and beta_slow correction dimensions blend linearly from unscaled to
    divided by factor; cos and sin are multiplied by
    mscale(factor, mscale) / mscale(factor, mscale_all_dim); the softmax
    scale by mscale(factor, mscale_all_dim)^2 when mscale_all_dim is set."""
    assert s["type"] == "yarn"
    factor = s["factor"]
    orig = s.get("original_max_position_embeddings", 4096)
    beta_fast, beta_slow = s.get("beta_fast", 32), s.get("beta_slow", 1)
    mscale, mscale_all_dim = s.get("mscale", 1), s.get("mscale_all_dim", 0)

    def corr(rot):
        return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

    low, high = max(math.floor(corr(beta_fast)), 0), min(math.ceil(corr(beta_slow)), dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float64) - low) / (high - low), 0, 1)
    keep = 1.0 - ramp
    inv = inv / factor * (1 - keep) + inv * keep
    magnitude = yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim)
    if mscale_all_dim:
        softmax_scale = softmax_scale * yarn_mscale(factor, mscale_all_dim) ** 2
    return inv, magnitude, softmax_scale


# DeepSeek builds q_a_layernorm and kv_a_layernorm with the RMSNorm default
# epsilon, not rms_norm_eps.
MLA_NORM_EPS = 1e-6


def seq_balance(cfg, idx, scores, B, T):
    """DeepSeek-V2's sequence-level balance loss with alpha 1, as MoEGate
    computes it (seq_aux): per sequence, ce_i = #choices of i / (T·k/E),
    loss = mean over sequences of sum_i ce_i · mean_t s_{i,t}."""
    E, k = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    ce = torch.zeros(B, E, dtype=torch.float64)
    ce.scatter_add_(1, idx.view(B, -1), torch.ones(B, T * k, dtype=torch.float64)).div_(T * k / E)
    return (ce * scores.view(B, T, E).mean(dim=1)).sum(dim=1).mean().item()


def deepseek_forward(cfg, w, tokens, gaps=None, balance=None):
    """tokens (B, T) -> logits (B, T, V) of a DeepSeek-V2/V3 decoder.

    Attention is MLA: queries from q_proj, or from q_a_proj -> q_a_layernorm
    -> q_b_proj when q_lora_rank is set; kv_a_proj_with_mqa gives the
    kv_lora_rank latent and one rope key shared by all heads; the latent,
    RMS-normalised by kv_a_layernorm, goes through kv_b_proj to per-head
    qk_nope keys and v_head_dim values; each query head is (nope, rope),
    each key head (its nope key, the shared rope key); scores are scaled by
    1/sqrt(qk_nope + qk_rope). The feed-forward is dense (intermediate_size)
    before first_k_dense_replace and off the moe_layer_freq grid, else the
    routed experts (route) plus the shared experts."""
    B, T = tokens.shape
    H, eps = cfg["num_attention_heads"], cfg["rms_norm_eps"]
    dn, dr, dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    pos = torch.arange(T, dtype=torch.float64)
    inv = 1.0 / theta_of(cfg) ** (torch.arange(0, dr, 2, dtype=torch.float64) / dr)
    softmax_scale, magnitude = (dn + dr) ** -0.5, 1.0
    yarn = cfg.get("rope_scaling")
    if yarn:
        inv, magnitude, softmax_scale = yarn_rope(yarn, inv, dr, theta_of(cfg), softmax_scale)
    angles = pos[:, None] * inv[None, :]
    dt = w["model.embed_tokens.weight"].dtype
    cos = (torch.cos(angles) * magnitude)[None, :, None, :].to(dt)
    sin = (torch.sin(angles) * magnitude)[None, :, None, :].to(dt)
    causal = torch.ones(T, T, dtype=torch.bool).tril()

    def swiglu_mlp(inp, prefix):
        gate, up = inp @ w[prefix + "gate_proj.weight"].T, inp @ w[prefix + "up_proj.weight"].T
        return (gate * torch.sigmoid(gate) * up) @ w[prefix + "down_proj.weight"].T

    x = w["model.embed_tokens.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        a = p + "self_attn."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        if cfg["q_lora_rank"] is None:
            q = h @ w[a + "q_proj.weight"].T
        else:
            q = rms_norm(h @ w[a + "q_a_proj.weight"].T, w[a + "q_a_layernorm.weight"], MLA_NORM_EPS) @ w[a + "q_b_proj.weight"].T
        q = q.view(B, T, H, dn + dr)
        q_nope, q_pe = q[..., :dn], q[..., dn:]
        ckv = h @ w[a + "kv_a_proj_with_mqa.weight"].T
        latent, k_pe = ckv[..., :r], ckv[..., r:].view(B, T, 1, dr)
        kv = (rms_norm(latent, w[a + "kv_a_layernorm.weight"], MLA_NORM_EPS) @ w[a + "kv_b_proj.weight"].T).view(B, T, H, dn + dv)
        k_nope, v = kv[..., :dn], kv[..., dn:]
        q_pe, k_pe = rotate_interleaved(q_pe, cos, sin), rotate_interleaved(k_pe, cos, sin)
        qs = torch.cat([q_nope, q_pe], dim=-1).transpose(1, 2)  # (B, H, T, dn+dr)
        ks = torch.cat([k_nope, k_pe.expand(B, T, H, dr)], dim=-1).transpose(1, 2)
        scores = (qs @ ks.transpose(-1, -2)) * softmax_scale
        scores = scores.masked_fill(~causal, float("-inf"))
        att = (torch.softmax(scores, dim=-1) @ v.transpose(1, 2)).transpose(1, 2).reshape(B, T, H * dv)
        x = x + att @ w[a + "o_proj.weight"].T

        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        E = cfg["n_routed_experts"]
        if E and l >= cfg["first_k_dense_replace"] and l % cfg["moe_layer_freq"] == 0:
            flat = h.reshape(B * T, -1)
            idx, weight, gap, scores = route(cfg, flat, w, p)
            if gaps is not None:
                gaps.append(gap)
            if balance is not None:
                balance.append(seq_balance(cfg, idx, scores, B, T))
            y = torch.zeros_like(flat)
            for e in range(E):
                rows, slot = (idx == e).nonzero(as_tuple=True)
                if len(rows):  # each expert runs on its own tokens only
                    y[rows] += weight[rows, slot, None] * swiglu_mlp(flat[rows], p + "mlp.experts.%d." % e)
            if cfg["n_shared_experts"]:
                y = y + swiglu_mlp(flat, p + "mlp.shared_experts.")
            x = x + y.view(B, T, -1)
        else:
            x = x + swiglu_mlp(h, p + "mlp.")

    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else w["lm_head.weight"]
    return x @ head.T


def make_deepseek_weights(cfg, gen):
    """Named float32 DeepSeek weights, drawn as make_weights draws LLaMA's;
    the noaux_tc correction bias ~ N(0, 0.1²)."""
    C, H, F, V = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"], cfg["vocab_size"]
    dn, dr, dv, r = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    rq = cfg["q_lora_rank"]

    def normal(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean).float()

    def linear(out, inp):
        return normal(out, inp, std=inp ** -0.5)

    w = {"model.embed_tokens.weight": normal(V, C)}
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        a = p + "self_attn."
        w[p + "input_layernorm.weight"] = normal(C, std=0.1, mean=1.0)
        if rq is None:
            w[a + "q_proj.weight"] = linear(H * (dn + dr), C)
        else:
            w[a + "q_a_proj.weight"] = linear(rq, C)
            w[a + "q_a_layernorm.weight"] = normal(rq, std=0.1, mean=1.0)
            w[a + "q_b_proj.weight"] = linear(H * (dn + dr), rq)
        w[a + "kv_a_proj_with_mqa.weight"] = linear(r + dr, C)
        w[a + "kv_a_layernorm.weight"] = normal(r, std=0.1, mean=1.0)
        w[a + "kv_b_proj.weight"] = linear(H * (dn + dv), r)
        w[a + "o_proj.weight"] = linear(C, H * dv)
        w[p + "post_attention_layernorm.weight"] = normal(C, std=0.1, mean=1.0)

        def mlp(prefix, width):
            w[prefix + "gate_proj.weight"] = linear(width, C)
            w[prefix + "up_proj.weight"] = linear(width, C)
            w[prefix + "down_proj.weight"] = linear(C, width)

        E = cfg["n_routed_experts"]
        if E and l >= cfg["first_k_dense_replace"] and l % cfg["moe_layer_freq"] == 0:
            w[p + "mlp.gate.weight"] = linear(E, C)
            if cfg["topk_method"] == "noaux_tc":
                w[p + "mlp.gate.e_score_correction_bias"] = normal(E, std=0.1)
            for e in range(E):
                mlp(p + "mlp.experts.%d." % e, cfg["moe_intermediate_size"])
            if cfg["n_shared_experts"]:
                mlp(p + "mlp.shared_experts.", cfg["n_shared_experts"] * cfg["moe_intermediate_size"])
        else:
            mlp(p + "mlp.", F)
    w["model.norm.weight"] = normal(C, std=0.1, mean=1.0)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = linear(V, C)
    return w


def deepseek_config(model_type, **moe):
    cfg = {"architectures": ["DeepseekV2ForCausalLM" if model_type == "deepseek_v2" else "DeepseekV3ForCausalLM"],
           "model_type": model_type, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3,
           "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 64, "max_position_embeddings": 64,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "rope_scaling": None, "tie_word_embeddings": False,
           "hidden_act": "silu", "attention_bias": False, "attention_dropout": 0.0,
           "q_lora_rank": None, "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 6,
           "n_routed_experts": 8, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 12,
           "first_k_dense_replace": 1, "moe_layer_freq": 1, "scoring_func": "softmax", "topk_method": "greedy",
           "n_group": None, "topk_group": None, "norm_topk_prob": False, "routed_scaling_factor": 1.0,
           "aux_loss_alpha": 0.001, "seq_aux": True, "ep_size": 1, "bos_token_id": 0, "eos_token_id": 1,
           "use_cache": True, "torch_dtype": "float32"}
    cfg.update(moe)
    return cfg


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

# DeepSeek cases, seeded apart from CASES (whose seeds follow their sorted
# order) so that adding one never changes another's fixture.
DEEPSEEK_CASES = {
    # DeepSeek-V2 (as V2-Lite): plain q_proj, softmax scores, greedy top-2
    # of 8 experts, unnormalised weights scaled by 2, one shared expert,
    # layer 0 dense; right padding.
    "deepseek_v2_mla_moe": dict(
        config=deepseek_config("deepseek_v2", routed_scaling_factor=2.0),
        batch=2, seq=10, pad=3, seed=2000),
    # DeepSeek-V3: compressed queries (q_lora_rank 12), sigmoid scores,
    # noaux_tc: choice by score + a non-zero correction bias among the 2
    # best of 4 groups (ranked by the sum of their two best), top-3 weights
    # normalised then scaled by 2.5; one shared expert, layer 0 dense.
    "deepseek_v3_mla_moe": dict(
        config=deepseek_config("deepseek_v3", q_lora_rank=12, scoring_func="sigmoid", topk_method="noaux_tc",
                               n_group=4, topk_group=2, num_experts_per_tok=3, norm_topk_prob=True,
                               routed_scaling_factor=2.5, num_nextn_predict_layers=1, rope_interleave=True,
                               architectures=["DeepseekV3ForCausalLM"]),
        batch=2, seq=10, pad=2, seed=3000),
    # DeepSeek-V2 with DeepSeek's YaRN on a rotary part of 8: over an
    # original context of 2048 the correction range is dimensions 1 to 3,
    # so the 4 frequencies are kept, kept, blended and divided by factor 4;
    # mscale ≠ mscale_all_dim, so cos/sin are scaled as well as the
    # softmax; top-1 routing, no shared expert.
    "deepseek_v2_yarn": dict(
        config=deepseek_config("deepseek_v2", qk_rope_head_dim=8, num_experts_per_tok=1, n_shared_experts=None,
                               rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048,
                                             "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8}),
        batch=2, seq=12, pad=0, seed=4000),
}

# gotune's own attention options, seeded apart from the others.
LINEAR_TIME_CASES = {
    # Causal linear attention with grouped KV heads, untied head, padding.
    "llama_linear_attention": dict(
        config={"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
                "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "vocab_size": 64, "max_position_embeddings": 64,
                "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
                "hidden_act": "silu", "gotune_attention": "linear"},
        batch=2, seq=12, pad=3, seed=5000, forward=forward, weights=make_weights),
    # Gated Attention Unit: expansion 64 = 2 x 32, shared width 16, chunk 5,
    # so that 13 positions make two whole chunks and a partial one.
    "llama_gau": dict(
        config={"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
                "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 1,
                "num_key_value_heads": 1, "vocab_size": 64, "max_position_embeddings": 64,
                "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
                "hidden_act": "silu", "gotune_attention": "gau", "gotune_gau_shared_dim": 16,
                "gotune_gau_chunk": 5},
        batch=2, seq=13, pad=2, seed=6000, forward=gau_forward, weights=None),
}


def make_gau_weights(cfg, gen):
    """GAU layers: u/v (E, C), z (S, C), o (C, E) ~ N(0, 1/in); scales
    1 + N(0, 0.3^2), offsets N(0, 0.3^2)."""
    C, E, V, S = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"], cfg["gotune_gau_shared_dim"]

    def normal(*shape, std=1.0, mean=0.0):
        return (torch.randn(*shape, generator=gen, dtype=torch.float64) * std + mean).float()

    w = {"model.embed_tokens.weight": normal(V, C)}
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        w[p + "input_layernorm.weight"] = normal(C, std=0.1, mean=1.0)
        w[p + "self_attn.u_proj.weight"] = normal(E, C, std=C ** -0.5)
        w[p + "self_attn.v_proj.weight"] = normal(E, C, std=C ** -0.5)
        w[p + "self_attn.z_proj.weight"] = normal(S, C, std=C ** -0.5)
        w[p + "self_attn.qk_gamma"] = normal(4 * S, std=0.3, mean=1.0)
        w[p + "self_attn.qk_beta"] = normal(4 * S, std=0.3)
        w[p + "self_attn.o_proj.weight"] = normal(C, E, std=E ** -0.5)
    w["model.norm.weight"] = normal(C, std=0.1, mean=1.0)
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = normal(V, C, std=C ** -0.5)
    return w


# The smallest gap between the last chosen and the first unchosen expert's
# choice score that a fixture may have: float32 must choose as float64.
MIN_ROUTING_GAP = 1e-3


def main():
    for i, (name, case) in enumerate(sorted(CASES.items())):
        write_case(name, case, forward, make_weights, 1000 + i)
    for name, case in sorted(DEEPSEEK_CASES.items()):
        write_case(name, case, deepseek_forward, make_deepseek_weights, case["seed"])
    for name, case in sorted(LINEAR_TIME_CASES.items()):
        write_case(name, case, case["forward"], case["weights"] or make_gau_weights, case["seed"])


def write_case(name, case, forward, make_weights, seed):
    """Builds, runs and stores one case (see the module docstring)."""
    cfg = case["config"]
    gen = torch.Generator().manual_seed(seed)
    w = make_weights(cfg, gen)
    B, T, V = case["batch"], case["seq"], cfg["vocab_size"]
    tokens = torch.randint(0, V, (B, T), generator=gen)
    targets = torch.randint(0, V, (B, T), generator=gen)
    weights = torch.ones(B, T, dtype=torch.float64)
    if case["pad"]:
        tokens[-1, -case["pad"]:] = 0
        weights[-1, -case["pad"]:] = 0
    weights[0, 0] = 0.5  # a fractional weight too

    balance = None
    if forward is deepseek_forward:
        gaps, balance = [], []
        logits = forward(cfg, {k: v.double() for k, v in w.items()}, tokens, gaps, balance)
        assert min(gaps) > MIN_ROUTING_GAP, "%s: routing near-tie %g; pick another seed" % (name, min(gaps))
    else:
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
    if balance:
        # Sum over MoE layers of the sequence-level balance loss, alpha 1.
        fixture["moe_balance"] = sum(balance)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(fixture, f, indent=1)
    with open(os.path.join(out, "fixture.bin"), "wb") as f:
        f.write(blob)
    print("%s: %d floats, loss %.6f" % (name, offset, loss.item()))


if __name__ == "__main__":
    main()
