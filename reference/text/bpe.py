"""Byte-level byte-pair encoding (BPE): the kind of tokenizer GPT-2 uses.

Text is first turned into UTF-8 bytes, so the 256 byte values are the base vocabulary and any
string at all can be encoded.  Training repeats one step: find the most frequent pair of
adjacent tokens in the training text (ties: the smallest pair) and replace every occurrence,
left to right, with a new token ``256 + i``.  The list of merges, in the order learned, is the
whole tokenizer.  Encoding applies the merges to new text by rank (earliest learned first);
decoding expands each token back into its bytes.

Unlike GPT-2 this version does not pre-split the text into words with a regular expression,
so merges may cross spaces; it is meant for small corpora and for reading.  ``gpt2_tokenizer``
is the version that gives GPT-2's ids: pre-split words, special tokens, its files.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np

from llmref import _checks
from llmref._contract import contract


def _merge(tokens: list, pair: tuple, new: int) -> list:
    out, i = [], 0
    while i < len(tokens):
        if i + 1 < len(tokens) and (tokens[i], tokens[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return out


def _check_text(where: str, text) -> None:
    _checks.string(where, "text", text)


def _check_merges(where: str, merges) -> list:
    """Check a merge list: merge ``i`` is a pair of token ids known before it, each in
    ``[0, 256 + i)``."""
    if not isinstance(merges, (list, tuple)):
        raise TypeError(f"{where}: argument 'merges' must be a list of (a, b) pairs, "
                        f"got {_checks._describe(merges)}")
    for i, pair in enumerate(merges):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2):
            raise TypeError(f"{where}: argument 'merges' must hold (a, b) pairs, "
                            f"got {pair!r} at position {i}")
        for t in pair:
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)):
                raise TypeError(f"{where}: argument 'merges' must hold pairs of int token "
                                f"ids, got {pair!r} at position {i}")
            if not 0 <= t < 256 + i:
                raise ValueError(f"{where}: argument 'merges' has {pair!r} at position {i}; "
                                 f"merge {i} may only join tokens in [0, {256 + i}) (bytes and "
                                 f"earlier merges)")
    return merges


_CORPUS = "the cat sat on the mat; the cat ate the rat"


@contract(example=lambda rng: {"text": _CORPUS, "vocab_size": 262})
def train(text: str, vocab_size: int) -> list:
    """Learn merges from `text`: repeatedly merge the most frequent adjacent pair.

    Ties between equally frequent pairs go to the smallest pair. Training stops when the
    vocabulary has `vocab_size` tokens or the text has shrunk to a single token.

    Parameters
    ----------
    text : str
        Training text (any Unicode; it is encoded as UTF-8).
    vocab_size : int
        Target vocabulary size, >= 256 (256 learns nothing).

    Returns
    -------
    merges : list of tuple
        `[(a, b), ...]` in the order learned; merge `i` makes token `256 + i`.

    Raises
    ------
    TypeError
        If `text` is not a str or `vocab_size` not an int.
    ValueError
        If `vocab_size` < 256.
    """
    _check_text("bpe.train", text)
    vocab_size = _checks.integer("bpe.train", "vocab_size", vocab_size, low=256)
    tokens = list(text.encode("utf-8"))
    merges = []
    for new in range(256, vocab_size):
        counts = Counter(pairwise(tokens))
        if not counts:
            break
        best = max(counts.values())
        pair = min(p for p, c in counts.items() if c == best)
        tokens = _merge(tokens, pair, new)
        merges.append(pair)
    return merges


@contract(example=lambda rng: {"merges": train(_CORPUS, 262)}, lenient={"merges": ("empty",)})
def vocabulary(merges: list) -> dict:
    """The bytes each token id stands for.

    Parameters
    ----------
    merges : list of (int, int)
        As `train` returns them.

    Returns
    -------
    table : dict
        `{token id: bytes}` for the 256 byte values and every merge.

    Raises
    ------
    TypeError
        If `merges` is not a list of pairs of ints.
    ValueError
        If merge `i` joins a token that does not exist before it (outside [0, 256 + i)).
    """
    _check_merges("bpe.vocabulary", merges)
    return _vocabulary(merges)


def _vocabulary(merges: list) -> dict:
    table = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        table[256 + i] = table[a] + table[b]
    return table


@contract(example=lambda rng: {"text": "the mat sat", "merges": train(_CORPUS, 262)},
          lenient={"merges": ("empty",)})
def encode(text: str, merges: list) -> np.ndarray:
    """Token ids of `text`: its UTF-8 bytes with the merges applied by rank.

    Parameters
    ----------
    text : str
        Any Unicode text (empty gives an empty array).
    merges : list of (int, int)
        As `train` returns them; the earliest learned merge applies first.

    Returns
    -------
    ids : ndarray, shape (n_tokens,), int64
        Each in [0, 256 + len(merges)).

    Raises
    ------
    TypeError
        If `text` is not a str or `merges` not a list of pairs of ints.
    ValueError
        If merge `i` joins a token that does not exist before it.
    """
    _check_text("bpe.encode", text)
    _check_merges("bpe.encode", merges)
    rank = {tuple(pair): i for i, pair in enumerate(merges)}
    tokens = list(text.encode("utf-8"))
    while len(tokens) > 1:
        pair = min(pairwise(tokens), key=lambda p: rank.get(p, len(rank)))
        if pair not in rank:
            break
        tokens = _merge(tokens, pair, 256 + rank[pair])
    return np.array(tokens, dtype=np.int64)


@contract(example=lambda rng: {"ids": np.array([116, 104, 256, 257]),
                               "merges": train(_CORPUS, 262)},
          lenient={"ids": ("list", "empty"), "merges": ("empty",)})
def decode(ids, merges: list) -> str:
    """The text of `ids`; bytes that are not valid UTF-8 become U+FFFD.

    Parameters
    ----------
    ids : ndarray of int, or list of int
        Token ids, each in [0, 256 + len(merges)) (any shape; read in order). Empty gives
        `""`.
    merges : list of (int, int)
        As `train` returns them.

    Returns
    -------
    text : str

    Raises
    ------
    TypeError
        If `ids` is not an integer array or a list of ints, or `merges` not a list of pairs
        of ints.
    ValueError
        If an id is outside [0, 256 + len(merges)), or a merge is malformed.
    """
    _check_merges("bpe.decode", merges)
    table = _vocabulary(merges)
    ids = _checks.id_list("bpe.decode", "ids", ids)
    bad = [i for i in ids if not 0 <= i < len(table)]
    if bad:
        raise ValueError(f"bpe.decode: argument 'ids' must hold values in [0, {len(table)}), "
                         f"got {bad[0]}")
    return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")
