r"""Gradient checkpointing for the tiny GPT: keep activations only at segment boundaries and
recompute the inside of a segment during the backward pass.

With ``L`` blocks cut into segments of ``k``, the forward pass keeps only the input of each
segment (``L / k`` arrays of shape (B, T, C)) and drops every block's cache.  The backward pass
takes the segments from last to first, reruns the forward of one segment from its stored
input to rebuild the caches, and backpropagates through it.  Memory: ``L/k`` boundaries plus
one segment's caches; compute: one more forward pass of every block.  If a block's cache
were the size of its input the total would be smallest at ``k = sqrt(L)``; a transformer
block caches many times its input (``r`` times), which moves the best ``k`` to
``sqrt(L / r)``.

The gradients are the same as :func:`reference.gpt.loss_and_grads` bit for bit: the
recomputation repeats exactly the same operations.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.accounting import flops
from llmref.layers import layer_norm
from llmref.losses import cross_entropy
from llmref.params import flatten
from llmref.transformer import block, gpt
from llmref.transformer.gpt import GPTConfig


def held_bytes(*objects, exclude=()) -> int:
    """Bytes of the distinct array buffers reachable from ``objects`` (through tuples, lists
    and dicts), not counting buffers that back any array in ``exclude`` (the parameters).
    Views count once, with the array that owns the memory."""
    def root(a):
        while isinstance(a.base, np.ndarray):
            a = a.base
        return a

    skip = {id(root(a)) for a in exclude}
    seen, total, stack = set(), 0, list(objects)
    while stack:
        obj = stack.pop()
        if isinstance(obj, np.ndarray):
            r = root(obj)
            if id(r) not in seen and id(r) not in skip:
                seen.add(id(r))
                total += r.nbytes
        elif isinstance(obj, (tuple, list)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
    return total


def _blocks_forward(h, blocks, config, keep_caches):
    caches = []
    for p in blocks:
        h, c = gpt._block_forward(h, p, config)
        if keep_caches:
            caches.append(c)
    return h, caches


def loss_and_grads(ids: np.ndarray, targets: np.ndarray, params: dict, config: GPTConfig,
                   segment_size: int, ignore_index: int = -100):
    """``(loss, grads, stats)`` with checkpoints every ``segment_size`` blocks.

    ``stats["peak_activation_bytes"]``: the most activation memory held at any moment, measured
    by walking the arrays kept alive (:func:`held_bytes`; parameters, ids and targets are not
    activations and are not counted); ``stats["recompute_flops"]``: the
    extra forward work, from :mod:`reference.flops`.
    """
    _checks.positive("checkpoint.loss_and_grads", "segment_size", segment_size, integer=True)
    gpt._check_params(params, config, "checkpoint.loss_and_grads")   # once, as gpt.forward does
    B, T = ids.shape
    n_layers = len(params["blocks"])
    starts = list(range(0, n_layers, segment_size))
    param_leaves = list(flatten(params).values()) + [ids, targets]     # not activations

    h, embed_c = gpt.embed_forward(ids, params, config)
    boundaries = []                                     # the input of every segment
    for s in starts:
        boundaries.append(h)
        h, _ = _blocks_forward(h, params["blocks"][s:s + segment_size], config, False)
    head_w = gpt.head(params, config)
    hf, ln_c = layer_norm._forward(h, params["ln_f"], config.eps)
    loss, ce_c = cross_entropy.forward(hf @ head_w, targets, ignore_index)
    top = (embed_c, ln_c, hf, ce_c)
    peak = held_bytes(boundaries, top, exclude=param_leaves)

    dlogits = cross_entropy.backward(1.0, ce_c)["logits"]
    dh, d_head = gpt.head_backward(dlogits, hf, head_w)
    d_ln_f = layer_norm._backward(dh, ln_c)
    dh = d_ln_f.pop("x")
    d_blocks = [None] * n_layers
    for s in reversed(starts):
        seg = params["blocks"][s:s + segment_size]
        _, caches = _blocks_forward(boundaries[s // segment_size], seg, config, True)
        peak = max(peak, held_bytes(boundaries, top, caches, exclude=param_leaves))
        for i in reversed(range(len(seg))):
            d_blocks[s + i] = block._backward(dh, caches[i])
            dh = d_blocks[s + i].pop("x")
        del caches
        boundaries[s // segment_size] = None            # this boundary is no longer needed
    grads = {**gpt.embed_backward(dh, embed_c), "blocks": d_blocks, "ln_f": d_ln_f}
    gpt.add_head_grad(grads, d_head, config)
    recompute = flops.block(B, T, config.d_model, config.n_heads, config.hidden).forward
    stats = {"peak_activation_bytes": peak, "recompute_flops": recompute * n_layers,
             "segments": len(starts)}
    return loss, grads, stats


def plain_activation_bytes(ids, targets, params, config, ignore_index: int = -100) -> int:
    """Activation bytes the plain (non-checkpointed) forward and loss keep for the backward,
    measured the same way (parameters and the input ids and targets are not counted)."""
    logits, cache = gpt.forward(ids, params, config)
    _, ce_c = cross_entropy.forward(logits, targets, ignore_index)
    return held_bytes(cache[1:], ce_c, exclude=list(flatten(params).values()) + [ids, targets])
