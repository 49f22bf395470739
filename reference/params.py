"""Helpers for parameter trees: nested dicts (and lists) whose leaves are arrays.

A model's parameters and its gradients have the same tree shape, so optimizers, clipping and
counting work on the flat view `{"blocks.0.attn.qkv.W": array, ...}`.  A tree is an
ndarray (a leaf), a dict of trees, or a list or tuple of trees; anything else in a tree
(None, a number, a string) is refused with a `TypeError` naming its path.

`map_trees` and `check_finite` report problems in the name of the function that calls them
(their `where` argument), because the trees they check are that function's arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from llmref import _checks
from llmref._contract import contract

_TREE_LENIENT = {"tree": ("missing_key", "extra_key", "list")}   # any keys, lists too


def _tree_example(rng) -> dict:
    return {"a": {"W": rng.standard_normal((2, 3)), "b": rng.standard_normal(3)},
            "c": [rng.standard_normal(2)]}


def _not_a_tree(where: str, name: str, path: str, value):
    at = f" at {path!r}" if path else ""
    return TypeError(f"{where}: argument {_checks._label(name)}{at} must be an array, a dict "
                     f"or a list of them, got {_checks._describe(value)}")


def _items(where: str, name: str, tree, path: str):
    """The children of an inner node as ``(key, child)`` pairs, or raise for a non-tree."""
    if isinstance(tree, dict):
        return tree.items()
    if isinstance(tree, (list, tuple)):
        return enumerate(tree)
    raise _not_a_tree(where, name, path, tree)


def _join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_shape(value) -> bool:
    """A shape tuple standing in for an array (``gpt.shapes`` gives trees of them)."""
    return isinstance(value, tuple) and all(
        isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in value)


def _flatten(where: str, name: str, tree, prefix: str, flat: dict,
             shapes: bool = False) -> dict:
    if isinstance(tree, np.ndarray) or (shapes and _is_shape(tree)):
        flat[prefix] = tree
        return flat
    for key, value in _items(where, name, tree, prefix):
        _flatten(where, name, value, _join(prefix, key), flat, shapes)
    return flat


@contract(example=lambda rng: {"tree": _tree_example(rng), "prefix": "model"},
          lenient={**_TREE_LENIENT, "prefix": ("empty",)})
def flatten(tree, prefix: str = "") -> dict:
    """The leaves of a tree by their dotted paths.

    `{"a": {"b": x}, "c": [y]}` -> `{"a.b": x, "c.0": y}`.

    Parameters
    ----------
    tree : ndarray, dict or list
        A parameter tree.
    prefix : str, default ''
        Prepended to every path (`"model"` gives `"model.a.b"`); a bare leaf gets the path
        `prefix` itself.

    Returns
    -------
    flat : dict
        `{path: leaf}` in the tree's order. The leaves are the tree's own arrays, not
        copies.

    Raises
    ------
    TypeError
        If `tree` holds something other than arrays, dicts and lists, or `prefix` is not a
        str.
    """
    _checks.string("params.flatten", "prefix", prefix)
    return _flatten("params.flatten", "tree", tree, prefix, {})


@contract(example=lambda rng: {"flat": {"blocks.0.W": rng.standard_normal(2),
                                         "blocks.1.W": rng.standard_normal(2)}},
          lenient={"flat": ("missing_key", "extra_key")})      # any names form some tree
def unflatten(flat: dict, where: str = "params.unflatten"):
    """The inverse of `flatten`: ``{"a.b": x, "c.0": y}`` -> ``{"a": {"b": x}, "c": [y]}``.

    A level whose keys are exactly ``"0" .. "n-1"`` becomes a list; any other level a dict.
    Leaves are not copied.

    Parameters
    ----------
    flat : dict
        Dotted names (``str``) to leaves.
    where : str, default 'params.unflatten'
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


def _map_tree(where: str, fn: Callable, tree, path: str = ""):
    if isinstance(tree, np.ndarray):
        return fn(tree)
    if isinstance(tree, dict):
        return {key: _map_tree(where, fn, value, _join(path, key)) for key, value in tree.items()}
    return [_map_tree(where, fn, value, _join(path, i))
            for i, value in _items(where, "tree", tree, path)]


