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
    if not isinstance(text, str):
        raise TypeError(f"{where}: argument 'text' must be a str, got {type(text).__name__}")


def train(text: str, vocab_size: int) -> list:
    """Merges ``[(a, b), ...]`` learned from ``text`` until the vocabulary has
    ``vocab_size`` tokens or the text has shrunk to a single token."""
    _check_text("bpe.train", text)
    _checks.positive("bpe.train", "vocab_size", vocab_size, integer=True)
    if vocab_size < 256:
        raise ValueError(f"bpe.train: argument 'vocab_size' must be >= 256 (the byte values), "
                         f"got {vocab_size}")
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


def vocabulary(merges: list) -> dict:
    """``{token id: bytes}`` for the 256 bytes and every merge."""
    table = {i: bytes([i]) for i in range(256)}
    for i, (a, b) in enumerate(merges):
        table[256 + i] = table[a] + table[b]
    return table


def encode(text: str, merges: list) -> np.ndarray:
    """Token ids of ``text`` (int64)."""
    _check_text("bpe.encode", text)
    rank = {pair: i for i, pair in enumerate(merges)}
    tokens = list(text.encode("utf-8"))
    while len(tokens) > 1:
        pair = min(pairwise(tokens), key=lambda p: rank.get(p, len(rank)))
        if pair not in rank:
            break
        tokens = _merge(tokens, pair, 256 + rank[pair])
    return np.array(tokens, dtype=np.int64)


def decode(ids, merges: list) -> str:
    """The text of ``ids``; bytes that are not valid UTF-8 become U+FFFD."""
    table = vocabulary(merges)
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= len(table)):
        bad = int(ids[(ids < 0) | (ids >= len(table))][0])
        raise ValueError(f"bpe.decode: argument 'ids' must hold values in [0, {len(table)}), "
                         f"got {bad}")
    return b"".join(table[int(i)] for i in ids.ravel()).decode("utf-8", errors="replace")
