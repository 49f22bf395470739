"""GPT-2's tokenizer: byte-level BPE over pre-split words, with special tokens.

``bpe`` shows the idea on raw bytes; this module adds what GPT-2 (and every model that reuses
its tokenizer files) does on top, so that the same text gives the same ids:

1. **Special tokens.**  Strings such as ``<|endoftext|>`` are cut out of the text first and
   each becomes its own id; they are never split or merged.
2. **Pre-tokenisation.**  The rest is split into pieces by GPT-2's pattern, tried in this
   order at each position: the contractions ``'s 't 're 've 'm 'll 'd``; an optional space
   and a run of letters; an optional space and a run of numbers; an optional space and a run
   of characters that are neither whitespace, letters nor numbers; a run of whitespace not
   followed by a non-space; a run of whitespace.  Letters are the Unicode categories ``L*``,
   numbers ``N*`` (read with ``unicodedata``: the ``re`` module has no ``\\p{L}``), whitespace
   the Unicode ``White_Space`` property (not ``str.isspace``, which adds U+001C..U+001F).
   A character that Python's Unicode version does not know yet counts as neither.  Merges
   never cross a piece boundary, so ``" cat"`` and ``"cat"`` are different tokens and a
   space can never join two words.
3. **Bytes as characters.**  Each piece is encoded as UTF-8 and each byte written as one
   printable character (:func:`bytes_to_unicode`), which is how ``vocab.json`` and
   ``merges.txt`` spell tokens: a space is ``"Ġ"``, a newline ``"Ċ"``.  The 256 byte tokens
   take ids 0 to 255 in that table's order, not in byte order: ``"!"`` (byte 33) is id 0.
4. **Merges by rank.**  Within a piece, the adjacent pair whose merge is earliest in
   ``merges.txt`` (lowest rank) is merged first, ties going to the leftmost pair; repeat
   until no adjacent pair has a merge.  A heap of candidate pairs makes each merge cost
   O(log n) for a piece of n bytes, however many merges the table holds, and a cache maps a
   piece seen before straight to its ids.  This is the order of the ``tokenizers`` library;
   GPT-2's first encoder (merge every occurrence of the best pair, then look again) can
   differ only when a merge creates a pair ranked before itself.

``decode`` maps ids back to bytes and the bytes to text (invalid UTF-8 becomes U+FFFD), so
``decode(encode(s)) == s`` for every string ``s``.
"""

from __future__ import annotations

import heapq
import json
import os
import re
import tempfile
import unicodedata
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.text import bpe

#: GPT-2's end-of-text marker, the default special token
END_OF_TEXT = "<|endoftext|>"

#: the pieces tried first at an apostrophe, in the pattern's order
CONTRACTIONS = ("s", "t", "re", "ve", "m", "ll", "d")

#: code points with the Unicode White_Space property (unicodedata does not expose it)
WHITE_SPACE = frozenset([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                         0x2028, 0x2029, 0x202F, 0x205F, 0x3000])

#: pieces the word cache keeps at most, so that a long stream of new words cannot grow it
#: without bound
CACHE_LIMIT = 100_000


# --- bytes as printable characters --------------------------------------------------------

