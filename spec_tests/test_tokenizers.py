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


def test_bpe_edge_texts_and_the_vocabulary(impl):
    """One byte stays one token; two bytes merge when a merge joins them; ``vocabulary``
    spells every token, a merge being its two parts' bytes joined in order."""
    merges = [(97, 98), (256, 99), (99, 256)]                  # ab, abc, cab
    encode, decode = impl("bpe.encode"), impl("bpe.decode")
    assert encode("a", merges).tolist() == [97]
    assert encode("ab", merges).tolist() == [256]
    assert encode("ba", merges).tolist() == [98, 97]
    assert encode("", merges).tolist() == []
    assert encode("cabc", merges).tolist() == [99, 257]       # rank 1 before rank 2
    assert encode("cab", merges).tolist() == [258]
    table = impl("bpe.vocabulary")(merges)
    assert len(table) == 259 and all(table[i] == bytes([i]) for i in range(256))
    assert (table[256], table[257], table[258]) == (b"ab", b"abc", b"cab")
    assert decode([0, 255, 256, 258], merges) == "\x00" + b"\xff".decode("utf-8", "replace") \
        + "abcab"
    nul = [(0, 97), (256, 0)]                                  # token 0 may be merged
    assert encode("\x00a\x00", nul).tolist() == [257]
    assert impl("bpe.vocabulary")(nul)[257] == b"\x00a\x00"
    empty = encode("", merges)
    assert empty.dtype == np.int64 and empty.shape == (0,)


def test_bpe_training_stops_when_the_text_runs_out_of_pairs(impl):
    """"abab": merge (a, b), then (ab, ab); then one token is left and training stops short
    of the asked size.  One character learns nothing; an empty text neither."""
    train = impl("bpe.train")
    assert train("abab", 300) == [(97, 98), (256, 256)]
    assert train("a", 300) == [] and train("", 300) == []
    assert train("abab", 257) == [(97, 98)] and train("abab", 256) == []


#: (function, args, exception, substrings of the message) for every refusal of bpe
BPE_BAD = {
    "merges not a list": ("bpe.encode", ("ab", {(97, 98)}), TypeError,
                          ["'merges'", "list of (a, b) pairs", "set"]),
    "a merge not a pair": ("bpe.decode", ([97], [(97, 98, 99)]), TypeError,
                           ["'merges'", "(a, b) pairs", "(97, 98, 99)", "position 0"]),
    "a merge of floats": ("bpe.vocabulary", ([(97, 98), (97.0, 98)],), TypeError,
                          ["'merges'", "int token ids", "(97.0, 98)", "position 1"]),
    "a merge of bools": ("bpe.encode", ("ab", [(True, 98)]), TypeError,
                         ["'merges'", "int token ids", "(True, 98)", "position 0"]),
    "a merge of itself": ("bpe.encode", ("ab", [(97, 98), (257, 97)]), ValueError,
                          ["'merges'", "(257, 97)", "position 1", "[0, 257)"]),
    "a merge of the token it makes": ("bpe.vocabulary", ([(97, 256)],), ValueError,
                                      ["'merges'", "(97, 256)", "position 0", "[0, 256)"]),
    "a negative token": ("bpe.decode", ([97], [(-1, 98)]), ValueError,
                         ["'merges'", "(-1, 98)", "position 0", "[0, 256)"]),
    "an id just past the vocabulary": ("bpe.decode", ([97, 257], [(97, 98)]), ValueError,
                                       ["'ids'", "[0, 257)", "got 257"]),
    "a negative id": ("bpe.decode", (np.array([-1, 3]), []), ValueError,
                      ["'ids'", "[0, 256)", "got -1"]),
    "vocabulary size a float": ("bpe.train", ("abc", 300.0), TypeError,
                                ["'vocab_size'", "300.0"]),
    "training on bytes": ("bpe.train", (b"abc", 300), TypeError, ["'text'", "str", "bytes"]),
}


@pytest.mark.parametrize("case", BPE_BAD)
def test_bpe_refuses_bad_input_naming_function_argument_and_value(impl, case):
    fn, args, exc, parts = BPE_BAD[case]
    with pytest.raises(exc) as info:
        impl(fn)(*args)
    assert str(info.value).startswith(f"{fn}: "), str(info.value)
    for part in parts:
        assert part in str(info.value), (part, str(info.value))