@contract(example=lambda rng: {"fn": np.negative, "tree": _tree_example(rng)},
          lenient=_TREE_LENIENT)
def map_tree(fn: Callable, tree):
    """A tree of the same structure with `fn` applied to every leaf.

    Parameters
    ----------
    fn : callable
        `fn(leaf) -> new leaf`.
    tree : ndarray, dict or list
        A parameter tree (tuples come back as lists).

    Returns
    -------
    tree : ndarray, dict or list
        New containers; the leaves are whatever `fn` returns.

    Raises
    ------
    TypeError
        If `fn` is not callable or `tree` holds something other than arrays, dicts and
        lists.
    """
    _checks.function("params.map_tree", "fn", fn)
    return _map_tree("params.map_tree", fn, tree)


@contract(example=lambda rng: {"tree": _tree_example(rng)}, lenient=_TREE_LENIENT)
def count(tree) -> int:
    """Number of scalar parameters in a tree (the sum of the leaves' sizes).

    Parameters
    ----------
    tree : ndarray, dict or list
        A parameter tree; a leaf may also be a shape tuple such as `(768, 3072)` (the trees
        of `gpt.shapes`, counted without allocating anything).

    Returns
    -------
    n : int

    Raises
    ------
    TypeError
        If `tree` holds something other than arrays, shape tuples, dicts and lists.
    """
    leaves = _flatten("params.count", "tree", tree, "", {}, shapes=True).values()
    return int(sum(math.prod(leaf) if isinstance(leaf, tuple) else leaf.size
                   for leaf in leaves))


@contract(example=lambda rng: {"tree": _tree_example(rng)}, lenient=_TREE_LENIENT)
def nbytes(tree) -> int:
    """Bytes held by the leaves of a tree (the sum of their `nbytes`; views count in full).

    Parameters
    ----------
    tree : ndarray, dict or list
        A parameter tree.

    Returns
    -------
    n : int

    Raises
    ------
    TypeError
        If `tree` holds something other than arrays, dicts and lists.
    """
    return int(sum(leaf.nbytes
                   for leaf in _flatten("params.nbytes", "tree", tree, "", {}).values()))


def _check_names(names) -> tuple:
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"params.map_trees: argument 'names' must be a tuple of str, "
                        f"got {_checks._describe(names)}")
    if not names:
        raise ValueError("params.map_trees: argument 'names' must name at least the first "
                         "tree, got ()")
    return tuple(names)


@contract(example=lambda rng: {"where": "params.map_trees", "fn": np.negative,
                               "tree": _tree_example(rng), "names": ("tree",)},
          lenient=_TREE_LENIENT)