@contract(example=lambda rng: {})
def bytes_to_unicode() -> dict:
    """GPT-2's table from byte values to the characters that spell them in its files.

    The 188 bytes that are printable Latin-1 characters (``!`` to ``~``, ``¡`` to ``¬``,
    ``®`` to ``ÿ``) stand for themselves; the other 68 (control characters, the space, the
    soft hyphen...) take the characters U+0100, U+0101, ... in byte order, so the space
    (byte 32, the 33rd of them) is ``"Ġ"`` (U+0120).

    Returns
    -------
    dict
        ``{byte value: one-character str}`` for all 256 bytes.  Its order (the printable
        bytes first, then the others) is GPT-2's id order of the byte tokens: the ``i``-th
        entry is token id ``i``.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    others = [b for b in range(256) if b not in table]
    table.update({b: chr(256 + i) for i, b in enumerate(others)})
    return table


# --- pre-tokenisation ---------------------------------------------------------------------

def _class_of(code: int) -> str:
    """The class of one code point: ``L`` letter, ``N`` number, ``W`` whitespace, ``O``
    anything else."""
    if code in WHITE_SPACE:
        return "W"
    return {"L": "L", "N": "N"}.get(unicodedata.category(chr(code))[0], "O")


def _class_table(text: str) -> dict:
    """``{code point: class}`` for the distinct characters of ``text``, for ``str.translate``
    (a text has few, however long it is; built once per call, no state kept)."""
    return {code: _class_of(code) for code in map(ord, set(text))}


_RUN = {cls: re.compile(cls + "+") for cls in "LNWO"}


def _piece_end(text: str, classes: str, i: int) -> int:
    """Where the piece that starts at ``i`` ends: GPT-2's pattern, one alternative at a time.
    ``classes`` holds the class letter of each character of ``text``."""
    if text[i] == "'":
        for tail in CONTRACTIONS:
            if text.startswith(tail, i + 1):
                return i + 1 + len(tail)
    # " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": a space joins the run that follows it
    start = i + 1 if text[i] == " " and i + 1 < len(text) and classes[i + 1] != "W" else i
    cls = classes[start]
    if cls != "W":
        return _RUN[cls].match(classes, start).end()
    # "\s+(?!\S)": the run, less its last character if a non-space follows, so that the
    # last space can join the next word; "\s+": a single whitespace character before one
    end = _RUN["W"].match(classes, i).end()
    return end if end == len(text) or end - i == 1 else end - 1


@contract(example=lambda rng: {"text": "It's  2 cats!\n"})
def pretokenize(text: str) -> list:
    """Split text into GPT-2's pieces (words, numbers, punctuation runs, whitespace).

    Parameters
    ----------
    text : str
        Any text; special tokens are not treated specially here (``encode`` cuts them out
        before calling this).

    Returns
    -------
    list of str
        The pieces in order; they concatenate to ``text``.  For example
        ``"I'm  here!\\n"`` gives ``["I", "'m", " ", " here", "!", "\\n"]``.

    Raises
    ------
    TypeError
        If ``text`` is not a str.
    """
    _check_text("gpt2_tokenizer.pretokenize", text)
    return _pieces(text, _class_table(text))


def _pieces(text: str, table: dict) -> list:
    """The pieces of ``text``, its characters' classes read from ``table`` (which holds every
    character of ``text``, and may hold more: encode builds one for the whole text)."""
    classes = text.translate(table)
    pieces, i = [], 0
    while i < len(text):
        end = _piece_end(text, classes, i)
        pieces.append(text[i:end])
        i = end
    return pieces


# --- the tokenizer's tables ---------------------------------------------------------------

@contract(example=lambda rng: _example_tables(),
          lenient={"merges": ("empty",), "special_tokens": ("empty",)})
class Tokenizer:
    """GPT-2's tokenizer tables: what ``vocab.json`` and ``merges.txt`` hold, checked, with the
    look-up tables the encoder and decoder use and a word cache.  :func:`load` and
    :func:`train` make one; so does calling it with the tables.

    Parameters
    ----------
    vocab : dict
        ``{token: id}``; tokens spelled with :func:`bytes_to_unicode`'s characters (special
        tokens as their text), distinct non-negative int ids.  It must hold the 256 byte
        tokens.
    merges : list of (str, str)
        The merges in rank order; each side and their concatenation must be in ``vocab``.
    special_tokens : iterable of str
        Texts that are never split (default ``("<|endoftext|>",)``); each must be non-empty
        and in ``vocab``.  Where two start at the same place, the longer is taken.

    Attributes
    ----------
    vocab, merges
        Copies of the arguments (merges as tuples).
    special_tokens : dict
        ``{special token text: id}``.
    byte_ids : tuple
        The id of each byte value 0..255.
    pair_merges : dict
        ``{(left id, right id): (rank, id of left + right)}``.
    token_bytes : dict
        ``{id: the bytes it stands for}``.
    special_pattern : re.Pattern or None
        Matches any special token, the longest first.
    cache : dict
        ``{piece: its ids}``, filled by :func:`encode`.

    Raises
    ------
    TypeError
        If an argument or an entry has the wrong type.
    ValueError
        If ids repeat or are negative, a byte token or special token is missing, a special
        token is empty, or a merge names a token that is not in the vocabulary or repeats an
        earlier merge.
    """

    def __init__(self, vocab: dict, merges: list, special_tokens=(END_OF_TEXT,)):
        where = "gpt2_tokenizer.Tokenizer"
        byte_chars = bytes_to_unicode()
        _check_vocab(where, vocab, byte_chars)
        self.vocab = dict(vocab)
        self.merges = _checked_merges(where, merges, vocab)
        self.special_tokens = {}
        for token in _special_list(where, special_tokens):
            if token not in vocab:
                raise ValueError(f"{where}: argument 'special_tokens' has {token!r}, which is "
                                 f"not in the vocabulary")
            self.special_tokens[token] = vocab[token]
        self.byte_ids = tuple(vocab[byte_chars[b]] for b in range(256))
        self.pair_merges = {(vocab[left], vocab[right]): (rank, vocab[left + right])
                            for rank, (left, right) in enumerate(self.merges)}
        char_bytes = {c: bytes([b]) for b, c in byte_chars.items()}
        self.token_bytes = {
            i: (t.encode("utf-8") if t in self.special_tokens
                else b"".join(char_bytes.get(c, c.encode("utf-8")) for c in t))
            for t, i in vocab.items()}
        self.special_pattern = _special_pattern(self.special_tokens)
        self.cache = {}

    def __repr__(self) -> str:
        return (f"Tokenizer({len(self.vocab)} tokens, {len(self.merges)} merges, "
                f"special tokens {list(self.special_tokens)})")


def _check_vocab(where: str, vocab, byte_chars: dict) -> None:
    if not isinstance(vocab, dict):
        raise TypeError(f"{where}: argument 'vocab' must be a dict {{token: id}}, "
                        f"got {type(vocab).__name__}")
    for token, i in vocab.items():
        if not isinstance(token, str) or isinstance(i, bool) or not isinstance(i, int):
            raise TypeError(f"{where}: argument 'vocab' must map str to int, got the entry "
                            f"{token!r}: {i!r}")
        if i < 0:
            raise ValueError(f"{where}: argument 'vocab' must have ids >= 0, got {token!r}: {i}")
    if len(set(vocab.values())) != len(vocab):
        twice = next(i for i, n in Counter(vocab.values()).items() if n > 1)
        raise ValueError(f"{where}: argument 'vocab' must give each token its own id, "
                         f"got id {twice} for {[t for t, i in vocab.items() if i == twice]}")
    missing = [b for b, c in byte_chars.items() if c not in vocab]
    if missing:
        raise ValueError(f"{where}: argument 'vocab' must hold the 256 byte tokens, got none "
                         f"for {len(missing)} byte(s), first byte {missing[0]} "
                         f"({byte_chars[missing[0]]!r})")


def _checked_merges(where: str, merges, vocab: dict) -> list:
    """``merges`` as a list of tuples, after checking each names tokens of ``vocab`` and none
    repeats."""
    if not isinstance(merges, (list, tuple)):
        raise TypeError(f"{where}: argument 'merges' must be a list of (left, right) pairs, "
                        f"got {type(merges).__name__}")
    seen = {}
    for rank, pair in enumerate(merges):
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(t, str) for t in pair)):
            raise TypeError(f"{where}: argument 'merges' must hold pairs of str, got "
                            f"{pair!r} at rank {rank}")
        left, right = pair
        for token in (left, right, left + right):
            if token not in vocab:
                raise ValueError(f"{where}: argument 'merges' has ({left!r}, {right!r}) at "
                                 f"rank {rank}, but {token!r} is not in the vocabulary")
        if (left, right) in seen:
            raise ValueError(f"{where}: argument 'merges' has ({left!r}, {right!r}) twice, at "
                             f"ranks {seen[left, right]} and {rank}")
        seen[left, right] = rank
    return list(seen)


def _special_pattern(special: dict):
    if not special:
        return None
    # re tries alternatives in order, so the longest first gives the longest match
    return re.compile("|".join(re.escape(t) for t in sorted(special, key=len, reverse=True)))


# --- encoding and decoding ----------------------------------------------------------------

def _merge_piece(ids: list, pair_merges: dict) -> list:
    """Apply the merges to one piece's byte ids: lowest rank first, then leftmost.

    The symbols form a linked list (``nxt``/``prev`` by position; a merged-away symbol gets
    id -1) and the candidate merges a heap of ``(rank, position, entry of pair_merges)``.
    A popped candidate whose pair has changed since it was pushed is stale and skipped; each
    merge pushes the pairs the new symbol forms with its two neighbours.
    """
    heap = [(found[0], i, found) for i, found in enumerate(map(pair_merges.get, pairwise(ids)))
            if found is not None]
    if not heap:
        return ids
    n = len(ids)
    nxt, prev = list(range(1, n + 1)), list(range(-1, n - 1))
    heapq.heapify(heap)
    while heap:
        _, i, found = heapq.heappop(heap)
        j = nxt[i]
        if j == n or ids[i] < 0 or pair_merges.get((ids[i], ids[j])) is not found:
            continue
        new = found[1]
        ids[i], ids[j] = new, -1
        k = nxt[i] = nxt[j]
        if k < n:
            prev[k] = i
            right = pair_merges.get((new, ids[k]))
            if right is not None:
                heapq.heappush(heap, (right[0], i, right))
        h = prev[i]
        if h >= 0:
            left = pair_merges.get((ids[h], new))
            if left is not None:
                heapq.heappush(heap, (left[0], h, left))
    return [t for t in ids if t >= 0]


def _chunks(text: str, pattern):
    """``(chunk, is_special)`` pairs that concatenate to ``text``; empty chunks left out."""
    start = 0
    for match in pattern.finditer(text) if pattern is not None else ():
        if match.start() > start:
            yield text[start:match.start()], False
        yield match.group(), True
        start = match.end()
    if start < len(text):
        yield text[start:], False


@contract(example=lambda rng: {"text": "ab c<|endoftext|>",
                               "tokenizer": Tokenizer(**_example_tables()), "use_cache": True})
def encode(text: str, tokenizer: Tokenizer, use_cache: bool = True) -> np.ndarray:
    """Token ids of ``text``, the same as GPT-2's tokenizer gives with the same files.

    Parameters
    ----------
    text : str
        Any text that can be written as UTF-8 (no lone surrogates).
    tokenizer : Tokenizer
        From :func:`load`, :func:`train` or ``Tokenizer``.
    use_cache : bool, default True
        Look each piece up in ``tokenizer.cache`` before merging it, and add it there (up to
        ``CACHE_LIMIT`` pieces); default True.  The ids are the same either way; text repeats
        its words, so the cache saves most of the merging.

    Returns
    -------
    numpy.ndarray
        The ids, int64, shape ``(n_tokens,)``.

    Raises
    ------
    TypeError
        If ``text`` is not a str, ``tokenizer`` not a Tokenizer or ``use_cache`` not a bool.
    ValueError
        If ``text`` holds a lone surrogate (it has no UTF-8 bytes).
    """
    where = "gpt2_tokenizer.encode"
    _check_text(where, text)
    _check_tokenizer(where, tokenizer)
    if not isinstance(use_cache, (bool, np.bool_)):
        raise TypeError(f"{where}: argument 'use_cache' must be a bool, got {use_cache!r}")
    byte_ids, pair_merges = tokenizer.byte_ids, tokenizer.pair_merges
    cache = tokenizer.cache if use_cache else {}
    out, table = [], _class_table(text)
    for chunk, is_special in _chunks(text, tokenizer.special_pattern):
        if is_special:
            out.append(tokenizer.special_tokens[chunk])
            continue
        for piece in _pieces(chunk, table):
            ids = cache.get(piece)
            if ids is None:
                try:
                    data = piece.encode("utf-8")
                except UnicodeEncodeError as exc:
                    raise ValueError(f"{where}: argument 'text' must be writable as UTF-8, "
                                     f"got a lone surrogate {piece[exc.start]!r} in the "
                                     f"piece {piece!r}") from None
                ids = _merge_piece([byte_ids[b] for b in data], pair_merges)
                if use_cache and len(cache) < CACHE_LIMIT:
                    cache[piece] = ids
            out.extend(ids)
    return np.array(out, dtype=np.int64)


@contract(example=lambda rng: {"ids": np.array([256, 257, 258]),
                               "tokenizer": Tokenizer(**_example_tables())},
          lenient={"ids": ("list", "empty")})
def decode(ids, tokenizer: Tokenizer) -> str:
    """The text of token ids; bytes that do not form valid UTF-8 become U+FFFD.

    Parameters
    ----------
    ids : array-like of int
        Token ids, shape ``(n_tokens,)`` (a list or an integer NumPy array).
    tokenizer : Tokenizer

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If ``ids`` is not integer or ``tokenizer`` not a Tokenizer.
    ValueError
        If ``ids`` is not 1-D or holds an id that is not in the vocabulary.
    """
    where = "gpt2_tokenizer.decode"
    _check_tokenizer(where, tokenizer)
    arr = np.asarray(ids)
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{where}: argument 'ids' must hold integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{where}: argument 'ids' must have 1 dimension, got shape {arr.shape}")
    table = tokenizer.token_bytes
    unknown = [i for i in arr.tolist() if i not in table]
    if unknown:
        raise ValueError(f"{where}: argument 'ids' must hold ids of the vocabulary "
                         f"({len(table)} tokens), got {unknown[0]}")
    return b"".join(table[i] for i in arr.tolist()).decode("utf-8", errors="replace")


# --- training -----------------------------------------------------------------------------

@contract(example=lambda rng: {"text": "the cat sat on the mat", "vocab_size": 270,
                               "special_tokens": (END_OF_TEXT,)},
          lenient={"special_tokens": ("empty",)})
def train(text: str, vocab_size: int, special_tokens=(END_OF_TEXT,)) -> Tokenizer:
    """Learn GPT-2-style merges from ``text``: byte-level BPE within pre-tokenised pieces.

    Each distinct piece is counted once with its frequency.  Each step merges, in every
    piece, the adjacent pair with the highest count (ties: the pair of smallest ids), left to
    right, and records it.  Pair counts are updated only in the pieces that held the pair.
    Ids: the 256 bytes in :func:`bytes_to_unicode`'s order, then each new token in the order
    learned (a merge whose result is already a token reuses its id), then the special tokens.

    Parameters
    ----------
    text : str
        The training text; special tokens in it are cut out and not learned from.
    vocab_size : int
        Tokens in the vocabulary, bytes and special tokens included: at least
        ``256 + len(special_tokens)``.  Fewer if the text runs out of pairs.
    special_tokens : iterable of str, default ('<|endoftext|>',)
        Default ``("<|endoftext|>",)``.

    Returns
    -------
    Tokenizer

    Raises
    ------
    TypeError
        If ``text`` is not a str, ``vocab_size`` not an int or a special token not a str.
    ValueError
        If ``vocab_size`` is too small for the bytes and special tokens, a special token is
        empty, or ``text`` holds a lone surrogate.
    """
    where = "gpt2_tokenizer.train"
    _check_text(where, text)
    vocab_size = _checks.integer(where, "vocab_size", vocab_size)
    special_tokens = _special_list(where, special_tokens)
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"{where}: argument 'vocab_size' must be >= 256 + "
                         f"{len(special_tokens)} (the bytes and the special tokens), "
                         f"got {vocab_size}")
    byte_chars = bytes_to_unicode()
    tokens = list(byte_chars.values())                 # id -> token
    ids = {t: i for i, t in enumerate(tokens)}         # token -> id
    byte_ids = [ids[byte_chars[b]] for b in range(256)]
    counts = Counter()
    pattern, table = _special_pattern(dict.fromkeys(special_tokens)), _class_table(text)
    for chunk, is_special in _chunks(text, pattern):
        if not is_special:
            counts.update(_pieces(chunk, table))
    try:
        seqs = [[byte_ids[b] for b in piece.encode("utf-8")] for piece in counts]
    except UnicodeEncodeError:
        raise ValueError(f"{where}: argument 'text' must be writable as UTF-8, got a lone "
                         f"surrogate") from None
    freqs = list(counts.values())

    pair_count, holders = Counter(), defaultdict(set)
    for w, seq in enumerate(seqs):
        for pair in pairwise(seq):
            pair_count[pair] += freqs[w]
            holders[pair].add(w)
    heap = [(-c, pair) for pair, c in pair_count.items()]
    heapq.heapify(heap)
    merges = []
    while heap and len(tokens) < vocab_size - len(special_tokens):
        neg_count, pair = heapq.heappop(heap)
        if pair_count.get(pair, 0) != -neg_count:
            continue                                   # stale: the count has changed since
        merged = tokens[pair[0]] + tokens[pair[1]]
        if merged not in ids:
            ids[merged] = len(tokens)
            tokens.append(merged)
        merges.append((tokens[pair[0]], tokens[pair[1]]))
        touched = set()
        for w in holders.pop(pair):
            old, f = seqs[w], freqs[w]
            new = bpe._merge(old, pair, ids[merged])
            for p in pairwise(old):
                pair_count[p] -= f
                touched.add(p)
            for p in pairwise(new):
                pair_count[p] += f
                holders[p].add(w)
                touched.add(p)
            seqs[w] = new
        for p in touched:
            if pair_count[p] > 0:
                heapq.heappush(heap, (-pair_count[p], p))
            else:
                del pair_count[p]
    for token in special_tokens:
        if token not in ids:
            ids[token] = len(tokens)
            tokens.append(token)
    return Tokenizer(ids, merges, special_tokens)


# --- files --------------------------------------------------------------------------------

@contract(example=lambda rng: {**_example_files(write=True), "special_tokens": (END_OF_TEXT,)},
          lenient={"special_tokens": ("empty",)})
def load(vocab_path, merges_path, special_tokens=(END_OF_TEXT,)) -> Tokenizer:
    """Read GPT-2's ``vocab.json`` and ``merges.txt`` (or files written by :func:`save`).

    Parameters
    ----------
    vocab_path, merges_path : str or os.PathLike
        ``vocab.json`` is one JSON object ``{token: id}``.  ``merges.txt`` holds one merge
        per line, the two tokens separated by a space, in rank order; a first line starting
        with ``#version`` is skipped, as are empty lines.
    special_tokens : iterable of str, default ('<|endoftext|>',)
        Default ``("<|endoftext|>",)``; each must be in ``vocab.json``.

    Returns
    -------
    Tokenizer

    Raises
    ------
    TypeError
        If a path is not a str or path, or an entry of ``vocab.json`` not a str and an int.
    ValueError
        If ``vocab.json`` is not a JSON object, a line of ``merges.txt`` is not two tokens,
        or the tables are inconsistent (see ``Tokenizer``).
    OSError
        If a file cannot be read.
    """
    where = "gpt2_tokenizer.load"
    _check_path(where, "vocab_path", vocab_path)
    _check_path(where, "merges_path", merges_path)
    special_tokens = _special_list(where, special_tokens)
    with open(vocab_path, encoding="utf-8") as f:
        try:
            vocab = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}: argument 'vocab_path' must name a JSON file, "
                             f"{os.fspath(vocab_path)!r} is not: {exc}") from None
    if not isinstance(vocab, dict):
        raise ValueError(f"{where}: argument 'vocab_path' must name a JSON object "
                         f"{{token: id}}, got a {type(vocab).__name__}")
    merges = []
    with open(merges_path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            pair = line.split(" ")
            if len(pair) != 2 or not all(pair):
                raise ValueError(f"{where}: argument 'merges_path' must have two tokens "
                                 f"separated by one space on each line, got {line!r} on "
                                 f"line {number}")
            merges.append(tuple(pair))
    try:
        return Tokenizer(vocab, merges, special_tokens)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: the files named by 'vocab_path' and 'merges_path' (and "
                        f"'special_tokens') do not make a tokenizer: {exc}") from None


@contract(example=lambda rng: {"tokenizer": Tokenizer(**_example_tables()),
                               **_example_files(write=False)})
def save(tokenizer: Tokenizer, vocab_path, merges_path) -> None:
    """Write ``vocab.json`` and ``merges.txt`` in GPT-2's format (UTF-8).

    Parameters
    ----------
    tokenizer : Tokenizer
    vocab_path, merges_path : str or os.PathLike
        Where to write; existing files are replaced.

    Raises
    ------
    TypeError
        If ``tokenizer`` is not a Tokenizer or a path not a str or path.
    OSError
        If a file cannot be written.
    """
    where = "gpt2_tokenizer.save"
    _check_tokenizer(where, tokenizer)
    _check_path(where, "vocab_path", vocab_path)
    _check_path(where, "merges_path", merges_path)
    vocab = dict(sorted(tokenizer.vocab.items(), key=lambda item: item[1]))
    with open(vocab_path, "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(merges_path, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        f.writelines(f"{left} {right}\n" for left, right in tokenizer.merges)


# --- argument checks ----------------------------------------------------------------------

def _check_text(where: str, text) -> None:
    if not isinstance(text, str):
        raise TypeError(f"{where}: argument 'text' must be a str, got {type(text).__name__}")


def _special_list(where: str, special_tokens) -> list:
    """The special tokens as a list without repeats, after checking they are non-empty str."""
    try:
        tokens = list(special_tokens)
    except TypeError:
        tokens = None
    if isinstance(special_tokens, str) or tokens is None or \
            not all(isinstance(t, str) for t in tokens):
        raise TypeError(f"{where}: argument 'special_tokens' must be an iterable of str, "
                        f"got {special_tokens!r}")
    if "" in tokens:
        raise ValueError(f"{where}: argument 'special_tokens' must not hold an empty string")
    return list(dict.fromkeys(tokens))


def _check_tokenizer(where: str, tokenizer) -> None:
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"{where}: argument 'tokenizer' must be a gpt2_tokenizer.Tokenizer "
                        f"(from load, train or Tokenizer), got {type(tokenizer).__name__}")


def _check_path(where: str, name: str, path) -> None:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: argument '{name}' must be a str or path, "
                        f"got {type(path).__name__}")


# --- the examples of the input-contract declarations --------------------------------------

def _example_tables() -> dict:
    """The tables of a small valid tokenizer: the bytes, two merges, the end-of-text token."""
    vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    vocab.update({"ab": 256, "Ġc": 257, END_OF_TEXT: 258})
    return {"vocab": vocab, "merges": [("a", "b"), ("Ġ", "c")], "special_tokens": (END_OF_TEXT,)}


def _example_files(write: bool) -> dict:
    """Paths for that tokenizer's files in a temporary folder of this process (written there
    when ``write``)."""
    folder = Path(tempfile.gettempdir()) / f"llmref-gpt2_tokenizer-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    paths = {"vocab_path": str(folder / "vocab.json"), "merges_path": str(folder / "merges.txt")}
    if write:
        save(Tokenizer(**_example_tables()), **paths)
    return paths
