"""Input validation shared by every component, and the rule for caches.

Every public function validates its arguments with these helpers so that a bad call fails at
once with a ``TypeError`` or ``ValueError`` whose message names the function, the argument,
what was expected and what was given, instead of failing later inside NumPy with a
broadcasting error.  NumPy integer and float scalars are accepted wherever Python ones are;
``bool`` is never taken for a number.

Caches
------
A forward returns ``(out, cache)``; the cache holds what the backward needs.  Two rules keep
it from being corrupted by the caller:

1. **No forward returns an object its backward reads.**  Where the backward needs the output
   (softmax, gelu_tanh), the cache holds a private copy, so editing the returned ``out`` in
   place (``out *= 2``, ``out[0] = 0``) never changes a gradient.
2. **The inputs must not change between forward and backward.**  NumPy arrays have no version
   counter, so a cache may hold the caller's inputs and parameters by reference (copying
   every activation and weight would double a training step's memory); each forward's
   docstring says which, under *Cache*.  Update parameters after the backward, as every
   optimizer step does, never between the two calls.

Set the environment variable ``LLMREF_DEBUG_CACHE=1`` (read at every call, so it can be
switched on while a program runs), or call `debug_caches` with ``True``, which sets it, to
have every public forward record a checksum of the arrays its cache holds by reference and
every backward verify it: a changed input then raises ``ValueError`` naming the backward,
``'cache'`` and the input.  It costs one hash of each held array per call, so it is off by
default.  ``spec_tests/test_caches.py`` checks both rules for every forward/backward pair.
Nothing here ever changes a caller's array or its flags.
"""

from __future__ import annotations

import hashlib
import math
import os

import numpy as np


def _describe(x) -> str:
    if isinstance(x, np.ndarray):
        return f"array of shape {x.shape} and dtype {x.dtype}"
    return f"{type(x).__name__} {x!r}"


def float_array(where: str, name: str, x, ndim_min: int = 0, ndim: int | None = None,
                allow_empty: bool = False) -> np.ndarray:
    """Return ``x`` as a floating-point ndarray after checking dtype, rank, emptiness, finiteness.

    Raises ``TypeError`` for a non-array or non-float dtype and ``ValueError`` for a wrong
    rank, an empty array or NaN/inf values.  A NumPy scalar (``np.float64(1.5)``, what
    indexing a 1-D array gives) counts as a 0-d array, so a missing axis is a ``ValueError``
    about the rank, not a ``TypeError``.
    """
    if not isinstance(x, (np.ndarray, np.generic)):
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



def id_list(where: str, name: str, ids) -> list:
    """Token ids as a list of Python ints, from an integer array (any shape, read in order)
    or a list/tuple of ints; floats and bools are refused, the range is the caller's to
    check.  An empty array of any dtype is an empty list."""
    if isinstance(ids, np.ndarray):
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{where}: argument {_label(name)} must have an integer dtype, "
                            f"got dtype {ids.dtype}")
        return [int(i) for i in ids.ravel().tolist()]
    if not isinstance(ids, (list, tuple)):
        raise TypeError(f"{where}: argument {_label(name)} must be an integer array or a list "
                        f"of ints, got {_describe(ids)}")
    for i in ids:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"{where}: argument {_label(name)} must hold ints, got {i!r}")
    return [int(i) for i in ids]

def same_shape(where: str, name: str, x: np.ndarray, shape: tuple) -> None:
    """Check that ``x`` has exactly ``shape``."""
    if tuple(x.shape) != tuple(shape):
        raise ValueError(
            f"{where}: argument {_label(name)} must have shape {tuple(shape)}, got shape {x.shape}")


def bool_array(where: str, name: str, mask, shape: tuple, meaning: str = "") -> np.ndarray:
    """Check a boolean NumPy array of exactly ``shape``.  An integer 0/1 mask is refused:
    ``~1`` is -2, which is truthy, so an int mask would silently select everything.
    ``meaning`` (such as ``"True = real token"``) is added to the message."""
    if not isinstance(mask, np.ndarray) or mask.dtype != bool:
        got = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else _describe(mask)
        shown = f" ({meaning})" if meaning else ""
        raise TypeError(f"{where}: argument {_label(name)} must be a boolean NumPy "
                        f"array{shown}, got {got}; convert a 0/1 mask with mask.astype(bool)")
    same_shape(where, name, mask, shape)
    return mask


