"""A word-level tokenizer for the lessons' toy sentences ("the cat sat on the mat").

Words are split on whitespace and numbered in order of first appearance.  A word outside the
vocabulary is an error, not a silent ``<unk>``: the toy networks have no such token.
``decode(encode(s))`` gives ``s`` with its whitespace normalised to single spaces.
"""

from __future__ import annotations

import numpy as np


def build_vocab(text: str) -> dict:
    """``{word: id}`` for every distinct whitespace-separated word, ids by first appearance."""
    if not isinstance(text, str):
        raise TypeError(f"word_tokenizer.build_vocab: argument 'text' must be a str, "
                        f"got {type(text).__name__}")
    vocab: dict = {}
    for word in text.split():
        vocab.setdefault(word, len(vocab))
    if not vocab:
        raise ValueError("word_tokenizer.build_vocab: argument 'text' has no words")
    return vocab


def encode(text: str, vocab: dict) -> np.ndarray:
    """Word ids of ``text`` (int64); an unknown word raises ``ValueError`` naming it."""
    ids = []
    for word in text.split():
        if word not in vocab:
            known = ", ".join(list(vocab)[:10])
            raise ValueError(f"word_tokenizer.encode: argument 'text' has the word {word!r}, "
                             f"which is not in the vocabulary ({len(vocab)} words: {known}"
                             f"{', ...' if len(vocab) > 10 else ''})")
        ids.append(vocab[word])
    return np.array(ids, dtype=np.int64)


def decode(ids, vocab: dict) -> str:
    """The words of ``ids`` joined by single spaces; an unknown id raises ``ValueError``."""
    words = {i: w for w, i in vocab.items()}
    out = []
    for i in np.asarray(ids).ravel().tolist():
        if i not in words:
            raise ValueError(f"word_tokenizer.decode: argument 'ids' has id {i}, outside the "
                             f"vocabulary [0, {len(vocab)})")
        out.append(words[i])
    return " ".join(out)
