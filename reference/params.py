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


def map_trees(where: str, fn: Callable, tree, *others, names=("params", "grads"), _path=""):
    """Apply ``fn(leaf, *other_leaves)`` across trees of the same structure and shapes.

    A missing or extra key, a list of another length or a leaf of another shape raises
    ``ValueError`` naming the path (for example ``blocks.0.attn.qkv.W``).
    """
    if isinstance(tree, np.ndarray):
        for i, other in enumerate(others):
            if not isinstance(other, np.ndarray) or other.shape != tree.shape:
                got = other.shape if isinstance(other, np.ndarray) else type(other).__name__
                raise ValueError(f"{where}: {names[min(i + 1, len(names) - 1)]}[{_path!r}] "
                                 f"must have shape {tree.shape} like {names[0]}, got {got}")
        return fn(tree, *others)
    if isinstance(tree, dict):
        for i, other in enumerate(others):
            if not isinstance(other, dict) or set(other) != set(tree):
                got = sorted(other) if isinstance(other, dict) else type(other).__name__
                raise ValueError(f"{where}: {names[min(i + 1, len(names) - 1)]} at "
                                 f"{_path or 'the top'!r} must have keys {sorted(tree)}, "
                                 f"got {got}")
        return {k: map_trees(where, fn, v, *(o[k] for o in others), names=names,
                             _path=f"{_path}.{k}" if _path else str(k))
                for k, v in tree.items()}
    for i, other in enumerate(others):
        if not isinstance(other, (list, tuple)) or len(other) != len(tree):
            raise ValueError(f"{where}: {names[min(i + 1, len(names) - 1)]} at {_path!r} "
                             f"must be a list of {len(tree)}")
    return [map_trees(where, fn, v, *(o[i] for o in others), names=names,
                      _path=f"{_path}.{i}" if _path else str(i))
            for i, v in enumerate(tree)]


def check_finite(where: str, name: str, tree) -> None:
    """Raise ``ValueError`` naming the first leaf that holds NaN or inf."""
    for path, leaf in flatten(tree).items():
        if not np.all(np.isfinite(leaf)):
            raise ValueError(f"{where}: {name}[{path!r}] holds NaN or inf values")


def map_with_paths(fn: Callable, tree, _path: str = ""):
    """A tree of the same shape with ``fn(path, leaf)`` at every leaf (paths as in flatten)."""
    if isinstance(tree, np.ndarray):
        return fn(_path, tree)
    if isinstance(tree, dict):
        return {k: map_with_paths(fn, v, f"{_path}.{k}" if _path else str(k))
                for k, v in tree.items()}
    return [map_with_paths(fn, v, f"{_path}.{i}" if _path else str(i))
            for i, v in enumerate(tree)]
