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

$$ \text{memory} \approx \frac{L}{k}\,BTC + k\,r\,BTC, \qquad
   k^\ast = \sqrt{L / r} $$

The gradients are the same as `gpt.loss_and_grads` bit for bit: the recomputation repeats
exactly the same operations.  Shapes: ``ids`` and ``targets`` (B, T) ints; parameters as in
`gpt`; the computation runs in the parameters' dtype.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.accounting import flops
from llmref.losses import cross_entropy
from llmref.params import flatten
from llmref.transformer import block, gpt
from llmref.transformer.gpt import GPTConfig


@contract(example=lambda rng: {"objects": [rng.standard_normal((2, 3)),
                                           {"a": rng.standard_normal(4), "n": 3}],
                               "exclude": [rng.standard_normal(2)]},
          lenient={"objects": ("empty",), "exclude": ("empty",)})   # nothing held: 0 bytes
def held_bytes(objects, exclude=()) -> int:
    """Bytes of the distinct array buffers reachable from ``objects``, not counting buffers
    that back any array in ``exclude`` (the parameters).

    Views count once, with the array that owns the memory; anything that is not an array, a
    tuple, a list or a dict (numbers, configurations) is skipped.

    Parameters
    ----------
    objects : ndarray, list, tuple or dict
        What is held: arrays, and tuples, lists and dicts of them, nested to any depth
        (caches, for example).
    exclude : list or tuple of ndarray, default ()
        Arrays whose buffers are not counted.

    Returns
    -------
    n : int
        Bytes.

    Raises
    ------
    TypeError
        If ``objects`` is not an array, list, tuple or dict, ``exclude`` not a list or tuple,
        or ``exclude`` holds something other than arrays.
    """
    where = "checkpoint.held_bytes"
    if not isinstance(objects, (np.ndarray, list, tuple, dict)):
        raise TypeError(f"{where}: argument 'objects' must be an array, a list, a tuple or a "
                        f"dict of them, got {_checks._describe(objects)}")
    if not isinstance(exclude, (list, tuple)):
        raise TypeError(f"{where}: argument 'exclude' must be a list or tuple, "
                        f"got {_checks._describe(exclude)}")
    for i, a in enumerate(exclude):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{where}: argument exclude[{i}] must be a NumPy array, "
                            f"got {_checks._describe(a)}")
    return _held_bytes([objects], exclude)


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _held_bytes(objects, exclude) -> int:
    skip = {id(_root(a)) for a in exclude}
    seen, total, stack = set(), 0, list(objects)
    while stack:
        obj = stack.pop()
        if isinstance(obj, np.ndarray):
            r = _root(obj)
            if id(r) not in seen and id(r) not in skip:
                seen.add(id(r))
                total += r.nbytes
        elif isinstance(obj, (tuple, list)):
            stack.extend(obj)
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, _checks._Guarded):       # a cache made in the debug mode
            stack.append(obj.cache)
    return total


def _blocks_forward(h, blocks, config, keep_caches, extra):
    caches = []
    for p in blocks:
        h, c = gpt._block_forward(h, p, config, **extra)
        if keep_caches:
            caches.append(c)
    return h, caches


def _example(rng) -> dict:
    config = GPTConfig(vocab_size=11, context_len=8, d_model=8, n_heads=2, n_layers=3)
    ids = rng.integers(0, 11, size=(2, 8))
    return {"ids": ids, "targets": np.roll(ids, -1, axis=1),
            "params": gpt.init(config, rng), "config": config, "ignore_index": -100}


@contract(example=lambda rng: {**_example(rng), "segment_size": 2},
          lenient={"ignore_index": ("negative", "zero")})   # any int can mark padding