def map_trees(where: str, fn: Callable, tree, *others, names=("params", "grads"), _path=""):
    """Apply `fn(leaf, *other_leaves)` across trees of the same structure and shapes.

    Parameters
    ----------
    where : str
        The public function to name in error messages: the caller's own name
        (`"adam.step"`), since the trees are its arguments.
    fn : callable
        `fn(leaf, *other_leaves) -> new leaf`.
    tree : ndarray, dict or list
        The tree whose structure the result has.
    *others : ndarray, dict or list
        Trees of the same structure, keys and leaf shapes.
    names : tuple of str, default ('params', 'grads')
        How messages call `tree` and `others` (the last name serves for every later
        tree).

    Returns
    -------
    tree : ndarray, dict or list
        New containers with `fn`'s results as leaves.

    Raises
    ------
    TypeError
        If `where` is not a str, `fn` not callable, `names` not a tuple of str, or a tree
        holds something other than arrays, dicts and lists.
    ValueError
        If a tree of `others` has a missing or extra key, a list of another length or a
        leaf of another shape (the message names the path, such as `blocks.0.attn.qkv.W`).
    """
    if not _path:                              # the top call checks its own arguments once
        _checks.string("params.map_trees", "where", where)
        _checks.function("params.map_trees", "fn", fn)
        names = _check_names(names)

    def name(i):                               # how messages call others[i]
        return names[min(i + 1, len(names) - 1)]

    if isinstance(tree, np.ndarray):
        for i, other in enumerate(others):
            if not isinstance(other, np.ndarray) or other.shape != tree.shape:
                got = other.shape if isinstance(other, np.ndarray) else type(other).__name__
                raise ValueError(f"{where}: {name(i)}[{_path!r}] "
                                 f"must have shape {tree.shape} like {names[0]}, got {got}")
        return fn(tree, *others)
    if isinstance(tree, dict):
        for i, other in enumerate(others):
            if not isinstance(other, dict) or set(other) != set(tree):
                got = sorted(other) if isinstance(other, dict) else type(other).__name__
                raise ValueError(f"{where}: {name(i)} at "
                                 f"{_path or 'the top'!r} must have keys {sorted(tree)}, "
                                 f"got {got}")
        return {k: map_trees(where, fn, v, *(o[k] for o in others), names=names,
                             _path=_join(_path, k))
                for k, v in tree.items()}
    children = list(_items(where, names[0], tree, _path))
    for i, other in enumerate(others):
        if not isinstance(other, (list, tuple)) or len(other) != len(tree):
            raise ValueError(f"{where}: {name(i)} at {_path or 'the top'!r} "
                             f"must be a list of {len(tree)}")
    return [map_trees(where, fn, v, *(o[i] for o in others), names=names,
                      _path=_join(_path, i))
            for i, v in children]


@contract(example=lambda rng: {"where": "params.check_finite", "name": "tree",
                               "tree": _tree_example(rng)},
          lenient=_TREE_LENIENT)
def check_finite(where: str, name: str, tree) -> None:
    """Raise `ValueError` naming the first leaf that holds NaN or inf.

    Parameters
    ----------
    where : str
        The public function to name in the message: the caller's own name.
    name : str
        How the message calls the tree: the caller's argument (`"grads"`).
    tree : ndarray, dict or list
        A tree of floating-point (or integer) arrays.

    Returns
    -------
    None

    Raises
    ------
    TypeError
        If `where` or `name` is not a str, or `tree` holds something other than arrays,
        dicts and lists.
    ValueError
        If a leaf holds NaN or inf (`name[path]` in the message).
    """
    _checks.string("params.check_finite", "where", where)
    _checks.string("params.check_finite", "name", name)
    for path, leaf in _flatten(where, name, tree, "", {}).items():
        if leaf.size and not (np.isfinite(leaf.min()) and np.isfinite(leaf.max())):
            raise ValueError(f"{where}: {name}[{path!r}] holds NaN or inf values")


def _map_with_paths(fn: Callable, tree, path: str):
    if isinstance(tree, np.ndarray):
        return fn(path, tree)
    if isinstance(tree, dict):
        return {k: _map_with_paths(fn, v, _join(path, k)) for k, v in tree.items()}
    return [_map_with_paths(fn, v, _join(path, i))
            for i, v in _items("params.map_with_paths", "tree", tree, path)]


@contract(example=lambda rng: {"fn": lambda path, leaf: leaf * len(path),
                               "tree": _tree_example(rng)},
          lenient=_TREE_LENIENT)
def map_with_paths(fn: Callable, tree):
    """A tree of the same structure with `fn(path, leaf)` at every leaf.

    Parameters
    ----------
    fn : callable
        `fn(path, leaf) -> new leaf`, with `path` dotted as in `flatten`
        (`"blocks.0.attn.qkv.W"`).
    tree : ndarray, dict or list
        A parameter tree (tuples come back as lists).

    Returns
    -------
    tree : ndarray, dict or list
        New containers with `fn`'s results as leaves.

    Raises
    ------
    TypeError
        If `fn` is not callable or `tree` holds something other than arrays, dicts and
        lists.
    """
    _checks.function("params.map_with_paths", "fn", fn)
    return _map_with_paths(fn, tree, "")
