"""Argument checks the RLHF stage needs beyond `llmref._checks`: scalars of each kind,
boolean masks, functions and random generators.  Messages follow `_checks`: they name the
function, the argument, what was expected and what was given.
"""

from __future__ import annotations

import math

import numpy as np

from llmref import _checks


def integer(where: str, name: str, value, low: int | None = None) -> int:
    """An int (Python or NumPy, not bool), `>= low` where given; returned as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{where}: argument '{name}' must be an int, got "
                        f"{_checks._describe(value)}")
    if low is not None and value < low:
        raise ValueError(f"{where}: argument '{name}' must be >= {low}, got {value!r}")
    return int(value)


def number(where: str, name: str, value, low: float | None = None, high: float | None = None,
           strict: bool = False) -> float:
    """A finite real number (Python or NumPy, not bool) in `[low, high]` (`(low, high]` when
    `strict`) where given; returned as a Python float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
            value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{where}: argument '{name}' must be a number, got "
                        f"{_checks._describe(value)}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where}: argument '{name}' must be finite, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        raise ValueError(f"{where}: argument '{name}' must be {'>' if strict else '>='} {low}, "
                         f"got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{where}: argument '{name}' must be <= {high}, got {value!r}")
    return value


def optional_number(where: str, name: str, value, low: float | None = None,
                    strict: bool = False) -> float | None:
    """None, or a number as :func:`number` checks it."""
    return None if value is None else number(where, name, value, low, strict=strict)


def boolean(where: str, name: str, value) -> bool:
    """True or False (or a NumPy bool); 1 and "yes" are not booleans."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{where}: argument '{name}' must be True or False, got "
                        f"{_checks._describe(value)}")
    return bool(value)


def function(where: str, name: str, value):
    if not callable(value) or isinstance(value, type):
        raise TypeError(f"{where}: argument '{name}' must be a function, got "
                        f"{_checks._describe(value)}")
    return value


def generator(where: str, name: str, rng) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{where}: argument '{name}' must be a NumPy random Generator "
                        f"(np.random.default_rng(seed)), got {_checks._describe(rng)}")
    return rng


def bool_array(where: str, name: str, mask, shape: tuple) -> np.ndarray:
    """A boolean NumPy array of exactly `shape` (an int 0/1 mask is refused: `~1` is -2)."""
    if not isinstance(mask, np.ndarray) or mask.dtype != bool:
        got = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else \
            _checks._describe(mask)
        raise TypeError(f"{where}: argument '{name}' must be a boolean NumPy array, got {got}"
                        f"; convert a 0/1 mask with mask.astype(bool)")
    _checks.same_shape(where, name, mask, shape)
    return mask


def optional_mask(where: str, name: str, mask, shape: tuple) -> np.ndarray:
    """`mask` checked as :func:`bool_array`, or all True when None; at least one True."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    bool_array(where, name, mask, shape)
    if not mask.any():
        raise ValueError(f"{where}: argument '{name}' must select at least one entry, got "
                         f"none")
    return mask


def float_array(where: str, name: str, x, ndim: int | None = None) -> np.ndarray:
    """`_checks.float_array`, with a NumPy scalar (what indexing a 1-D array gives) counted as
    a 0-d array, so a missing axis is a ValueError about the rank, not a TypeError."""
    if isinstance(x, np.generic) and np.issubdtype(x.dtype, np.floating) and ndim:
        raise ValueError(f"{where}: argument '{name}' must have {ndim} dimension(s), got a "
                         f"scalar {x!r}")
    return _checks.float_array(where, name, x, ndim=ndim)
