"""GPT-2's tokenizer: pre-tokenisation, byte-level BPE merged by rank, special tokens, files.

The fast tests check the rules with oracles written here (hand-derived splits, a slow
merge-by-hand of each piece read from the written ``merges.txt``).  The tests marked
``parity`` (``python -m pytest -m parity``; needs the ``parity`` extra) check that the ids are
those of the ``tokenizers`` library loaded from the same ``vocab.json`` and ``merges.txt``, on
random text from the Unicode categories in ``harness.strategies.TEXT_CATEGORIES``.
"""

import functools
import json
import unicodedata
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmref.spec.harness import oracles, strategies

EOT = "<|endoftext|>"
SPECIALS = (EOT, "<|pad|>")


def _made_up_corpus() -> tuple:
    """``(text, words)``: made-up words drawn with Zipf-like frequencies, some non-Latin
    words, numbers, punctuation and emoji, separated mostly by single spaces."""
    rng = np.random.default_rng(0)
    syllables = ["th", "e", "an", "in", "er", "on", "re", "at", "st", "ing", "ed", "ou", "ca",
                 "ma", "lo", "ta", "s", "y", "qu", "ph", "A", "Th"]
    made = sorted({"".join(rng.choice(syllables, size=rng.integers(1, 4))) for _ in range(400)})
    words = made + ["It's", "don't", "we'll", "they're", "naïve", "café", "Ωμέγα", "привет",
                    "東京", "नमस्ते", "2024", "3.14", "1000000", "...", "!?", "--", "«»",
                    "😀", "👍🏽"]
    order = rng.permutation(len(words))
    weights = 1.0 / np.arange(1, len(words) + 1)
    drawn = rng.choice(np.array(words, dtype=object)[order], size=6000, p=weights / weights.sum())
    separators = [" "] * 30 + ["\n", "\n\n", "  ", "\t", ", ", ". ", f" {EOT} "]
    seps = rng.choice(separators, size=len(drawn))
    return "".join(w + s for w, s in zip(drawn, seps, strict=True)), tuple(words)


CORPUS, WORDS = _made_up_corpus()
VOCAB_SIZE = 800


@functools.cache
def _trained(impl):
    """Train once per implementation: the hypothesis tests call this for every example."""
    return impl("gpt2_tokenizer.train")(CORPUS, VOCAB_SIZE, SPECIALS)


@pytest.fixture(scope="module")
def files(impl, tmp_path_factory):
    """The trained tokenizer written by ``save``: ``(vocab.json path, merges.txt path)``."""
    folder = tmp_path_factory.mktemp("gpt2_tokenizer")
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    impl("gpt2_tokenizer.save")(_trained(impl), vocab, merges)
    return vocab, merges


def _read_files(vocab_path, merges_path) -> tuple:
    """``(vocab, ranks)`` read here, independently of the implementation's loader."""
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    lines = merges_path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("#version")
    return vocab, {tuple(line.split(" ")): rank for rank, line in enumerate(lines[1:])}


# --- bytes as characters ------------------------------------------------------------------

def test_bytes_to_unicode_is_gpt2s_table(impl):
    """Facts about GPT-2's vocabulary: token 0 is "!", 220 the space "Ġ", 198 the newline
    "Ċ", 188 the byte 0 "Ā"; every byte has its own printable, non-space character."""
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    assert sorted(table) == list(range(256))
    assert len(set(table.values())) == 256
    assert all(len(c) == 1 and c.isprintable() and not c.isspace() for c in table.values())
    in_id_order = list(table)
    assert [in_id_order[i] for i in (0, 32, 64, 93, 94, 188, 198, 220)] == \
        [ord("!"), ord("A"), ord("a"), ord("~"), ord("¡"), 0, ord("\n"), ord(" ")]
    assert (table[32], table[10], table[9], table[0], table[127], table[173]) == \
        ("Ġ", "Ċ", "ĉ", "Ā", "ġ", "Ń")
    assert all(table[b] == chr(b) for b in b"Az09!~")


# --- pre-tokenisation ---------------------------------------------------------------------

SPLITS = {
    "Hello world": ["Hello", " world"],
    "I'm  here!\n": ["I", "'m", " ", " here", "!", "\n"],
    "don't  stop!!  \n\n x": ["don", "'t", " ", " stop", "!!", "  \n\n", " x"],
    "they're we'll I'd you've": ["they", "'re", " we", "'ll", " I", "'d", " you", "'ve"],
    "'S ''s !'s": ["'", "S", " ''", "s", " !'", "s"],
    "x 123abc 4.5": ["x", " 123", "abc", " 4", ".", "5"],
    "naïve café Ωμέγα 東京": ["naïve", " café", " Ωμέγα", " 東京"],
    "e\u0301 1½ ٣٤": ["e", "\u0301", " 1½", " ٣٤"],
    "a\u00a0b c\u3000d": ["a", "\u00a0", "b", " c", "\u3000", "d"],
    "a\x1c\x1cb \x1fx": ["a", "\x1c\x1c", "b", " \x1f", "x"],
    "end  ": ["end", "  "],
    "\n\nx": ["\n", "\n", "x"],
    " 😀👍🏽 ok": [" 😀👍🏽", " ok"],
    "": [],
}


