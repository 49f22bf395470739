"""The oracles the reference is checked against.

1. PyTorch autograd in float64 (:func:`torch_vjp`): the same computation written with torch
   operations; its output and its vector-Jacobian product with a random upstream gradient.
2. Central finite differences in float64 (:func:`numerical_vjp`): the derivative of
   ``sum(upstream * f(inputs))`` by perturbing every element of every input, one at a time.
   It needs no torch twin, so it also checks functions torch lacks; it differentiates the
   implementation's own forward, which oracle 1 has already checked.
3. For the GPT-2 tokenizer, the ``tokenizers`` library (:func:`tokenizers_gpt2`) loaded from
   the same ``vocab.json`` and ``merges.txt``: a test-only dependency (the ``parity`` extra),
   imported only when a parity test asks for it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from llmref.spec.harness.tolerances import FD_STEP


def random_upstream(rng: np.random.Generator, shape) -> np.ndarray:
    """A random upstream gradient (never all ones: that makes softmax and norm gradients 0)."""
    return rng.standard_normal(shape)


def backward(out: torch.Tensor, upstream) -> None:
    """Backpropagate ``upstream`` from ``out``: the gradient of ``sum(out * upstream)``.

    The same vector-Jacobian product as ``out.backward(upstream)``, bit for bit (the product's
    gradient with respect to ``out`` is ``1 * upstream``), without torch's gradient argument,
    whose first use imports sympy (about half a second of every ``llmspec check``)."""
    u = torch.as_tensor(np.asarray(upstream, dtype=np.float64), dtype=out.dtype)
    (out * u).sum().backward()


def torch_vjp(fn: Callable, inputs: dict, upstream, differentiable=None):
    """Run ``fn(**tensors)`` in float64 torch and backpropagate ``upstream``.

    ``inputs`` maps argument names to NumPy arrays (or anything else, passed through);
    float arrays named in ``differentiable`` (default: all float arrays) require grad.
    Returns ``(output as ndarray, {name: gradient as ndarray})``.
    """
    tensors, wanted = {}, []
    for name, value in inputs.items():
        if isinstance(value, np.ndarray):
            t = torch.from_numpy(np.array(value))
            if t.is_floating_point():
                t = t.to(torch.float64)
                if differentiable is None or name in differentiable:
                    t.requires_grad_(True)
                    wanted.append(name)
            tensors[name] = t
        else:
            tensors[name] = value
    out = fn(**tensors)
    grads = {}
    if upstream is not None and wanted:
        backward(out, upstream)
        grads = {name: tensors[name].grad.numpy() for name in wanted}
    return out.detach().numpy(), grads


def numerical_vjp(fn: Callable, inputs: dict, upstream, wrt) -> dict:
    """Central-difference gradients of ``sum(upstream * fn(**inputs))`` for each name in ``wrt``.

    Every element is perturbed (no sampling); the step is ``FD_STEP * max(1, |x|)``.
    """
    upstream = np.asarray(upstream, dtype=np.float64)
    inputs = dict(inputs)          # perturbed copies below; the caller's arrays stay as they are

    def objective() -> float:
        return float(np.sum(upstream * np.asarray(fn(**inputs), dtype=np.float64)))

    grads = {}
    for name in wrt:
        x = inputs[name] = np.array(inputs[name], dtype=np.float64)
        grad = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            original = x[i]
            h = FD_STEP * max(1.0, abs(original))
            x[i] = original + h
            plus = objective()
            x[i] = original - h
            minus = objective()
            x[i] = original
            grad[i] = (plus - minus) / (2.0 * h)
        grads[name] = grad
    return grads


def tokenizers_gpt2(vocab_path, merges_path, special_tokens=("<|endoftext|>",)):
    """The ``tokenizers`` library set up as GPT-2's tokenizer from these files: byte-level BPE,
    GPT-2's pre-tokenisation pattern (``ByteLevel(use_regex=True)``, no prefix space), the
    byte-level decoder, ``special_tokens`` never split.  ``.encode(text).ids`` gives ids."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE.from_file(str(vocab_path), str(merges_path)))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(list(special_tokens))
    return tokenizer