def test_bpe_accepts_numpy_integer_merges_and_ids(impl):
    merges = [(np.int64(97), np.int32(98))]
    assert impl("bpe.encode")("ab", merges).tolist() == [256]
    assert impl("bpe.decode")(np.array([[256, 99]]), merges) == "abc"
    assert impl("bpe.vocabulary")([(97, 98), [256, 256]])[257] == b"abab"


WORD_BAD = {
    "vocab not a dict": ("word_tokenizer.encode", ("a", [("a", 0)]), TypeError,
                         ["'vocab'", "dict", "list"]),
    "vocab empty": ("word_tokenizer.decode", ([], {}), ValueError, ["'vocab'", "empty"]),
    "vocab with a non-str word": ("word_tokenizer.encode", ("a", {"a": 0, 1: 1}), TypeError,
                                  ["'vocab'", "str words", "1"]),
    "vocab with a bool id": ("word_tokenizer.encode", ("a", {"a": False}), TypeError,
                             ["'vocab'", "int ids", "'a': False"]),
    "vocab with a float id": ("word_tokenizer.decode", ([0], {"a": 0.0}), TypeError,
                              ["'vocab'", "int ids", "'a': 0.0"]),
    "vocab with a gap": ("word_tokenizer.encode", ("a", {"a": 0, "b": 2}), ValueError,
                         ["'vocab'", "0 .. 1", "2 distinct id(s) from 0 to 2"]),
    "vocab starting at 1": ("word_tokenizer.decode", ([1], {"a": 1}), ValueError,
                            ["'vocab'", "0 .. 0", "1 distinct id(s) from 1 to 1"]),
    "vocab with an id twice": ("word_tokenizer.encode", ("a", {"a": 0, "b": 0}), ValueError,
                               ["'vocab'", "0 .. 1", "1 distinct id(s) from 0 to 0"]),
    "text with no words": ("word_tokenizer.build_vocab", (" \n\t",), ValueError,
                           ["'text'", "no words"]),
    "text not a str": ("word_tokenizer.build_vocab", (["a"],), TypeError,
                       ["'text'", "str", "list"]),
    "an id just past the vocabulary": ("word_tokenizer.decode", (np.array([1, 2]),
                                                                 {"a": 0, "b": 1}),
                                       ValueError, ["'ids'", "id 2", "[0, 2)"]),
    "a negative id": ("word_tokenizer.decode", ([-1], {"a": 0}), ValueError,
                      ["'ids'", "id -1", "[0, 1)"]),
}


@pytest.mark.parametrize("case", WORD_BAD)
def test_word_tokenizer_refuses_bad_input_naming_function_argument_and_value(impl, case):
    fn, args, exc, parts = WORD_BAD[case]
    with pytest.raises(exc) as info:
        impl(fn)(*args)
    assert str(info.value).startswith(f"{fn}: "), str(info.value)
    for part in parts:
        assert part in str(info.value), (part, str(info.value))


@pytest.mark.reference_only
def test_word_tokenizer_names_at_most_ten_known_words(impl):
    """The unknown-word message lists the vocabulary's size and its first ten words, with
    ", ..." only when there are more."""
    encode = impl("word_tokenizer.encode")
    for n in (9, 10, 11):
        words = [f"w{i}" for i in range(n)]
        vocab = {w: i for i, w in enumerate(words)}
        with pytest.raises(ValueError) as info:
            encode("w0 zz", vocab)
        message = str(info.value)
        assert message.startswith("word_tokenizer.encode: argument 'text' has the word 'zz'")
        assert f"({n} words: {', '.join(words[:10])}{', ...' if n > 10 else ''})" in message


def test_word_tokenizer_ids_follow_first_appearance_and_ignore_whitespace(impl):
    vocab = impl("word_tokenizer.build_vocab")("  b a\tb\nc  ")
    assert vocab == {"b": 0, "a": 1, "c": 2}
    ids = impl("word_tokenizer.encode")("c\n a  b", vocab)
    assert ids.dtype == np.int64 and ids.tolist() == [2, 1, 0]
    empty = impl("word_tokenizer.encode")("  ", vocab)
    assert empty.dtype == np.int64 and empty.shape == (0,)
    assert impl("word_tokenizer.decode")(np.array([[2, 2], [0, 1]]), vocab) == "c c b a"
    assert impl("word_tokenizer.decode")([], vocab) == ""
    shuffled = {"c": np.int64(2), "a": 1, "b": 0}
    assert impl("word_tokenizer.decode")([0, 1, 2], shuffled) == "b a c"
