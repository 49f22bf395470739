"""Input validation shared by every component.

Every public ``forward`` and ``backward`` validates its arguments with these helpers so that a
bad call fails at once with a message that names the function, the argument, what was
expected and what was given, instead of failing later inside NumPy with a broadcasting error.
"""

from __future__ import annotations

import math

import numpy as np


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def float_array(where: str, name: str, x, ndim_min: int = 0, ndim: int | None = None,
                allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a floating-point ndarray after checking dtype, rank, emptiness, finiteness.

    Raises ``TypeError`` for a non-array or non-float dtype and ``ValueError`` for a wrong
    rank, an empty array or NaN/inf values.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: argument {_label(name)} must be a NumPy array, "
                        f"got {_describe(x)}")
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{where}: argument {_label(name)} must have a floating-point dtype, "
                        f"got dtype {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"{where}: argument {_label(name)} must have {ndim} dimension(s), got shape {x.shape}")
    if x.ndim < ndim_min:
        raise ValueError(f"{where}: argument {_label(name)} must have at least {ndim_min} "
                         f"dimension(s), got shape {x.shape}")
    if x.size == 0 and not allow_empty:
        raise ValueError(f"{where}: argument {_label(name)} must not be empty, got shape {x.shape}")
    # min and max are NaN if any element is, and +-inf if any element is infinite; two
    # reductions are much cheaper than a full isfinite mask on large activations.
    if x.size and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(
            f"{where}: argument {_label(name)} must be finite, got {bad} NaN or inf value(s) "
            f"in an array of shape {x.shape}")
    return x


def int_array(where: str, name: str, ids, low: int, high: int, allowed=()) -> np.ndarray:
    """Return ``ids`` after checking it is a non-empty integer array with values in [low, high).

    Values listed in ``allowed`` (for example an ``ignore_index``) are accepted as well.
    """
    if not isinstance(ids, np.ndarray):
        raise TypeError(f"{where}: argument {_label(name)} must be a NumPy integer array, "
                        f"got {_describe(ids)}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"{where}: argument {_label(name)} must have an integer dtype, "
                        f"got dtype {ids.dtype}")
    if ids.size == 0:
        raise ValueError(f"{where}: argument {_label(name)} must not be empty, "
                         f"got shape {ids.shape}")
    outside = (ids < low) | (ids >= high)
    for value in allowed:
        outside &= ids != value
    if np.any(outside):
        first = int(ids[outside].flat[0])
        raise ValueError(f"{where}: argument {_label(name)} must hold values in [{low}, {high}), "
                         f"got {first} (and {int(outside.sum())} out-of-range value(s) in all)")
    return ids


def same_shape(where: str, name: str, x: np.ndarray, shape: tuple) -> None:
    """Check that ``x`` has exactly ``shape``."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(
            f"{where}: argument {_label(name)} must have shape {tuple(shape)}, got shape {x.shape}")


def _label(name: str) -> str:
    """How messages name an argument: ``'params'`` for a plain name, ``params['attn']`` for a
    part of one."""
    return f"'{name}'" if name.isidentifier() else name


def keys(where: str, tree, required, name: str = "params", optional=()) -> dict:
    """Check that ``tree`` is a dict with the ``required`` keys, maybe some ``optional`` ones,
    and no others."""
    if not isinstance(tree, dict):
        raise TypeError(f"{where}: argument {_label(name)} must be a dict, got {_describe(tree)}")
    missing = sorted(set(required) - set(tree))
    if missing:
        raise ValueError(f"{where}: argument {_label(name)} is missing key(s) {missing}; "
                         f"expected keys {sorted(required)}, got {sorted(tree)}")
    unknown = sorted(set(tree) - set(required) - set(optional))
    if unknown:
        raise ValueError(f"{where}: argument {_label(name)} has unknown key(s) {unknown}; "
                         f"allowed keys {sorted(set(required) | set(optional))}")
    return tree


def params(where: str, params, required: dict, optional: dict = None,
           name: str = "params") -> dict:
    """Check a parameter dict: required keys present, no unknown keys, each a float array of
    the given shape (``None`` in a shape means any size).  ``name`` is how messages call the
    dict (``params['attn']['qkv']`` for a part of a bigger tree)."""
    optional = optional or {}
    if not isinstance(params, dict):
        raise TypeError(f"{where}: argument {_label(name)} must be a dict of arrays, "
                        f"got {_describe(params)}")
    keys(where, params, required, name, optional)
    for key, shape in {**required, **optional}.items():
        if key not in params:
            continue
        value = float_array(where, f"{name}['{key}']", params[key], ndim=len(shape))
        for got, want in zip(value.shape, shape, strict=True):
            if want is not None and got != want:
                raise ValueError(f"{where}: argument {name}['{key}'] must have shape "
                                 f"{tuple('any' if s is None else s for s in shape)}, "
                                 f"got shape {value.shape}")
    return params


def positive(where: str, name: str, value, integer: bool = False):
    """Check a strictly positive scalar (an int when ``integer``)."""
    kinds = (int, np.integer) if integer else (int, float, np.integer, np.floating)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{where}: argument {_label(name)} must be {kind}, got {_describe(value)}")
    if not value > 0:
        raise ValueError(f"{where}: argument {_label(name)} must be > 0, got {value!r}")
    return value


def dout_like(where: str, dout, shape: tuple, name: str = "dout") -> np.ndarray:
    """Check an upstream gradient: a finite float array with the forward output's shape."""
    if np.isscalar(dout) and shape == ():
        dout = np.asarray(dout, dtype=np.float64)
    dout = float_array(where, name, dout, allow_empty=True)
    same_shape(where, name, dout, shape)
    return dout


