"""PyTorch twins of the reference's composite components, built from torch's own modules and
fed the reference's parameter dicts.

``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` are PyTorch's implementations,
not ours: loading our weights into them (``torch.func.functional_call``, so gradients land on
our tensors) makes them an oracle for the whole forward and backward.  The same twin of the
tiny GPT is what the speed benchmark times.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import functional_call

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu,
               "gelu_tanh": lambda x: F.gelu(x, approximate="tanh")}


def tensors(tree, requires_grad: bool = True, dtype=torch.float64):
    """The reference's parameter tree as torch leaf tensors of the same tree shape."""
    if isinstance(tree, np.ndarray):
        return torch.tensor(tree, dtype=dtype, requires_grad=requires_grad)
    if isinstance(tree, dict):
        return {k: tensors(v, requires_grad, dtype) for k, v in tree.items()}
    return [tensors(v, requires_grad, dtype) for v in tree]


def grads(tree):
    """The ``.grad`` of every leaf, as NumPy, in the same tree shape (zeros where None)."""
    if isinstance(tree, torch.Tensor):
        return np.zeros(tuple(tree.shape)) if tree.grad is None else tree.grad.numpy()
    if isinstance(tree, dict):
        return {k: grads(v) for k, v in tree.items()}
    return [grads(v) for v in tree]


def mha_module(d_model: int, n_heads: int, dtype=torch.float64) -> nn.MultiheadAttention:
    return nn.MultiheadAttention(d_model, n_heads, dropout=0.0, bias=True, batch_first=True,
                                 dtype=dtype)


def mha_state(p: dict) -> dict:
    """Our ``{"qkv", "proj"}`` (input-major) as nn.MultiheadAttention's state (output-major)."""
    return {"in_proj_weight": p["qkv"]["W"].T, "in_proj_bias": p["qkv"]["b"],
            "out_proj.weight": p["proj"]["W"].T, "out_proj.bias": p["proj"]["b"]}


def causal_mask(T: int) -> torch.Tensor:
    """Boolean (T, T), True where attention is NOT allowed (torch's convention)."""
    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)


def mha(x, p, n_heads, causal=True, key_padding_mask=None):
    """Our multi-head attention computed by nn.MultiheadAttention."""
    module = mha_module(x.shape[-1], n_heads, x.dtype)
    mask = causal_mask(x.shape[1]) if causal else None
    return functional_call(module, mha_state(p), (x, x, x),
                           {"attn_mask": mask, "key_padding_mask": key_padding_mask,
                            "need_weights": False})[0]


def block_module(d_model, n_heads, d_ff, norm_first, activation, eps=1e-5,
                 dtype=torch.float64) -> nn.TransformerEncoderLayer:
    return nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=d_ff, dropout=0.0,
                                      activation=ACTIVATIONS[activation], layer_norm_eps=eps,
                                      batch_first=True, norm_first=norm_first, dtype=dtype)


def block_state(p: dict) -> dict:
    state = {f"self_attn.{k}": v for k, v in mha_state(p["attn"]).items()}
    state.update({
        "linear1.weight": p["ffn"]["fc"]["W"].T, "linear1.bias": p["ffn"]["fc"]["b"],
        "linear2.weight": p["ffn"]["proj"]["W"].T, "linear2.bias": p["ffn"]["proj"]["b"],
        "norm1.weight": p["ln1"]["gamma"], "norm1.bias": p["ln1"]["beta"],
        "norm2.weight": p["ln2"]["gamma"], "norm2.bias": p["ln2"]["beta"],
    })
    return state


def block(x, p, n_heads, norm_first=True, activation="gelu_tanh", causal=True,
          key_padding_mask=None, eps=1e-5):
    """Our transformer block computed by nn.TransformerEncoderLayer."""
    C = x.shape[-1]
    module = block_module(C, n_heads, p["ffn"]["fc"]["W"].shape[1], norm_first, activation, eps,
                          x.dtype)
    mask = causal_mask(x.shape[1]) if causal else None
    return functional_call(module, block_state(p), (x,),
                           {"src_mask": mask, "src_key_padding_mask": key_padding_mask,
                            "is_causal": causal})


class TorchGPT(nn.Module):
    """The tiny GPT as a standard PyTorch module (embedding, TransformerEncoderLayer blocks,
    final LayerNorm, head tied to the token table or not)."""

    def __init__(self, config, dtype=torch.float32):
        super().__init__()
        C = config.d_model
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, C, dtype=dtype)
        self.wpe = nn.Embedding(config.context_len, C, dtype=dtype)
        self.blocks = nn.ModuleList(
            block_module(C, config.n_heads, config.hidden, config.norm_first,
                         config.activation, config.eps, dtype)
            for _ in range(config.n_layers))
        self.ln_f = nn.LayerNorm(C, eps=config.eps, dtype=dtype)
        self.lm_head = None if config.tie_weights else nn.Linear(C, config.vocab_size,
                                                                 bias=False, dtype=dtype)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        T = ids.shape[1]
        h = self.wte(ids) + self.wpe(torch.arange(T))
        mask = causal_mask(T)
        for layer in self.blocks:
            h = layer(h, src_mask=mask, is_causal=True)
        h = self.ln_f(h)
        return h @ self.wte.weight.T if self.lm_head is None else self.lm_head(h)