@pytest.mark.parametrize("text", sorted(SPLITS))
def test_pretokenize_splits_as_gpt2s_pattern(impl, text):
    """Splits worked out by hand from the pattern: contractions are lower-case only; a space
    joins the letters, numbers or other symbols after it; of a whitespace run before a word
    the last space goes with the word; letters are L*, numbers N* (½, Arabic-Indic digits),
    a combining mark is neither; U+00A0 and U+3000 are whitespace, U+001C and U+001F are not
    (though Python's str.isspace says they are)."""
    assert impl("gpt2_tokenizer.pretokenize")(text) == SPLITS[text]


def _kind(c: str) -> str:
    """Letter, number, space or other, worked out here: Python's str.isspace also counts the
    information separators U+001C..U+001F, which Unicode's White_Space property does not."""
    if c.isspace() and not "\x1c" <= c <= "\x1f":
        return "space"
    return {"L": "letter", "N": "number"}.get(unicodedata.category(c)[0], "other")


@given(strategies.texts(WORDS, SPECIALS) | st.text(max_size=60))
def test_pretokenize_pieces_concatenate_to_the_text_and_each_is_of_one_kind(impl, text):
    """The pieces give back the text; each is a contraction, a run of whitespace, or an
    optional space followed by a run of letters, of numbers or of other characters."""
    pieces = impl("gpt2_tokenizer.pretokenize")(text)
    assert "".join(pieces) == text
    for piece in pieces:
        body = piece[1:] if piece[0] == " " and len(piece) > 1 else piece
        kinds = {_kind(c) for c in body}
        assert piece in {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"} or \
            all(_kind(c) == "space" for c in piece) or \
            (len(kinds) == 1 and kinds != {"space"}), (piece, kinds)


# --- encoding -----------------------------------------------------------------------------

@given(strategies.texts(WORDS, SPECIALS) | st.text(max_size=60))
def test_decode_of_encode_gives_the_text_back(impl, text):
    """Any text (emoji, marks, control characters, special tokens) comes back unchanged."""
    tokenizer = _trained(impl)
    ids = impl("gpt2_tokenizer.encode")(text, tokenizer)
    assert ids.dtype == np.int64 and ids.ndim == 1
    assert impl("gpt2_tokenizer.decode")(ids, tokenizer) == text


@given(strategies.texts(WORDS), strategies.texts(WORDS), st.sampled_from(SPECIALS))
def test_special_tokens_are_kept_whole(impl, files, before, after, special):
    """A special token becomes its one id, and the text either side is encoded on its own:
    no merge crosses it, even when the text around it would merge with its characters."""
    tokenizer = _trained(impl)
    encode = impl("gpt2_tokenizer.encode")
    special_id = _read_files(*files)[0][special]
    ids = encode(before + special + after, tokenizer).tolist()
    assert ids == [*encode(before, tokenizer).tolist(), special_id,
                   *encode(after, tokenizer).tolist()]
    assert encode(special + special, tokenizer).tolist() == [special_id, special_id]


def test_a_special_token_is_ordinary_text_to_a_tokenizer_without_it(impl):
    """Left out of the special tokens, ``<|pad|>`` is split like any text: "<|", "pad", "|>"
    at least, so its pieces take several ids."""
    tokenizer = impl("gpt2_tokenizer.train")(CORPUS, 300, (EOT,))
    assert len(impl("gpt2_tokenizer.encode")("<|pad|>", tokenizer)) >= 3
    assert impl("gpt2_tokenizer.pretokenize")("<|pad|>") == ["<|", "pad", "|>"]


def _merge_by_hand(piece: str, ranks: dict, table: dict) -> list:
    """The slow way: merge the lowest-ranked adjacent pair (the leftmost if it occurs more
    than once), one occurrence at a time, until no pair has a merge."""
    symbols = [table[b] for b in piece.encode("utf-8")]
    while True:
        found = [(ranks[pair], i) for i, pair in enumerate(pairwise(symbols)) if pair in ranks]
        if not found:
            return symbols
        _, i = min(found)
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]


@given(strategies.texts(WORDS))
def test_each_piece_merges_lowest_rank_first(impl, files, text):
    """The ids are those of merging each piece by hand with the ranks of ``merges.txt`` and
    looking the tokens up in ``vocab.json`` (both read here)."""
    vocab, ranks = _read_files(*files)
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    expected = [vocab[token] for piece in impl("gpt2_tokenizer.pretokenize")(text)
                for token in _merge_by_hand(piece, ranks, table)]
    assert impl("gpt2_tokenizer.encode")(text, _trained(impl)).tolist() == expected


def _hand_made(impl, merges: list):
    """A tokenizer from the byte tokens plus the given merges (letters stand for themselves)."""
    vocab = {c: i for i, c in enumerate(impl("gpt2_tokenizer.bytes_to_unicode")().values())}
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    return impl("gpt2_tokenizer.Tokenizer")(vocab, merges, ()), vocab