# Scalars, choices, callables and parameter trees (the training and accounting stages).

def integer(where: str, name: str, value, low: int = 0) -> int:
    """Return ``value`` as a Python int after checking it is an int (Python or NumPy, not a
    bool) and ``>= low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: argument {_label(name)} must be an int, got {_describe(value)}")
    if value < low:
        raise ValueError(f"{where}: argument {_label(name)} must be an int >= {low}, "
                         f"got {value!r}")
    return int(value)


def real(where: str, name: str, value, low: float = -np.inf, high: float = np.inf,
         low_open: bool = False, high_open: bool = False) -> float:
    """Return ``value`` as a Python float after checking it is a finite real number (int or
    float, Python or NumPy, not a bool) in the interval from ``low`` to ``high`` (closed
    unless ``low_open`` / ``high_open``)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: argument {_label(name)} must be a real number, "
                        f"got {_describe(value)}")
    try:
        value = float(value)
    except OverflowError:                   # an int beyond float range
        value = float("inf") if value > 0 else float("-inf")
    if not np.isfinite(value):
        raise ValueError(f"{where}: argument {_label(name)} must be a finite number, "
                         f"got {value!r}")
    if not ((low < value if low_open else low <= value)
            and (value < high if high_open else value <= high)):
        if high == np.inf:
            rule = f"{'>' if low_open else '>='} {low:g}"
        elif low == -np.inf:
            rule = f"{'<' if high_open else '<='} {high:g}"
        else:
            rule = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{where}: argument {_label(name)} must be {rule}, got {value!r}")
    return value


def boolean(where: str, name: str, value) -> bool:
    """Return ``value`` as a Python bool after checking it is one (or a NumPy bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: argument {_label(name)} must be True or False, "
                        f"got {_describe(value)}")
    return bool(value)


def choice(where: str, name: str, value, choices) -> str:
    """Check that ``value`` is one of the strings ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: argument {_label(name)} must be a string, one of "
                        f"{list(choices)}, got {_describe(value)}")
    if value not in choices:
        raise ValueError(f"{where}: argument {_label(name)} must be one of {list(choices)}, "
                         f"got {value!r}")
    return value


def function(where: str, name: str, value):
    """Check that ``value`` is callable."""
    if not callable(value):
        raise TypeError(f"{where}: argument {_label(name)} must be a function, "
                        f"got {_describe(value)}")
    return value


def float_tree(where: str, name: str, tree, finite: bool = True) -> dict:
    """Check a parameter tree (a dict at the top, then dicts and lists, with floating-point
    arrays as leaves) and return its flat view ``{"blocks.0.W": leaf}``, paths as in
    ``llmref.params.flatten``.  Leaves must be finite unless ``finite`` is False.

    Optimizers call this on every tree every step, so a leaf costs one reduction: a finite
    sum proves the leaf finite, and only a non-finite sum (NaN, inf, or an overflow of the
    sum itself) looks at the elements."""
    if not isinstance(tree, dict):
        raise TypeError(f"{where}: argument {_label(name)} must be a dict of arrays (a "
                        f"parameter tree), got {_describe(tree)}")
    flat, stack = {}, [("", tree)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, np.ndarray):
            if node.dtype.kind != "f":
                raise TypeError(f"{where}: argument {name}[{path!r}] must have a "
                                f"floating-point dtype, got dtype {node.dtype}")
            if finite and node.size and not math.isfinite(_sum(node)):
                bad = node.size - int(np.count_nonzero(np.isfinite(node)))
                if bad:
                    raise ValueError(f"{where}: argument {name}[{path!r}] must be finite, got "
                                     f"{bad} NaN or inf value(s) in an array of shape "
                                     f"{node.shape}")
            flat[path] = node
        elif isinstance(node, dict):
            stack.extend((f"{path}.{k}" if path else str(k), v) for k, v in node.items())
        elif isinstance(node, (list, tuple)):
            stack.extend((f"{path}.{i}" if path else str(i), v) for i, v in enumerate(node))
        else:
            raise TypeError(f"{where}: argument {name}[{path!r}] must be an array, a dict or "
                            f"a list, got {_describe(node)}")
    return flat


def _sum(x: np.ndarray):
    with np.errstate(over="ignore", invalid="ignore"):     # inf - inf, or a float16 overflow
        return np.add.reduce(x, axis=None)


def same_tree(where: str, name: str, flat: dict, like_name: str, like: dict) -> None:
    """Check that the flat tree ``flat`` (from :func:`float_tree`) has the leaves of ``like``,
    each with the same shape and dtype."""
    missing, unknown = sorted(set(like) - set(flat)), sorted(set(flat) - set(like))
    if missing or unknown:
        found = "; ".join(f"{what} leaves {paths}" for what, paths in
                          (("missing", missing), ("unknown", unknown)) if paths)
        raise ValueError(f"{where}: argument {_label(name)} must have the structure of "
                         f"{_label(like_name)}, got {found}")
    for path, leaf in like.items():
        if flat[path].shape != leaf.shape:
            raise ValueError(f"{where}: argument {name}[{path!r}] must have shape {leaf.shape} "
                             f"like {like_name}[{path!r}], got {flat[path].shape}")
        if flat[path].dtype != leaf.dtype:
            raise TypeError(f"{where}: argument {name}[{path!r}] must have dtype {leaf.dtype} "
                            f"like {like_name}[{path!r}], got {flat[path].dtype}")
