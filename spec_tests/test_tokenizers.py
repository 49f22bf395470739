"""Word-level and byte-level BPE tokenizers."""

import functools
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

SENTENCE = "the cat sat on the mat"
CORPUS = ("the cat sat on the mat. the dog sat on the log. "
          "two plus three equals five. a cat and a dog met on a mat. ") * 4


def test_word_tokenizer_round_trip_and_ids(impl):
    vocab = impl("word_tokenizer.build_vocab")(SENTENCE)
    assert vocab == {"the": 0, "cat": 1, "sat": 2, "on": 3, "mat": 4}
    ids = impl("word_tokenizer.encode")(SENTENCE, vocab)
    assert ids.tolist() == [0, 1, 2, 3, 0, 4]
    assert impl("word_tokenizer.decode")(ids, vocab) == SENTENCE


def test_word_tokenizer_rejects_unknown_words_and_ids(impl):
    vocab = impl("word_tokenizer.build_vocab")(SENTENCE)
    with pytest.raises(ValueError, match="'dog', which is not in the vocabulary"):
        impl("word_tokenizer.encode")("the dog sat", vocab)
    with pytest.raises(ValueError, match=r"id 7, outside the vocabulary \[0, 5\)"):
        impl("word_tokenizer.decode")([0, 7], vocab)


@given(st.text(max_size=200))
def test_bpe_round_trips_arbitrary_text(impl, text):
    """Any Unicode string, emoji and control characters included, comes back unchanged."""
    merges = _merges(impl)
    ids = impl("bpe.encode")(text, merges)
    assert ids.dtype.kind == "i" and (ids.size == 0 or ids.max() < 256 + len(merges))
    assert impl("bpe.decode")(ids, merges) == text


@functools.cache
def _merges(impl):
    """Train once per implementation: the hypothesis test calls this for every example."""
    return impl("bpe.train")(CORPUS, 256 + 40)


def test_bpe_merges_are_learned_most_frequent_first(impl):
    """Replaying the merges on the training text: each merged pair was, at that moment, the
    most frequent adjacent pair (ties going to the smallest pair), counted independently."""
    merges = _merges(impl)
    assert len(merges) == 40
    tokens = list(CORPUS.encode("utf-8"))
    for i, pair in enumerate(merges):
        counts = Counter(pairwise(tokens))
        best = max(counts.values())
        assert counts[pair] == best, f"merge {i} {pair} occurs {counts[pair]} < {best} times"
        assert pair == min(p for p, c in counts.items() if c == best)
        merged, j = [], 0
        while j < len(tokens):
            if j + 1 < len(tokens) and (tokens[j], tokens[j + 1]) == pair:
                merged.append(256 + i)
                j += 2
            else:
                merged.append(tokens[j])
                j += 1
        tokens = merged
    assert impl("bpe.encode")(CORPUS, merges).tolist() == tokens


def test_bpe_compresses_its_training_text(impl):
    merges = _merges(impl)
    assert len(impl("bpe.encode")(CORPUS, merges)) < 0.5 * len(CORPUS.encode("utf-8"))


def test_bpe_rejects_bad_input(impl):
    with pytest.raises(ValueError, match="'vocab_size' must be an int >= 256"):
        impl("bpe.train")("abc", 100)
    with pytest.raises(TypeError, match="'text' must be a str"):
        impl("bpe.encode")(b"bytes", [])
    with pytest.raises(ValueError, match=r"'ids' must hold values in \[0, 256\), got 300"):
        impl("bpe.decode")(np.array([1, 300]), [])