# (merges in rank order, piece, tokens it becomes)
BY_RANK = {
    "the lowest rank first, not the leftmost pair": ([("b", "c"), ("a", "b")], "abc",
                                                     ["a", "bc"]),
    "equal pairs: the leftmost first": ([("a", "a")], "aaa", ["aa", "a"]),
    "equal pairs, four in a row": ([("a", "a"), ("aa", "aa")], "aaaa", ["aaaa"]),
    # GPT-2's first encoder would merge both "a"+"bc" before looking again: ["abc", "abc"]
    "a merge that makes a pair ranked before itself": (
        [("b", "c"), ("abc", "a"), ("a", "bc")], "abcabc", ["abca", "bc"]),
}


@pytest.mark.parametrize("case", sorted(BY_RANK))
def test_merges_apply_by_rank_then_from_the_left(impl, case):
    merges, piece, tokens = BY_RANK[case]
    tokenizer, vocab = _hand_made(impl, merges)
    assert impl("gpt2_tokenizer.encode")(piece, tokenizer).tolist() == [vocab[t] for t in tokens]


def test_decoding_a_broken_byte_sequence_gives_the_replacement_character(impl, files):
    """The first byte of "é" alone (0xC3) is not valid UTF-8: it decodes to U+FFFD, and the
    text after it is kept."""
    vocab, _ = _read_files(*files)
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    ids = [vocab[table[0xC3]], vocab[table[ord("x")]]]
    assert impl("gpt2_tokenizer.decode")(ids, _trained(impl)) == "\ufffdx"


def test_the_word_cache_changes_no_id(impl):
    """With the cache, without it, and again with it filled: the same ids."""
    tokenizer = _trained(impl)
    encode = impl("gpt2_tokenizer.encode")
    text = CORPUS[:3000]
    without = encode(text, tokenizer, use_cache=False).tolist()
    assert encode(text, tokenizer).tolist() == without
    assert encode(text, tokenizer).tolist() == without


def test_training_never_merges_inside_a_special_token(impl):
    """Special tokens are cut out of the training text before pieces are counted: on a text
    that is mostly a special token, every merge comes from the ordinary text around it."""
    tokenizer = impl("gpt2_tokenizer.train")("abab<|x|>" * 30 + "cd", 256 + 1 + 10,
                                              ["<|x|>"])
    assert [tuple(m) for m in tokenizer.merges] == [("a", "b"), ("ab", "ab"), ("c", "d")]


def test_training_gives_gpt2_ordered_ids_and_merges_the_most_frequent_pair(impl, files):
    """Ids 0..255 are the bytes in GPT-2's order and the special tokens come last.  Replaying
    the first merges on the training text's pieces, counted here: each merged pair was then
    the most frequent adjacent pair (ties: the smallest ids).  The tokenizer compresses its
    training text."""
    vocab, ranks = _read_files(*files)
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    assert [t for t, i in sorted(vocab.items(), key=lambda item: item[1])][:256] == \
        list(table.values())
    assert len(vocab) == VOCAB_SIZE and [vocab[s] for s in SPECIALS] == \
        [VOCAB_SIZE - 2, VOCAB_SIZE - 1]
    pieces = Counter(piece for chunk in CORPUS.split(EOT)
                     for piece in impl("gpt2_tokenizer.pretokenize")(chunk))
    seqs = {piece: [table[b] for b in piece.encode("utf-8")] for piece in pieces}
    for left, right in sorted(ranks, key=ranks.get)[:60]:
        counts = Counter()
        for piece, seq in seqs.items():
            for pair in pairwise(seq):
                counts[pair] += pieces[piece]
        best = max(counts.values())
        assert counts[left, right] == best, (left, right, counts[left, right], best)
        assert (vocab[left], vocab[right]) == min(
            (vocab[a], vocab[b]) for (a, b), c in counts.items() if c == best)
        for piece, seq in seqs.items():
            merged, j = [], 0
            while j < len(seq):
                if j + 1 < len(seq) and (seq[j], seq[j + 1]) == (left, right):
                    merged.append(left + right)
                    j += 2
                else:
                    merged.append(seq[j])
                    j += 1
            seqs[piece] = merged
    ids = impl("gpt2_tokenizer.encode")(CORPUS, _trained(impl))
    assert len(ids) < 0.4 * len(CORPUS.encode("utf-8"))


def test_the_longest_special_token_wins(impl):
    """Where two special tokens start at the same place, the longer one is taken (as the
    ``tokenizers`` library does), whichever order they are listed in."""
    for specials in (("<x>", "<x>y"), ("<x>y", "<x>")):
        tokenizer = impl("gpt2_tokenizer.train")("a b c", 300, specials)
        encode = impl("gpt2_tokenizer.encode")
        assert encode("<x>y<x>", tokenizer).tolist() == \
            [*encode("<x>y", tokenizer).tolist(), *encode("<x>", tokenizer).tolist()]
        assert len(encode("<x>y", tokenizer)) == 1 and len(encode("<x>", tokenizer)) == 1