def loss_and_grads(ids: np.ndarray, targets: np.ndarray, params: dict, config: GPTConfig,
                   segment_size: int, ignore_index: int = -100):
    r"""The GPT's mean next-token loss and gradients (as `gpt.loss_and_grads`), keeping
    activations only at the input of every ``segment_size``-th block and recomputing each
    segment's caches in the backward pass.

    $$ h_{s} \text{ kept for } s = 0, k, 2k, \dots; \quad
       \text{backward of segment } s\text{: rerun blocks } s..s{+}k{-}1 \text{ from } h_s $$

    Parameters
    ----------
    ids : ndarray, shape (B, T), integer
        Token ids in [0, vocab_size), T <= context_len.
    targets : ndarray, shape (B, T), integer
        Next-token ids in [0, vocab_size), or ``ignore_index``; at least one not ignored.
    params : dict
        The GPT's parameter tree for ``config`` (see `gpt`).
    config : GPTConfig
        The model's configuration.
    segment_size : int
        Blocks per segment $k \ge 1$ (more than ``n_layers``: one segment).
    ignore_index : int, default -100
        Target value that is left out of the mean.

    Returns
    -------
    loss : float
        Mean cross-entropy, equal to `gpt.loss_and_grads`'s.
    grads : dict
        Gradients, the tree of ``params``, bit for bit those of `gpt.loss_and_grads`.
    stats : dict
        ``peak_activation_bytes``: the most activation memory held at any moment, measured by
        walking the arrays kept alive (`held_bytes`; parameters, ids and targets are not
        activations and are not counted); ``recompute_flops``: the extra forward work, the
        `flops` cost of every block run again, counted as they run; ``segments``: the
        number of segments.

    Raises
    ------
    TypeError
        If ``config`` is not a ``GPTConfig``, ``ids`` or ``targets`` is not an integer array,
        ``params`` is not a dict of floating-point arrays, or ``segment_size`` or
        ``ignore_index`` is not an int.
    ValueError
        If shapes do not fit ``config``, an id or target is out of range, every target is
        ignored, a parameter holds NaN or inf, or ``segment_size < 1``.
    """
    where = "checkpoint.loss_and_grads"
    _check_batch(where, ids, targets, params, config, ignore_index)
    segment_size = _checks.integer(where, "segment_size", segment_size, low=1)
    B, T = ids.shape
    n_layers = len(params["blocks"])
    starts = list(range(0, n_layers, segment_size))
    param_leaves = list(flatten(params).values()) + [ids, targets]     # not activations

    h, embed_c = gpt.embed_forward(ids, params, config)
    extra = gpt._attention_inputs(config, T, None, None, h.dtype)     # rotary tables, if any
    boundaries = []                                     # the input of every segment
    for s in starts:
        boundaries.append(h)
        h, _ = _blocks_forward(h, params["blocks"][s:s + segment_size], config, False, extra)
    head_w = gpt.head(params, config)
    norm = gpt.NORMS[config.norm]
    hf, ln_c = norm._forward(h, params["ln_f"], config.eps)
    loss, ce_c = cross_entropy.forward(hf @ head_w, targets, ignore_index)
    top = (embed_c, extra, ln_c, hf, ce_c)
    peak = _held_bytes((boundaries, top), param_leaves)

    dlogits = cross_entropy.backward(1.0, ce_c)["logits"]
    dh, d_head = gpt.head_backward(dlogits, hf, head_w)
    d_ln_f = norm._backward(dh, ln_c)
    dh = d_ln_f.pop("x")
    d_blocks = [None] * n_layers
    block_flops = flops._gpt_block(config, B, T).forward
    recompute = 0                                       # counted as the blocks are rerun
    for s in reversed(starts):
        seg = params["blocks"][s:s + segment_size]
        _, caches = _blocks_forward(boundaries[s // segment_size], seg, config, True, extra)
        recompute += block_flops * len(seg)
        peak = max(peak, _held_bytes((boundaries, top, caches), param_leaves))
        for i in reversed(range(len(seg))):
            d_blocks[s + i] = block._backward(dh, caches[i])
            dh = d_blocks[s + i].pop("x")
        del caches
        boundaries[s // segment_size] = None            # this boundary is no longer needed
    grads = {**gpt.embed_backward(dh, embed_c), "blocks": d_blocks, "ln_f": d_ln_f}
    gpt.add_head_grad(grads, d_head, config)
    stats = {"peak_activation_bytes": peak, "recompute_flops": recompute,
             "segments": len(starts)}
    return loss, grads, stats


@contract(example=_example,
          lenient={"ignore_index": ("negative", "zero")})   # any int can mark padding
def plain_activation_bytes(ids: np.ndarray, targets: np.ndarray, params: dict,
                           config: GPTConfig, ignore_index: int = -100) -> int:
    """Activation bytes the plain (non-checkpointed) forward and loss keep for the backward,
    measured as in `loss_and_grads` (parameters and the input ids and targets are not
    counted); `memory.activation_bytes` predicts it.

    Parameters
    ----------
    ids : ndarray, shape (B, T), integer
        Token ids in [0, vocab_size), T <= context_len.
    targets : ndarray, shape (B, T), integer
        Next-token ids in [0, vocab_size), or ``ignore_index``; at least one not ignored.
    params : dict
        The GPT's parameter tree for ``config``.
    config : GPTConfig
        The model's configuration.
    ignore_index : int, default -100
        Target value that is left out of the mean.

    Returns
    -------
    n : int
        Bytes held by the forward pass's and the loss's caches.

    Raises
    ------
    TypeError
        As `loss_and_grads`.
    ValueError
        As `loss_and_grads`.
    """
    where = "checkpoint.plain_activation_bytes"
    _check_batch(where, ids, targets, params, config, ignore_index)
    logits, cache = gpt._forward(ids, params, config)        # checked above
    _, ce_c = cross_entropy.forward(logits, targets, ignore_index)
    return _held_bytes((cache[1:], ce_c), list(flatten(params).values()) + [ids, targets])


def _check_batch(where: str, ids, targets, params, config, ignore_index) -> None:
    """A batch for the GPT: ids and targets (B, T) in range, at least one target kept; the
    parameter tree fits ``config``."""
    if not isinstance(config, GPTConfig):
        raise TypeError(f"{where}: argument 'config' must be a GPTConfig, "
                        f"got {_checks._describe(config)}")
    ignore_index = _checks.integer(where, "ignore_index", ignore_index)
    V = config.vocab_size
    _checks.int_array(where, "ids", ids, 0, V)
    if ids.ndim != 2 or ids.shape[1] > config.context_len:
        raise ValueError(f"{where}: argument 'ids' must have shape (B, T) with T <= "
                         f"context_len = {config.context_len}, got shape {ids.shape}")
    _checks.int_array(where, "targets", targets, 0, V, allowed=(ignore_index,))
    _checks.same_shape(where, "targets", targets, ids.shape)
    if np.all(targets == ignore_index):
        raise ValueError(f"{where}: argument 'targets' has no target to average: all "
                         f"{targets.size} equal ignore_index={ignore_index}")
    gpt._check_params(params, config, where)