def optional_mask(where: str, name: str, mask, shape: tuple) -> np.ndarray:
    """``mask`` checked as :func:`bool_array`, or all True when None; at least one True."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    bool_array(where, name, mask, shape)
    if not mask.any():
        raise ValueError(f"{where}: argument {_label(name)} must select at least one entry, "
                         f"got none")
    return mask


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
                want_text = ", ".join("any" if s is None else str(s) for s in shape)
                raise ValueError(f"{where}: argument {name}['{key}'] must have shape "
                                 f"({want_text}{',' if len(shape) == 1 else ''}), "
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
    if isinstance(value, (int, np.integer)):
        _fits_int64(where, name, int(value))
    if isinstance(value, (float, np.floating)) and not math.isfinite(value):
        raise ValueError(f"{where}: argument {_label(name)} must be finite, got {value!r}")
    return value


def dout_like(where: str, dout, shape: tuple, name: str = "dout") -> np.ndarray:
    """Check an upstream gradient: a finite float array with the forward output's shape (for
    a scalar output, a Python or NumPy number is accepted as well)."""
    if shape == () and _is_number(dout):
        dout = np.asarray(dout)
        if not np.issubdtype(dout.dtype, np.floating):
            dout = dout.astype(np.float64)
    dout = float_array(where, name, dout, allow_empty=True)
    same_shape(where, name, dout, shape)
    return dout


# ---------------------------------------------------------------------------------------------
# Scalars and other non-array arguments.  Each returns the value (a Python scalar for numbers)
# so a caller can write ``n = _checks.integer(where, "n", n)``.

#: the largest magnitude an int argument may have: what fits in a NumPy int64.  Sizes, counts,
#: steps, ids and seeds past it cannot index an array or be used in NumPy arithmetic without
#: overflowing (or being silently rounded as a float), so they are refused up front.
INT_LIMIT = 2**63


def _fits_int64(where: str, name: str, value: int) -> int:
    if not -INT_LIMIT <= value < INT_LIMIT:
        shown = f"{value}" if abs(value) < 10**30 else f"an int of {value.bit_length()} bits"
        raise ValueError(f"{where}: argument {_label(name)} must be an int that fits in int64 "
                         f"(magnitude < 2**63), got {shown}")
    return value


def _is_number(value) -> bool:
    """A real number: Python or NumPy int or float, never a bool."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)))


def integer(where: str, name: str, value, low: int | None = None,
            high: int | None = None, int64: bool = True) -> int:
    """Check an int (Python or NumPy, not bool) with ``low <= value`` and ``value <= high``
    where given, and (unless ``int64`` is False, for exact counts such as FLOPs that may
    outgrow it) within int64; return it as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: argument {_label(name)} must be an int, "
                        f"got {_describe(value)}")
    value = _fits_int64(where, name, int(value)) if int64 else int(value)
    if low is not None and value < low:
        raise ValueError(f"{where}: argument {_label(name)} must be an int >= {low}, "
                         f"got {value}")
    if high is not None and value > high:
        raise ValueError(f"{where}: argument {_label(name)} must be an int <= {high}, "
                         f"got {value}")
    return value


def number(where: str, name: str, value, low: float | None = None,
           strict: bool = False, high: float | None = None) -> float:
    """Check a finite real number (Python or NumPy, not bool), ``>= low`` (``> low`` when
    ``strict``) and ``<= high`` where given; return it as a Python float (see :func:`real`)."""
    return real(where, name, value, -np.inf if low is None else low,
                np.inf if high is None else high, low_open=strict)


#: the largest standard deviation an initialiser takes: its draws (|z| < 40 in practice) stay
#: finite in float64
MAX_STD = 1e300


def std(where: str, name: str, value, strict: bool = False) -> float:
    """Check an initialiser's standard deviation: a finite number >= 0 (> 0 when ``strict``)
    and <= :data:`MAX_STD`, so that no draw overflows; return it as a Python float."""
    return number(where, name, value, low=0.0, strict=strict, high=MAX_STD)


def optional_number(where: str, name: str, value, low: float | None = None,
                    strict: bool = False) -> float | None:
    """None, or a number as :func:`number` checks it."""
    return None if value is None else number(where, name, value, low, strict=strict)


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
    """Check ``True`` or ``False`` (or a NumPy bool); ``1`` and ``"yes"`` are not booleans."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: argument {_label(name)} must be True or False, "
                        f"got {_describe(value)}")
    return bool(value)


