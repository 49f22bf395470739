"""Helpers for parameter trees: nested dicts (and lists) whose leaves are arrays.

A model's parameters and its gradients have the same tree shape, so optimizers, clipping and
counting work on the flat view ``{"blocks.0.attn.qkv.W": array, ...}``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from llmref._contract import contract


def flatten(tree, prefix: str = "") -> dict:
    """``{"a": {"b": x}, "c": [y]}`` -> ``{"a.b": x, "c.0": y}`` (leaves are not copied)."""
    if isinstance(tree, np.ndarray):
        return {prefix: tree}
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    flat = {}
    for key, value in items:
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


@contract(example=lambda rng: {"flat": {"blocks.0.W": rng.standard_normal(2),
                                         "blocks.1.W": rng.standard_normal(2)}},
          lenient={"flat": ("missing_key", "extra_key")})      # any names form some tree
def unflatten(flat: dict, where: str = "params.unflatten"):
    """The inverse of :func:`flatten`: ``{"a.b": x, "c.0": y}`` -> ``{"a": {"b": x}, "c": [y]}``.

    A level whose keys are exactly ``"0" .. "n-1"`` becomes a list; any other level a dict.
    Leaves are not copied.

    Parameters
    ----------
    flat : dict
        Dotted names (``str``) to leaves.
    where : str
        The function name error messages start with.

    Returns
    -------
    dict or list
        The nested tree.

    Raises
    ------
    TypeError
        If ``flat`` is not a dict or a name is not a string.
    ValueError
        If a name is empty, has an empty part (``"a..b"``), or is both a leaf and a
        branch (``"a"`` and ``"a.b"``).
    """
    if not isinstance(flat, dict):
        raise TypeError(f"{where}: argument 'flat' must be a dict of dotted names to leaves, "
                        f"got {type(flat).__name__}")
    root: dict = {}
    for name, leaf in flat.items():
        if not isinstance(name, str):
            raise TypeError(f"{where}: argument 'flat' must have str keys, got {name!r}")
        parts = name.split(".")
        if not all(parts):
            raise ValueError(f"{where}: argument 'flat' has the name {name!r} with an empty "
                             f"part; expected names such as 'blocks.0.attn.qkv.W'")
        node = root
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"{where}: argument 'flat' has {'.'.join(parts[:depth + 1])!r} "
                                 f"both as a leaf and as a branch (in {name!r})")
        if parts[-1] in node:
            raise ValueError(f"{where}: argument 'flat' has {name!r} both as a leaf and as a "
                             f"branch")
        node[parts[-1]] = leaf
    return _lists(root)


def _lists(node):
    """Turn the dicts whose keys are "0" .. "n-1" into lists, from the leaves up."""
    if not isinstance(node, dict):
        return node
    node = {key: _lists(value) for key, value in node.items()}
    if node and set(node) == {str(i) for i in range(len(node))}:
        return [node[str(i)] for i in range(len(node))]
    return node


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
