"""A word-level tokenizer for the lessons' toy sentences ("the cat sat on the mat").

Words are split on whitespace and numbered in order of first appearance.  A word outside the
vocabulary is an error, not a silent `<unk>`: the toy networks have no such token.
`decode(encode(s))` gives `s` with its whitespace normalised to single spaces.

A vocabulary is a dict `{word: id}` whose ids are exactly `0, 1, ..., V-1`, each once (what
`build_vocab` returns); `encode` and `decode` check that before using one.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract

_SENTENCE = "the cat sat on the mat"


@contract(example=lambda rng: {"text": _SENTENCE})
def build_vocab(text: str) -> dict:
    """Number every distinct whitespace-separated word of `text` by first appearance.

    Parameters
    ----------
    text : str
        Training text; at least one word.

    Returns
    -------
    vocab : dict
        `{word: id}`, ids `0 .. V-1` in order of first appearance.

    Raises
    ------
    TypeError
        If `text` is not a str.
    ValueError
        If `text` has no words (empty or only whitespace).
    """
    _checks.string("word_tokenizer.build_vocab", "text", text)
    vocab: dict = {}
    for word in text.split():
        vocab.setdefault(word, len(vocab))
    if not vocab:
        raise ValueError("word_tokenizer.build_vocab: argument 'text' has no words")
    return vocab


def _check_vocab(where: str, vocab) -> dict:
    """Check a vocabulary: a non-empty dict of str words to the ids 0 .. V-1, each once."""
    if not isinstance(vocab, dict):
        raise TypeError(f"{where}: argument 'vocab' must be a dict {{word: id}}, "
                        f"got {_checks._describe(vocab)}")
    if not vocab:
        raise ValueError(f"{where}: argument 'vocab' must not be empty")
    for word, i in vocab.items():
        if not isinstance(word, str):
            raise TypeError(f"{where}: argument 'vocab' must have str words, "
                            f"got the key {word!r}")
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"{where}: argument 'vocab' must map words to int ids, "
                            f"got {word!r}: {i!r}")
    ids = sorted(int(i) for i in vocab.values())
    if ids != list(range(len(vocab))):
        raise ValueError(f"{where}: argument 'vocab' must use the ids 0 .. {len(vocab) - 1}, "
                         f"each once (as build_vocab makes them), got {len(set(ids))} distinct "
                         f"id(s) from {ids[0]} to {ids[-1]}")
    return vocab


@contract(example=lambda rng: {"text": _SENTENCE, "vocab": build_vocab(_SENTENCE)})
def encode(text: str, vocab: dict) -> np.ndarray:
    """The id of every whitespace-separated word of `text`.

    Parameters
    ----------
    text : str
        Text made of vocabulary words (an empty text gives an empty array).
    vocab : dict
        `{word: id}` with ids 0 .. V-1, as `build_vocab` returns.

    Returns
    -------
    ids : ndarray, shape (n_words,), int64

    Raises
    ------
    TypeError
        If `text` is not a str or `vocab` not a dict of str to int.
    ValueError
        If a word of `text` is not in `vocab` (the message names it), or the ids of `vocab`
        are not 0 .. V-1.
    """
    where = "word_tokenizer.encode"
    _checks.string(where, "text", text)
    _check_vocab(where, vocab)
    ids = []
    for word in text.split():
        if word not in vocab:
            known = ", ".join(list(vocab)[:10])
            raise ValueError(f"{where}: argument 'text' has the word {word!r}, "
                             f"which is not in the vocabulary 'vocab' ({len(vocab)} words: "
                             f"{known}{', ...' if len(vocab) > 10 else ''})")
        ids.append(vocab[word])
    return np.array(ids, dtype=np.int64)


@contract(example=lambda rng: {"ids": np.array([0, 1, 2, 3, 0, 4]),
                               "vocab": build_vocab(_SENTENCE)},
          lenient={"ids": ("list", "empty")})
def decode(ids, vocab: dict) -> str:
    """The words of `ids` joined by single spaces.

    Parameters
    ----------
    ids : ndarray of int, or list of int
        Word ids, each in [0, V) (any shape; read in order). Empty gives `""`.
    vocab : dict
        `{word: id}` with ids 0 .. V-1, as `build_vocab` returns.

    Returns
    -------
    text : str

    Raises
    ------
    TypeError
        If `ids` is not an integer array or a list of ints, or `vocab` not a dict of str to
        int.
    ValueError
        If an id is outside [0, V), or the ids of `vocab` are not 0 .. V-1.
    """
    where = "word_tokenizer.decode"
    _check_vocab(where, vocab)
    ids = _checks.id_list(where, "ids", ids)
    words = {int(i): w for w, i in vocab.items()}
    out = []
    for i in ids:
        if i not in words:
            raise ValueError(f"{where}: argument 'ids' has id {i}, outside the "
                             f"vocabulary [0, {len(vocab)})")
        out.append(words[i])
    return " ".join(out)

