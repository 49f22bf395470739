"""Hypothesis strategies shared by every spec test.

Arrays are made from a drawn seed, shape and magnitude: that keeps examples cheap to generate
while still covering size-1 and odd dimensions and values from 1e-3 to 1e3 in size.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

seeds = st.integers(min_value=0, max_value=2**32 - 1)

#: magnitudes from tiny to large; 1.0 is drawn most often.
scales = st.sampled_from([1.0, 1.0, 1e-3, 0.1, 10.0, 1e3])


def sides(max_side: int = 7) -> st.SearchStrategy[int]:
    """Dimension sizes, 1 and odd sizes included."""
    return st.integers(min_value=1, max_value=max_side)


def shapes(min_dims: int = 1, max_dims: int = 3, max_side: int = 7):
    """Shapes of ``min_dims`` to ``max_dims`` dimensions, each of size 1..max_side."""
    return st.integers(min_dims, max_dims).flatmap(
        lambda n: st.tuples(*[sides(max_side)] * n))


@st.composite
def float_arrays(draw, shape=None, scale=None, min_dims=1, max_dims=3, max_side=7):
    """A float64 array of the given (or a drawn) shape with entries ~ N(0, scale^2).
    ``shape`` may be a tuple, a strategy for one, or None for :func:`shapes`."""
    if shape is None:
        shape = shapes(min_dims, max_dims, max_side)
    if isinstance(shape, st.SearchStrategy):
        shape = draw(shape)
    scale = draw(scales) if scale is None else scale
    rng = np.random.default_rng(draw(seeds))
    return rng.standard_normal(shape) * scale


@st.composite
def token_ids(draw, shape=None, vocab_size=None, max_side=7):
    """``(ids, vocab_size)``: an int64 id array that always repeats at least one id
    when it has two or more elements (repeats are what an embedding backward gets wrong)."""
    shape = draw(shapes(1, 2, max_side)) if shape is None else shape
    vocab_size = draw(st.integers(1, 12)) if vocab_size is None else vocab_size
    rng = np.random.default_rng(draw(seeds))
    ids = rng.integers(0, vocab_size, size=shape)
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
