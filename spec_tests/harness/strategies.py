"""Hypothesis strategies shared by every spec test.

Arrays are built with ``hypothesis.extra.numpy``: shapes from ``array_shapes`` (size-1 and odd
dimensions included), elements from a range of a drawn magnitude (1e-3 to 1e3) with the edge
values mixed in, where functions change their rule or their rounding:

* exact zeros of both signs (ReLU's kink, GELU's and tanh's centre, sigmoid's 1/2);
* repeated values and exact ties: ``arrays`` fills most of an array with one value and sets a
  few others, so equal entries, equal row maxima and constant rows are common (argmax and
  top-k tie rules, softmax of equal logits, layer norm of a constant row);
* +-1e4, far outside the drawn magnitude (exp overflow, saturation);
* for float32 arrays, float32's subnormals and its smallest normal number.

``edges=False`` gives the smooth arrays the finite-difference tests need instead: continuous
normal values from a drawn seed, so no element sits on a kink, no two are equal and no row
is constant (a central difference across ReLU's kink, or through a layer norm whose input
has no variance, measures nothing).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

seeds = st.integers(min_value=0, max_value=2**32 - 1)

#: magnitudes from tiny to large; 1.0 is drawn most often.
scales = st.sampled_from([1.0, 1.0, 1e-3, 0.1, 10.0, 1e3])

#: values where element-wise functions change their rule or their rounding (any dtype)
EDGES = (0.0, -0.0, 1.0, -1.0, 1e4, -1e4)
_TINY32 = float(np.finfo(np.float32).smallest_subnormal)          # 1.4e-45
_NORMAL32 = float(np.finfo(np.float32).smallest_normal)           # 1.2e-38
#: float32 adds its subnormal range and the edge of its normal range
EDGES32 = EDGES + (_TINY32, -_TINY32, 100 * _TINY32, _NORMAL32, -_NORMAL32, _NORMAL32 / 2)


def sides(max_side: int = 7) -> st.SearchStrategy[int]:
    """Dimension sizes, 1 and odd sizes included."""
    return st.integers(min_value=1, max_value=max_side)


def shapes(min_dims: int = 1, max_dims: int = 3, max_side: int = 7):
    """Shapes of ``min_dims`` to ``max_dims`` dimensions, each of size 1..max_side."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=1,
                            max_side=max_side)


def elements(scale: float, dtype=np.float64, edges=True) -> st.SearchStrategy[float]:
    """Finite values in [-4 scale, 4 scale] with the edge values mixed in (``edges``: True
    for the defaults of the dtype, or a tuple of values)."""
    width = 32 if np.dtype(dtype) == np.float32 else 64
    bound = float(np.float32(4 * scale)) if width == 32 else 4 * scale
    values = st.floats(-bound, bound, allow_nan=False, allow_infinity=False, width=width)
    if edges is True:
        edges = EDGES32 if width == 32 else EDGES
    return st.one_of(values, st.sampled_from(edges)) if edges else values


@st.composite
def float_arrays(draw, shape=None, scale=None, min_dims=1, max_dims=3, max_side=7,
                 dtype=np.float64, edges=True):
    """An array of the given (or a drawn) shape.  ``shape`` may be a tuple, a strategy for
    one, or None for :func:`shapes`.  With ``edges`` (default) its elements come from
    :func:`elements`; with ``edges=False`` it is smooth: entries ~ N(0, scale^2) from a
    drawn seed."""
    if shape is None:
        shape = shapes(min_dims, max_dims, max_side)
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    scale = draw(scales) if scale is None else scale
    if not edges:
        rng = np.random.default_rng(draw(seeds))
        return (rng.standard_normal(shape) * scale).astype(dtype)
    return draw(hnp.arrays(dtype, shape, elements=elements(scale, dtype, edges)))


@st.composite
def token_ids(draw, shape=None, vocab_size=None, max_side=7):
    """``(ids, vocab_size)``: an int64 id array that always repeats at least one id
    when it has two or more elements (repeats are what an embedding backward gets wrong)."""
    shape = draw(shapes(1, 2, max_side)) if shape is None else shape
    vocab_size = draw(st.integers(1, 12)) if vocab_size is None else vocab_size
    ids = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, vocab_size - 1)))
    if ids.size >= 2:
        ids.flat[-1] = ids.flat[0]
    return ids, vocab_size


#: Unicode general categories that :func:`texts` draws characters from, by kind
TEXT_CATEGORIES = {
    "letters": ("Lu", "Ll", "Lt", "Lm", "Lo"),
    "numbers": ("Nd", "Nl", "No"),
    "marks": ("Mn", "Mc", "Me"),
    "punctuation": ("Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"),
    "symbols": ("Sm", "Sc", "Sk", "So"),
    "controls and formats": ("Cc", "Cf", "Co"),
}

#: whitespace as it comes in text: runs, newlines, the Unicode spaces, and the four ASCII
#: information separators (which Python's str.isspace counts as space and Unicode does not)
SPACES = (" ", "  ", "   ", "\n", "\n\n", " \n", "\n ", "\t", "\t\t", "\r\n", "\x0b", "\x0c",
          "\x85", "\u00a0", "\u1680", "\u2003", "\u2028", "\u2029", "\u3000", "\x1c", "\x1f")

#: emoji, single and in sequences (skin tone, zero-width joiner, variation selector, flag)
EMOJI = ("😀", "👍🏽", "👨‍👩‍👧", "❤️", "🇫🇷", "🤖", "🫠")

#: the apostrophe forms GPT-2's pattern treats specially, and near misses
APOSTROPHES = ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'", "''", "'x")


def texts(words=(), specials=(), max_fragments: int = 24):
    """Text made of fragments: runs of characters from each kind in :data:`TEXT_CATEGORIES`,
    ASCII words and numbers, :data:`SPACES`, :data:`EMOJI`, :data:`APOSTROPHES`, and any
    ``words`` (with or without a leading space, so that learned merges apply) and
    ``specials`` given.  Characters come from the categories as Python's ``unicodedata``
    assigns them (never unassigned code points or surrogates)."""
    fragments = [st.text(st.characters(categories=cats), min_size=1, max_size=4)
                 for cats in TEXT_CATEGORIES.values()]
    fragments += [st.from_regex(r"[A-Za-z]{1,8}|[0-9]{1,5}", fullmatch=True),
                  st.sampled_from(SPACES), st.sampled_from(EMOJI),
                  st.sampled_from(APOSTROPHES),
                  st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF,
                                categories=("So",))]
    if words:
        fragments.append(st.sampled_from(list(words)))
        fragments.append(st.sampled_from(list(words)).map(" ".__add__))
    if specials:
        fragments.append(st.sampled_from(list(specials)))
    return st.lists(st.one_of(fragments), max_size=max_fragments).map("".join)