def test_save_then_load_gives_the_same_ids(impl, files):
    """Files written by ``save`` load back into a tokenizer with the same ids; a
    ``merges.txt`` without the ``#version`` line and with blank lines reads the same."""
    text = CORPUS[:2000] + EOT + "naïve 😀"
    want = impl("gpt2_tokenizer.encode")(text, _trained(impl)).tolist()
    loaded = impl("gpt2_tokenizer.load")(*files, SPECIALS)
    assert impl("gpt2_tokenizer.encode")(text, loaded).tolist() == want
    vocab_path, merges_path = files
    bare = merges_path.with_name("bare_merges.txt")
    bare.write_text("\n".join(merges_path.read_text(encoding="utf-8").splitlines()[1:]) + "\n\n",
                    encoding="utf-8")
    again = impl("gpt2_tokenizer.load")(vocab_path, bare, SPECIALS)
    assert impl("gpt2_tokenizer.encode")(text, again).tolist() == want


def test_files_are_utf8_whatever_the_locale(impl, tmp_path, monkeypatch):
    """``save`` and ``load`` name their encoding: with ``open`` defaulting to ASCII for text
    (as under a C locale), a tokenizer whose vocabulary and merges hold non-ASCII symbols
    (``Ġ``, byte-level letters) round-trips, and the files are UTF-8."""
    import builtins

    real_open = builtins.open

    def ascii_by_default(file, mode="r", buffering=-1, encoding=None, *args, **kwargs):
        if "b" not in mode and encoding is None:
            encoding = "ascii"
        return real_open(file, mode, buffering, encoding, *args, **kwargs)

    tokenizer = _trained(impl)
    vocab, merges = tmp_path / "vocab.json", tmp_path / "merges.txt"
    monkeypatch.setattr(builtins, "open", ascii_by_default)
    impl("gpt2_tokenizer.save")(tokenizer, vocab, merges)
    loaded = impl("gpt2_tokenizer.load")(vocab, merges, SPECIALS)
    monkeypatch.undo()
    for path in (vocab, merges):
        assert "Ġ" in path.read_bytes().decode("utf-8"), path.name
    text = CORPUS[:500] + EOT + "naïve 😀"
    assert impl("gpt2_tokenizer.encode")(text, loaded).tolist() == \
        impl("gpt2_tokenizer.encode")(text, tokenizer).tolist()


# --- bad input ----------------------------------------------------------------------------

