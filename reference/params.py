"""Helpers for parameter trees: nested dicts (and lists) whose leaves are arrays.

A model's parameters and its gradients have the same tree shape, so optimizers, clipping and
counting work on the flat view ``{"blocks.0.attn.qkv.W": array, ...}``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def flatten(tree, prefix: str = "") -> dict:
    """``{"a": {"b": x}, "c": [y]}`` -> ``{"a.b": x, "c.0": y}`` (leaves are not copied)."""
    if isinstance(tree, np.ndarray):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def map_tree(fn: Callable, tree):
    """A tree of the same shape with ``fn`` applied to every leaf."""
    if isinstance(tree, np.ndarray):
        return fn(tree)
    if isinstance(tree, dict):
        return {key: map_tree(fn, value) for key, value in tree.items()}
    return [map_tree(fn, value) for value in tree]


def count(tree) -> int:
    """Number of scalar parameters in ``tree``."""
    return sum(leaf.size for leaf in flatten(tree).values())


def nbytes(tree) -> int:
    """Bytes held by the leaves of ``tree``."""
    return sum(leaf.nbytes for leaf in flatten(tree).values())