def gpt_state(p: dict) -> dict:
    """Our GPT parameter tree as TorchGPT's state dict."""
    state = {"wte.weight": p["wte"]["W"], "wpe.weight": p["wpe"]["W"],
             "ln_f.weight": p["ln_f"]["gamma"], "ln_f.bias": p["ln_f"]["beta"]}
    for i, bp in enumerate(p["blocks"]):
        state.update({f"blocks.{i}.{k}": v for k, v in block_state(bp).items()})
    if "lm_head" in p:
        state["lm_head.weight"] = p["lm_head"]["W"].T
    return state


def gpt_logits(ids: torch.Tensor, p: dict, config) -> torch.Tensor:
    """Logits of TorchGPT run with our parameters (gradients reach the tensors in ``p``)."""
    module = TorchGPT(config, dtype=p["wte"]["W"].dtype)
    return functional_call(module, gpt_state(p), (ids,))


# ------------------------------------------------------------- the GPT with every option
# Written with torch's functional operations: F.layer_norm or F.rms_norm, F.silu, and
# F.scaled_dot_product_attention with grouped-query heads (enable_gqa); rotary embeddings
# in Hugging Face's split-half layout.  It takes the reference's parameter tree as it is.

def rotary(x, positions, theta):
    """``x`` (B, H, T, D) rotated at ``positions`` (B, T) by angles ``p * theta^(-2j/D)``."""
    D = x.shape[-1]
    inv_freq = 1.0 / theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    angle = positions[..., None].to(torch.float64) * inv_freq
    angle = torch.cat([angle, angle], dim=-1)[:, None]                # (B, 1, T, D)
    half = D // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * angle.cos().to(x.dtype) + rotated * angle.sin().to(x.dtype)


def _linear(x, p):
    return F.linear(x, p["W"].T, p.get("b"))


def _norm(x, p, kind, eps):
    if kind == "rms":
        return F.rms_norm(x, p["gamma"].shape, p["gamma"], eps)
    return F.layer_norm(x, p["gamma"].shape, p["gamma"], p.get("beta"), eps)


def attention_layer(x, p, n_heads, n_kv_heads, allowed, positions=None, theta=None):
    """Self-attention with fused or separate projections, grouped-query heads and optional
    rotary embeddings; ``allowed`` (B or 1, 1, T, S) boolean."""
    B, T, _ = x.shape
    if "qkv" in p:
        qkv = _linear(x, p["qkv"])
        D = qkv.shape[-1] // (n_heads + 2 * n_kv_heads)
        q, k, v = qkv.split([n_heads * D, n_kv_heads * D, n_kv_heads * D], dim=-1)
    else:
        q, k, v = (_linear(x, p[name]) for name in ("q", "k", "v"))
    D = q.shape[-1] // n_heads
    q = q.reshape(B, T, n_heads, D).transpose(1, 2)
    k = k.reshape(B, T, n_kv_heads, D).transpose(1, 2)
    v = v.reshape(B, T, n_kv_heads, D).transpose(1, 2)
    if theta is not None:
        q, k = rotary(q, positions, theta), rotary(k, positions, theta)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                         enable_gqa=n_kv_heads != n_heads)
    return _linear(out.transpose(1, 2).reshape(B, T, n_heads * D), p["proj"])


def feed_forward(x, p, activation):
    if activation == "swiglu":
        return _linear(F.silu(_linear(x, p["gate"])) * _linear(x, p["up"]), p["down"])
    return _linear(ACTIVATIONS[activation](_linear(x, p["fc"])), p["proj"])


def padded_positions(attention_mask, B, T):
    """Hugging Face's rule: ``cumsum(mask) - 1``, 0 on padding; ``0 .. T-1`` without a mask."""
    if attention_mask is None:
        return torch.arange(T).expand(B, T)
    return (attention_mask.long().cumsum(dim=1) - 1).clamp(min=0)


def causal_allowed(attention_mask, B, T):
    """(B, 1, T, T): causal and not padding.  A padding query that would have no key at all
    (SDPA gives NaN there) is let see every key instead: no real token reads its output."""
    allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None].expand(B, 1, T, T)
    if attention_mask is not None:
        allowed = allowed & attention_mask[:, None, None, :]
        allowed = allowed | ~allowed.any(dim=-1, keepdim=True)
    return allowed


def gpt_any_logits(ids, p, config, attention_mask=None, position_ids=None):
    """Logits of the GPT with any configuration (GPT-2 or Llama options), padding mask and
    position ids as :func:`llmref.transformer.gpt.forward` takes them."""
    B, T = ids.shape
    positions = padded_positions(attention_mask, B, T) if position_ids is None else position_ids
    allowed = causal_allowed(attention_mask, B, T)
    theta = config.rope_theta if config.position == "rope" else None
    h = p["wte"]["W"][ids]
    if config.position == "learned":
        h = h + p["wpe"]["W"][positions]
    for bp in p["blocks"]:
        def attend(a, bp=bp):
            return attention_layer(a, bp["attn"], config.n_heads, config.kv_heads, allowed,
                                   positions, theta)

        def norm(a, name, bp=bp):
            return _norm(a, bp[name], config.norm, config.eps)

        if config.norm_first:
            h = h + attend(norm(h, "ln1"))
            h = h + feed_forward(norm(h, "ln2"), bp["ffn"], config.activation)
        else:
            h = norm(h + attend(h), "ln1")
            h = norm(h + feed_forward(h, bp["ffn"], config.activation), "ln2")
    h = _norm(h, p["ln_f"], config.norm, config.eps)
    return h @ (p["wte"]["W"].T if config.tie_weights else p["lm_head"]["W"])