def choice(where: str, name: str, value, choices) -> str:
    """Check that ``value`` is one of the strings ``choices``."""
    return string(where, name, value, choices)


def string(where: str, name: str, value, choices=None) -> str:
    """Check a str, one of ``choices`` where given (``ValueError`` listing them)."""
    if not isinstance(value, str):
        raise TypeError(f"{where}: argument {_label(name)} must be a str, "
                        f"got {_describe(value)}")
    if choices is not None and value not in choices:
        raise ValueError(f"{where}: argument {_label(name)} must be one of "
                         f"{sorted(choices)}, got {value!r}")
    return value


def function(where: str, name: str, value):
    """Check a callable: a function, a method or an object with ``__call__``, but not a class
    (``Policy(sample=MyPolicy)`` instead of ``MyPolicy().sample`` is a mistake)."""
    if not callable(value) or isinstance(value, type):
        raise TypeError(f"{where}: argument {_label(name)} must be a function, "
                        f"got {_describe(value)}")
    return value


def loss_and_grads_result(where: str, fn_name: str, result, context: str = "") -> tuple:
    """What a user's ``loss_and_grads``-like function (the argument ``fn_name``) returned:
    a pair ``(loss, grads)`` with a real number (or 0-d array) as the loss.  Returns the
    loss as a NumPy or Python scalar (not checked for finiteness) and ``grads`` unchecked.
    ``context`` (such as ``" for micro-batch 3"``) ends each message."""
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"{where}: argument {fn_name!r} must return a pair (loss, grads), "
                        f"got {_describe(result)}{context}")
    loss, grads = result
    if isinstance(loss, np.ndarray) and loss.ndim == 0:
        loss = loss[()]
    if not _is_number(loss):
        raise TypeError(f"{where}: argument {fn_name!r} must return a number as the loss, "
                        f"got {_describe(loss)}{context}")
    return loss, grads


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


def finite_result(where: str, what: str, tree, blame: str) -> None:
    """Check that a result computed from finite, checked inputs is still finite: a large
    but finite argument (``lr = 1e308``) can overflow float64.  ``what`` names the result
    (``"the new params"``; a tuple of trees counts as one tree), ``blame`` the arguments
    that make it overflow, as the message gives them (``"argument 'lr' = 1e+308"``).
    Raises ``ValueError`` instead of handing back inf or NaN."""
    for path, leaf in _leaves("", tree if isinstance(tree, tuple) else (tree,)):
        path = path.split("]", 1)[1]                       # drop the tuple's own index
        if leaf.size and not math.isfinite(_sum(leaf)) and not np.isfinite(leaf).all():
            raise ValueError(f"{where}: {blame} makes the result overflow float64 ({what}{path} "
                             f"came out NaN or inf from finite inputs); use a smaller value")


def _sum(x: np.ndarray):
    with np.errstate(over="ignore", invalid="ignore"):     # inf - inf, or a float16 overflow
        return np.add.reduce(x, axis=None)


def same_tree(where: str, name: str, flat: dict, like_name: str, like: dict,
              same_dtype: bool = True) -> None:
    """Check that the flat tree ``flat`` (from :func:`float_tree`) has the leaves of ``like``,
    each with the same shape and (when ``same_dtype``) the same dtype."""
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
        if same_dtype and flat[path].dtype != leaf.dtype:
            raise TypeError(f"{where}: argument {name}[{path!r}] must have dtype {leaf.dtype} "
                            f"like {like_name}[{path!r}], got {flat[path].dtype}")