def _bad_cases(impl, folder):
    """(call, exception, substrings of the message) for each kind of bad input."""
    tokenizer = _trained(impl)
    m = impl
    base = {c: i for i, c in enumerate(m("gpt2_tokenizer.bytes_to_unicode")().values())}
    (folder / "list.json").write_text("[1, 2]", encoding="utf-8")
    (folder / "vocab.json").write_text(json.dumps({**base, "ab": 256}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\na b\nab\n", encoding="utf-8")
    build, load = m("gpt2_tokenizer.Tokenizer"), m("gpt2_tokenizer.load")
    enc, dec = m("gpt2_tokenizer.encode"), m("gpt2_tokenizer.decode")
    return {
        "encode bytes": (lambda: enc(b"abc", tokenizer), TypeError,
                         ["encode", "'text'", "str", "bytes"]),
        "encode a lone surrogate": (lambda: enc("a\ud800b", tokenizer), ValueError,
                                    ["encode", "'text'", "surrogate"]),
        "encode without a tokenizer": (lambda: enc("abc", {"vocab": base}), TypeError,
                                       ["encode", "'tokenizer'", "dict"]),
        "save without a tokenizer": (
            lambda: m("gpt2_tokenizer.save")({"vocab": base}, folder / "v.json",
                                              folder / "m.txt"), TypeError,
            ["save", "'tokenizer'", "gpt2_tokenizer.Tokenizer", "got dict"]),
        "decode floats": (lambda: dec([1.5], tokenizer), TypeError,
                          ["decode", "'ids'", "float64"]),
        "decode an unknown id": (lambda: dec([3, 10**6], tokenizer), ValueError,
                                 ["decode", "'ids'", "1000000"]),
        "decode a batch": (lambda: dec([[1, 2]], tokenizer), ValueError,
                           ["decode", "'ids'", "(1, 2)"]),
        "pretokenize None": (lambda: m("gpt2_tokenizer.pretokenize")(None), TypeError,
                             ["pretokenize", "'text'", "NoneType"]),
        "vocab without a byte": (lambda: build({c: i for c, i in base.items() if i}, []),
                                 ValueError, ["Tokenizer", "'vocab'", "256 byte tokens", "33"]),
        "vocab with a repeated id": (lambda: build({**base, "xy": 5}, []), ValueError,
                                     ["Tokenizer", "'vocab'", "id 5", "'&', 'xy'"]),
        "merge of unknown tokens": (lambda: build(base, [("a", "b")], ()), ValueError,
                                    ["Tokenizer", "'merges'", "'ab'", "rank 0"]),
        "merge that is not a pair": (lambda: build({**base, "ab": 256}, ["ab"], ()), TypeError,
                                     ["Tokenizer", "'merges'", "rank 0"]),
        "special token missing": (lambda: build(base, [], ("<|x|>",)), ValueError,
                                  ["Tokenizer", "'special_tokens'", "<|x|>"]),
        "special token empty": (lambda: build({**base, "": 256}, [], ("",)), ValueError,
                                ["Tokenizer", "'special_tokens'", "empty"]),
        "special tokens as one string": (lambda: m("gpt2_tokenizer.train")("ab", 300, EOT),
                                         TypeError, ["train", "'special_tokens'", EOT]),
        "vocabulary smaller than the bytes": (lambda: m("gpt2_tokenizer.train")("abc", 100),
                                              ValueError, ["train", "'vocab_size'", ">= 256"]),
        "vocabulary size a float": (lambda: m("gpt2_tokenizer.train")("abc", 300.0),
                                    TypeError, ["train", "'vocab_size'", "300.0"]),
        "vocab.json not an object": (lambda: load(folder / "list.json", folder / "merges.txt"),
                                     ValueError, ["load", "'vocab_path'", "list"]),
        "merges.txt line of one token": (
            lambda: load(folder / "vocab.json", folder / "merges.txt", ()), ValueError,
            ["load", "'merges_path'", "line 3", "'ab'"]),
        "path of the wrong type": (lambda: load(3, folder / "merges.txt"), TypeError,
                                   ["load", "'vocab_path'", "int"]),
    }


BAD = ["encode bytes", "encode a lone surrogate", "encode without a tokenizer",
       "save without a tokenizer", "decode floats",
       "decode an unknown id", "decode a batch", "pretokenize None", "vocab without a byte",
       "vocab with a repeated id", "merge of unknown tokens", "merge that is not a pair",
       "special token missing", "special token empty", "special tokens as one string",
       "vocabulary smaller than the bytes", "vocabulary size a float",
       "vocab.json not an object", "merges.txt line of one token", "path of the wrong type"]


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_rejected_clearly(impl, tmp_path, case):
    call, exception, parts = _bad_cases(impl, tmp_path)[case]
    with pytest.raises(exception) as info:
        call()
    assert str(info.value).startswith(f"gpt2_tokenizer.{parts[0]}: "), str(info.value)
    for part in parts:
        assert part in str(info.value), f"{part!r} not in: {info.value}"


# --- parity with the tokenizers library ---------------------------------------------------

PARITY_EXAMPLES = settings(max_examples=max(300, settings.default.max_examples))


@pytest.fixture(scope="module")
def hf_ours(files):
    """``tokenizers`` loaded from the files our trainer wrote."""
    pytest.importorskip("tokenizers")
    return oracles.tokenizers_gpt2(*files, SPECIALS)


@pytest.fixture(scope="module")
def theirs(impl, tmp_path_factory):
    """``(tokenizers' own trained tokenizer, ours loaded from the files it saved)``.  Its ids
    are not in GPT-2's order (it puts the special tokens first), so ours must take them from
    ``vocab.json``."""
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    hf.train_from_iterator([CORPUS], trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=list(SPECIALS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    folder = tmp_path_factory.mktemp("tokenizers_trained")
    vocab, merges = hf.model.save(str(folder))
    hf = oracles.tokenizers_gpt2(vocab, merges, SPECIALS)
    return hf, impl("gpt2_tokenizer.load")(vocab, merges, SPECIALS)


@pytest.mark.parity
@PARITY_EXAMPLES
@given(strategies.texts(WORDS, SPECIALS))
def test_pretokenize_matches_tokenizers(impl, hf_ours, text):
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    ours = ["".join(table[b] for b in piece.encode("utf-8"))
            for piece in impl("gpt2_tokenizer.pretokenize")(text)]
    assert ours == [piece for piece, _ in hf_ours.pre_tokenizer.pre_tokenize_str(text)]


@pytest.mark.parity
def test_pretokenize_matches_tokenizers_on_every_assigned_code_point(impl, hf_ours):
    """Every code point that Python's unicodedata assigns (surrogates left out), between
    letters, after a digit and a space, and doubled: the same pieces.  (Code points assigned
    in later Unicode versions than Python's are unassigned to us, "other", and can differ.)
    Strings of 1000 code points each: ``tokenizers`` slows down on one very long string."""
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    chars = [chr(c) for c in range(0x110000)
             if unicodedata.category(chr(c)) not in ("Cn", "Cs")]
    for k in range(0, len(chars), 1000):
        text = "".join(f"a{c}1 {c}{c}x" for c in chars[k:k + 1000])
        ours = ["".join(table[b] for b in piece.encode("utf-8"))
                for piece in impl("gpt2_tokenizer.pretokenize")(text)]
        theirs = [piece for piece, _ in hf_ours.pre_tokenizer.pre_tokenize_str(text)]
        if ours != theirs:
            i = next(i for i, (a, b) in enumerate(zip(ours + [""], theirs + [""], strict=False))
                     if a != b)
            pytest.fail(f"code points U+{ord(chars[k]):04X}..: piece {i} differs: "
                        f"ours {ours[i:i + 3]}, tokenizers {theirs[i:i + 3]}")


@pytest.mark.parity
@PARITY_EXAMPLES
@given(strategies.texts(WORDS, SPECIALS))
def test_ids_match_tokenizers_on_files_we_trained(impl, hf_ours, text):
    ids = impl("gpt2_tokenizer.encode")(text, _trained(impl))
    assert ids.tolist() == hf_ours.encode(text).ids
    assert impl("gpt2_tokenizer.decode")(ids, _trained(impl)) == \
        hf_ours.decode(ids.tolist(), skip_special_tokens=False)


@pytest.mark.parity
@PARITY_EXAMPLES
@given(strategies.texts(WORDS, SPECIALS))
def test_ids_match_tokenizers_on_files_it_trained(impl, theirs, text):
    hf, ours = theirs
    assert impl("gpt2_tokenizer.encode")(text, ours).tolist() == hf.encode(text).ids


@pytest.mark.parity
@pytest.mark.parametrize("case", sorted(BY_RANK))
def test_merge_order_matches_tokenizers(impl, tmp_path, case):
    """The hand-made merge tables above, written to files and loaded by ``tokenizers``."""
    pytest.importorskip("tokenizers")
    merges, piece, _ = BY_RANK[case]
    tokenizer, _ = _hand_made(impl, merges)
    vocab_path, merges_path = tmp_path / "vocab.json", tmp_path / "merges.txt"
    impl("gpt2_tokenizer.save")(tokenizer, vocab_path, merges_path)
    hf = oracles.tokenizers_gpt2(vocab_path, merges_path, ())
    assert impl("gpt2_tokenizer.encode")(piece, tokenizer).tolist() == hf.encode(piece).ids


# --- the tables, the cache and the edges of training and loading ---------------------------

def _byte_vocab(impl) -> dict:
    return {c: i for i, c in enumerate(impl("gpt2_tokenizer.bytes_to_unicode")().values())}


def test_tokenizer_tables_hold_what_the_docstring_says(impl):
    """``byte_ids``, ``pair_merges``, ``token_bytes``, ``special_tokens`` and copies of the
    tables, on a hand-made vocabulary whose ids are not in GPT-2's order."""
    base = _byte_vocab(impl)
    vocab = {c: 300 - i for c, i in base.items()}                  # ids 45..300, reversed
    vocab.update({"ab": 7, "Ġc": 3, "abĠc": 40, EOT: 1, "<|pad|>": 2})
    merges = [("a", "b"), ["Ġ", "c"], ("ab", "Ġc")]
    tokenizer = impl("gpt2_tokenizer.Tokenizer")(vocab, merges, [EOT, "<|pad|>", EOT])
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    assert tokenizer.byte_ids == tuple(vocab[table[b]] for b in range(256))
    assert tokenizer.pair_merges == {(vocab["a"], vocab["b"]): (0, 7),
                                     (vocab["Ġ"], vocab["c"]): (1, 3), (7, 3): (2, 40)}
    assert tokenizer.merges == [("a", "b"), ("Ġ", "c"), ("ab", "Ġc")]
    assert tokenizer.special_tokens == {EOT: 1, "<|pad|>": 2}
    assert tokenizer.vocab == vocab and tokenizer.vocab is not vocab
    assert tokenizer.token_bytes[40] == b"ab c" and tokenizer.token_bytes[1] == EOT.encode()
    assert tokenizer.token_bytes[vocab["Ā"]] == b"\x00"
    assert tokenizer.cache == {}
    encode = impl("gpt2_tokenizer.encode")
    assert encode("ab c<|pad|>ab", tokenizer).tolist() == [7, 3, 2, 7]    # "ab", " c": 2 pieces
    assert repr(tokenizer) == f"Tokenizer(261 tokens, 3 merges, special tokens {[EOT, '<|pad|>']})"


def test_the_word_cache_is_filled_only_when_asked_and_stays_bounded(impl):
    """``use_cache=False`` leaves ``tokenizer.cache`` alone; with the cache on, a new piece is
    added while it holds fewer than ``CACHE_LIMIT`` pieces, and never past that."""
    import sys
    encode = impl("gpt2_tokenizer.encode")
    limit = sys.modules[encode.__module__].CACHE_LIMIT
    tokenizer = impl("gpt2_tokenizer.train")("ab ab abc", 270)
    encode("ab x", tokenizer, use_cache=False)
    assert tokenizer.cache == {}
    assert encode("ab ab", tokenizer, use_cache=np.bool_(True)).tolist() == \
        encode("ab ab", tokenizer, use_cache=False).tolist()
    assert set(tokenizer.cache) == {"ab", " ab"}
    tokenizer.cache.update((f"filler{i}", [0]) for i in range(limit - 3))
    encode("q r s", tokenizer)                              # "q" goes in, " r" and " s" not
    assert len(tokenizer.cache) == limit and "q" in tokenizer.cache
    assert " r" not in tokenizer.cache and " s" not in tokenizer.cache


def test_training_runs_until_no_pair_is_left_and_respects_the_size(impl):
    """On a small text with room to spare, every merge joins a pair that was then the most
    frequent (at least once), and at the end every piece is one token; the vocabulary is
    exactly the bytes, the merges' results and the special tokens.  The smallest size allowed
    learns nothing."""
    train, pretokenize = impl("gpt2_tokenizer.train"), impl("gpt2_tokenizer.pretokenize")
    text = "abab abc cab\nbca abab"
    tokenizer = train(text, 1000, ())
    table = impl("gpt2_tokenizer.bytes_to_unicode")()
    pieces = Counter(pretokenize(text))
    seqs = {p: [table[b] for b in p.encode("utf-8")] for p in pieces}
    for left, right in tokenizer.merges:
        counts = Counter()
        for p, seq in seqs.items():
            for pair in pairwise(seq):
                counts[pair] += pieces[p]
        assert counts[left, right] == max(counts.values()) >= 1
        seqs = {p: _join(seq, left, right) for p, seq in seqs.items()}
    assert all(len(seq) == 1 for seq in seqs.values())
    assert len(tokenizer.vocab) == 256 + len(tokenizer.merges)
    small = train(text, 257, (EOT,))
    assert small.merges == [] and len(small.vocab) == 257 and small.vocab[EOT] == 256
    assert train(text, 258, (EOT,)).merges == [("a", "b")]
    with pytest.raises(ValueError, match=r"train: argument 'vocab_size' must be >= 256 \+ 2"):
        train(text, 257, (EOT, "<|pad|>"))


def _join(seq: list, left: str, right: str) -> list:
    out, j = [], 0
    while j < len(seq):
        if j + 1 < len(seq) and (seq[j], seq[j + 1]) == (left, right):
            out.append(left + right)
            j += 2
        else:
            out.append(seq[j])
            j += 1
    return out


def test_load_reads_windows_line_ends_and_refuses_bad_files(impl, tmp_path):
    """``merges.txt`` with CRLF line ends reads the same; an empty token on a line, a vocab
    file that is not JSON, or tables that make no tokenizer are refused naming ``load``."""
    base = _byte_vocab(impl)
    vocab_path, merges_path = tmp_path / "vocab.json", tmp_path / "merges.txt"
    vocab_path.write_text(json.dumps({**base, "ab": 256, "abc": 257, EOT: 258}),
                          encoding="utf-8")
    merges_path.write_bytes(b"#version: 0.2\r\na b\r\n\r\nab c\r\n")
    tokenizer = impl("gpt2_tokenizer.load")(str(vocab_path), merges_path)
    assert tokenizer.merges == [("a", "b"), ("ab", "c")]
    assert tokenizer.special_tokens == {EOT: 258}
    load = impl("gpt2_tokenizer.load")
    (tmp_path / "space.txt").write_text("a b\n b\n", encoding="utf-8")
    (tmp_path / "bad.json").write_text("{oops", encoding="utf-8")
    (tmp_path / "str_ids.json").write_text(json.dumps({**base, "ab": "256"}), encoding="utf-8")
    (tmp_path / "version2.txt").write_text("a b\n#version: 0.2\n", encoding="utf-8")
    cases = [((vocab_path, tmp_path / "space.txt"), ValueError,
              ["'merges_path'", "line 2", "' b'"]),
             ((tmp_path / "bad.json", merges_path), ValueError, ["'vocab_path'", "JSON"]),
             ((tmp_path / "str_ids.json", merges_path, ()), TypeError,
              ["do not make a tokenizer", "'vocab'", "'256'"]),
             ((vocab_path, tmp_path / "version2.txt", ()), ValueError,
              ["do not make a tokenizer", "('#version:', '0.2') at rank 1"]),
             ((vocab_path, merges_path, ("<|x|>",)), ValueError,
              ["do not make a tokenizer", "'special_tokens'", "<|x|>"])]
    for args, exc, parts in cases:
        with pytest.raises(exc) as info:
            load(*args)
        for part in ["gpt2_tokenizer.load: ", *parts]:
            assert part in str(info.value), (part, str(info.value))


TABLE_BAD = {
    "vocab not a dict": (lambda b: ([("a", 0)], []), TypeError, ["'vocab'", "dict", "list"]),
    "a negative id": (lambda b: ({**b, "ab": -1}, []), ValueError, ["'vocab'", ">= 0", "-1"]),
    "a bool id": (lambda b: ({**b, "ab": True}, []), TypeError, ["'vocab'", "'ab': True"]),
    "merges not a list": (lambda b: (b, "ab"), TypeError, ["'merges'", "str"]),
    "a merge of ints": (lambda b: (b, [(1, 2)]), TypeError, ["'merges'", "(1, 2)", "rank 0"]),
    "a merge twice": (lambda b: ({**b, "ab": 256}, [("a", "b"), ("a", "b")]), ValueError,
                      ["'merges'", "twice", "ranks 0 and 1"]),
    "special tokens not iterable": (lambda b: (b, [], 3), TypeError, ["'special_tokens'", "3"]),
    "a special token not a str": (lambda b: (b, [], ["a", 1]), TypeError,
                                  ["'special_tokens'", "1"]),
}


@pytest.mark.parametrize("case", TABLE_BAD)
def test_tokenizer_refuses_inconsistent_tables(impl, case):
    make, exc, parts = TABLE_BAD[case]
    with pytest.raises(exc) as info:
        impl("gpt2_tokenizer.Tokenizer")(*make(_byte_vocab(impl)))
    for part in ["gpt2_tokenizer.Tokenizer: ", *parts]:
        assert part in str(info.value), (part, str(info.value))


def test_decode_of_nothing_and_of_other_integer_types(impl):
    tokenizer = _trained(impl)
    decode = impl("gpt2_tokenizer.decode")
    assert decode([], tokenizer) == "" and decode(np.array([]), tokenizer) == ""
    ids = impl("gpt2_tokenizer.encode")("naïve café", tokenizer)
    assert decode(ids.astype(np.int32), tokenizer) == "naïve café"
    assert decode(tuple(ids.tolist()), tokenizer) == "naïve café"
    with pytest.raises(TypeError, match=r"gpt2_tokenizer\.decode: argument 'tokenizer'"):
        decode(ids, {"vocab": {}})
    with pytest.raises(TypeError, match=r"gpt2_tokenizer\.encode: argument 'use_cache'.*1"):
        impl("gpt2_tokenizer.encode")("a", tokenizer, use_cache=1)
    with pytest.raises(ValueError, match=r"gpt2_tokenizer\.train: argument 'text'.*surrogate"):
        impl("gpt2_tokenizer.train")("a\udc00b", 300)


def test_merges_follow_rank_not_id_and_token_zero_is_a_token(impl):
    """Ids need not follow ranks (a vocabulary may number its tokens in any order): the heap
    orders candidates by rank, for the first pairs and for the pairs a merge makes with its
    left neighbour.  Id 0 ("!" in GPT-2's order) merges and survives merging like any id."""
    base = _byte_vocab(impl)
    vocab = {c: i + 10 for c, i in base.items() if c != "!"}
    vocab.update({"!": 500, "abc": 0, "bc": 300, "bcd": 301, "ab": 1, "xy": 302})
    merges = [("b", "c"), ("bc", "d"), ("a", "bc"), ("x", "y"), ("a", "b")]
    tokenizer = impl("gpt2_tokenizer.Tokenizer")(vocab, merges, ())
    encode = impl("gpt2_tokenizer.encode")
    # "bc" first (rank 0); then "bc"+"d" (rank 1) before "a"+"bc" (rank 2, id 0)
    assert encode("abcd", tokenizer, use_cache=False).tolist() == [vocab["a"], 301]
    # "a"+"b" has rank 4 but id 1; "x"+"y" rank 3 but id 302: both merge, ids as given
    assert encode("abxy", tokenizer, use_cache=False).tolist() == [1, 302]
    gpt2 = _byte_vocab(impl)                                   # "!" is id 0 here
    gpt2.update({"!!": 256, "ab": 257})
    plain = impl("gpt2_tokenizer.Tokenizer")(gpt2, [("!", "!"), ("a", "b")], ())
    assert gpt2["!"] == 0
    assert encode("!!!", plain).tolist() == [256, 0]
    assert encode("ab!", plain).tolist() == [257, 0]
    assert encode("!ab", plain).tolist() == [0, 257]


def test_the_cache_holds_each_pieces_ids_and_is_ignored_when_off(impl):
    """``tokenizer.cache`` maps a piece to its ids; with ``use_cache=False`` it is neither read
    nor written (an entry put there by hand does not change the ids)."""
    tokenizer = impl("gpt2_tokenizer.train")("ab ab abc", 270)
    encode = impl("gpt2_tokenizer.encode")
    ids = encode("ab abc", tokenizer).tolist()
    assert tokenizer.cache["ab"] + tokenizer.cache[" abc"] == ids
    tokenizer.cache["ab"] = [0, 0, 0]
    assert encode("ab", tokenizer, use_cache=False).tolist() == ids[:len(ids) - len(
        tokenizer.cache[" abc"])]


def test_special_tokens_and_added_tokens_stand_for_their_own_text(impl):
    """A special token's text is its UTF-8 (not read through the byte table: "é" and "Ġ" in a
    special token are themselves); a vocabulary entry with characters outside the byte table
    stands for its UTF-8 text too."""
    base = _byte_vocab(impl)
    special = "<|é Ġ|>"
    vocab = {**base, special: 256, "€": 257}
    tokenizer = impl("gpt2_tokenizer.Tokenizer")(vocab, [], (special,))
    ids = impl("gpt2_tokenizer.encode")(f"a{special}b", tokenizer).tolist()
    assert ids == [base["a"], 256, base["b"]]
    decode = impl("gpt2_tokenizer.decode")
    assert decode(ids, tokenizer) == f"a{special}b"
    assert decode([257, base["a"]], tokenizer) == "€a"


def test_load_reads_exactly_one_space_between_two_tokens(impl, tmp_path):
    """Each line is split at its one space: two spaces or a trailing space make a line of
    more than two tokens (refused); a token may end in any character the byte table has, "X"
    included; the special tokens asked for are the ones used."""
    base = _byte_vocab(impl)
    vocab_path = tmp_path / "vocab.json"
    vocab_path.write_text(json.dumps({**base, "aX": 256, "ab": 257}), encoding="utf-8")
    load = impl("gpt2_tokenizer.load")
    good = tmp_path / "good.txt"
    good.write_text("a X\na b\n", encoding="utf-8")
    tokenizer = load(vocab_path, good, ())
    assert tokenizer.merges == [("a", "X"), ("a", "b")] and tokenizer.special_tokens == {}
    for text, line in [("a  b\n", "'a  b'"), ("a X\na b \n", "'a b '"), ("a\tX b\n", None)]:
        bad = tmp_path / "bad.txt"
        bad.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError) as info:
            load(vocab_path, bad, ())
        assert str(info.value).startswith("gpt2_tokenizer.load: "), str(info.value)
        if line:
            assert "'merges_path'" in str(info.value) and line in str(info.value)