def generator(where: str, name: str, rng) -> np.random.Generator:
    """Check a NumPy random generator (``np.random.default_rng(seed)``)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{where}: argument {_label(name)} must be a NumPy random Generator "
                        f"(np.random.default_rng(seed)), got {_describe(rng)}")
    return rng


def float_dtype(where: str, name: str, dtype) -> np.dtype:
    """Check a floating-point dtype (``np.float32``, ``"float64"``, ...); return it."""
    try:
        resolved = np.dtype(dtype) if dtype is not None else None
    except (TypeError, ValueError):                 # not something NumPy reads as a dtype
        resolved = None
    if resolved is None or not np.issubdtype(resolved, np.floating):
        raise TypeError(f"{where}: argument {_label(name)} must be a floating-point dtype, "
                        f"got {_describe(dtype)}")
    return resolved


# ---------------------------------------------------------------------------------------------
# The cache debug mode (see "Caches" in the module docstring).

def _debug_on() -> bool:
    """Whether the cache debug mode is on: the environment variable ``LLMREF_DEBUG_CACHE``,
    read at each call (no module state; set it before or while the program runs)."""
    return os.environ.get("LLMREF_DEBUG_CACHE", "").strip() not in ("", "0")


def debug_caches(enabled: bool) -> bool:
    """Turn the cache check on or off for this process by setting (or removing) the
    environment variable ``LLMREF_DEBUG_CACHE``; returns the previous setting (so a test
    can restore it)."""
    previous = _debug_on()
    if boolean("debug_caches", "enabled", enabled):
        os.environ["LLMREF_DEBUG_CACHE"] = "1"
    else:
        os.environ.pop("LLMREF_DEBUG_CACHE", None)
    return previous


def _checksum(a: np.ndarray) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((a.shape, a.dtype.str)).encode())
    h.update(np.ascontiguousarray(a).view(np.uint8).reshape(-1))
    return h.digest()


def _leaves(name: str, value):
    """``(label, array)`` for an array or every array of a nested dict/list of them."""
    if isinstance(value, np.ndarray):
        yield name, value
    elif isinstance(value, dict):
        for key, sub in value.items():
            yield from _leaves(f"{name}[{key!r}]", sub)
    elif isinstance(value, (list, tuple)):
        for i, sub in enumerate(value):
            yield from _leaves(f"{name}[{i}]", sub)


class _Guarded:
    """A cache together with checksums of the caller's arrays it holds by reference."""

    __slots__ = ("cache", "forward", "held")

    def __init__(self, cache, forward: str, held: list):
        self.cache, self.forward, self.held = cache, forward, held


def guard(where: str, cache, **held):
    """What a public forward returns as its cache: ``cache`` itself, or, in debug mode,
    ``cache`` wrapped with checksums of ``held`` (the caller's arrays, or dicts of them, that
    ``cache`` keeps by reference)."""
    if not _debug_on():
        return cache
    return _Guarded(cache, where, [(label, a, _checksum(a)) for name, value in held.items()
                                   for label, a in _leaves(name, value)])


def unguard(where: str, cache, length: int | None = None, forward: str | None = None):
    """The cache a public backward works on.  In debug mode, first verify that no input the
    forward's cache holds by reference has changed since the forward.  Then check the cache
    is of the forward's kind: a tuple of ``length`` items, or an array when ``length`` is
    None (a ``TypeError`` for anything else, such as None or another component's cache).
    ``forward`` names the function whose cache this is, for the message: by default
    ``X_forward`` for ``X_backward`` (``forward`` for ``backward``)."""
    if isinstance(cache, _Guarded):
        for label, a, digest in cache.held:
            if _checksum(a) != digest:
                shown = _label(label)
                raise ValueError(
                    f"{where}: argument 'cache' no longer matches its forward: the input "
                    f"{shown} given to {cache.forward} was changed in place between forward "
                    f"and backward (inputs must not change before the backward; found by the "
                    f"cache debug mode)")
        cache = cache.cache
    if forward is None:
        forward = where[:-len("backward")] + "forward"
    if length is None and not isinstance(cache, (np.ndarray, np.generic)):
        raise TypeError(f"{where}: argument 'cache' must be the cache {forward} returned (an "
                        f"array), got {_describe(cache)}")
    if length is not None and not (isinstance(cache, tuple) and len(cache) == length):
        raise TypeError(f"{where}: argument 'cache' must be the cache {forward} returned (a "
                        f"tuple of {length}), got {_describe(cache)[:80]}")
    return cache
