"""mutmut survivors of the gpt2_tokenizer group judged equivalent: nothing a test can
observe."""

_UTF8 = "Python's codec registry normalises the name: 'UTF-8' and 'utf-8' are the same codec"
_DECODE = 'return b"".join(table[i] for i in arr.tolist()).decode("utf-8", errors="replace")'
_NXT = "nxt, prev = list(range(1, n + 1)), list(range(-1, n - 1))"
_SORT = 'return re.compile("|".join(re.escape(t) for t in sorted(special, key=len, reverse=True)))'
_STALE = "if pair_count.get(pair, 0) != -neg_count:"
_CACHE_GET = "ids = cache.get(piece)"
_JSON = "json.dump(vocab, f, ensure_ascii=False)"
_ORDER = "vocab = dict(sorted(tokenizer.vocab.items(), key=lambda item: item[1]))"
_SPACE = ('start = i + 1 if text[i] == " " and i + 1 < len(text) and classes[i + 1] != "W" '
          'else i')

SPECIFIC = {
    ("if match.start() > start:", "if match.start() >= start:"):
        "the extra chunk is empty, and an empty chunk pretokenizes to no pieces",
    ("if start < len(text):", "if start <= len(text):"):
        "the extra chunk is empty, and an empty chunk pretokenizes to no pieces",
    ('data = piece.encode("utf-8")', 'data = piece.encode("UTF-8")'): _UTF8,
    ('seqs = [[byte_ids[b] for b in piece.encode("utf-8")] for piece in counts]',
     'seqs = [[byte_ids[b] for b in piece.encode("UTF-8")] for piece in counts]'): _UTF8,
    ('i: (t.encode("utf-8") if t in self.special_tokens',
     'i: (t.encode("UTF-8") if t in self.special_tokens'): _UTF8,
    ('else b"".join(char_bytes.get(c, c.encode("utf-8")) for c in t))',
     'else b"".join(char_bytes.get(c, c.encode("UTF-8")) for c in t))'): _UTF8,
    ('with open(vocab_path, encoding="utf-8") as f:',
     'with open(vocab_path, encoding="UTF-8") as f:'): _UTF8,
    ('with open(merges_path, encoding="utf-8") as f:',
     'with open(merges_path, encoding="UTF-8") as f:'): _UTF8,
    ('with open(vocab_path, "w", encoding="utf-8") as f:',
     'with open(vocab_path, "w", encoding="UTF-8") as f:'): _UTF8,
    ('with open(merges_path, "w", encoding="utf-8") as f:',
     'with open(merges_path, "w", encoding="UTF-8") as f:'): _UTF8,
    (_DECODE, 'return b"".join(table[i] for i in arr.tolist()).decode(errors="replace")'):
        "bytes.decode's default encoding is 'utf-8'",
    (_DECODE, 'return b"".join(table[i] for i in arr.tolist()).decode("UTF-8", '
              'errors="replace")'): _UTF8,
    (_NXT, "nxt, prev = list(range(1, n + 2)), list(range(-1, n - 1))"):
        "nxt gains an entry at index n, which is never read (only symbols 0..n-1 are)",
    (_NXT, "nxt, prev = list(range(1, n + 1)), list(range(-1, n + 1))"):
        "prev gains entries at indices n and n+1, which are never read (its first n entries "
        "are the same)",
    ("ids[i], ids[j] = new, -1", "ids[i], ids[j] = new, -2"):
        "a merged-away symbol is only ever tested for being negative (ids[i] < 0, t >= 0)",
    (_SORT, 'return re.compile("|".join(re.escape(t) for t in sorted(special, '
            'reverse=True)))'):
        "two special tokens match at the same place only when one is a prefix of the other, "
        "and then reverse lexicographic order also puts the longer first",
    (_SORT, 'return re.compile("|".join(re.escape(t) for t in sorted(special, key=None, '
            'reverse=True)))'):
        "two special tokens match at the same place only when one is a prefix of the other, "
        "and then reverse lexicographic order also puts the longer first",
    (_SPACE, 'start = i + 1 if text[i] == " " and i + 1 < len(text) and classes[i + 1] != '
             '"XXWXX" else i'):
        "when the space is followed by whitespace, start = i + 1 also has class W, and the "
        "whitespace branch reads its run from i, not start: the same piece",
    (_SPACE, 'start = i + 1 if text[i] == " " and i + 1 < len(text) and classes[i + 1] != '
             '"w" else i'):
        "when the space is followed by whitespace, start = i + 1 also has class W, and the "
        "whitespace branch reads its run from i, not start: the same piece",
    (_STALE, "if pair_count.get(pair, None) != -neg_count:"):
        "only positive counts are pushed, so -neg_count >= 1 differs from both 0 and None",
    (_STALE, "if pair_count.get(pair, ) != -neg_count:"):
        "only positive counts are pushed, so -neg_count >= 1 differs from both 0 and None",
    ("tokens.append(token)", "tokens.append(None)"):
        "after the merges, tokens (id -> token) is read only for its length",
    (_CACHE_GET, "ids = None"):
        "the cache only ever holds the ids that merging the piece gives: skipping the look-up "
        "changes the speed, not the ids",
    (_CACHE_GET, "ids = cache.get(None)"):
        "the cache only ever holds the ids that merging the piece gives: skipping the look-up "
        "changes the speed, not the ids",
    (_JSON, "json.dump(vocab, f, ensure_ascii=None)"):
        "the same JSON object either way: JSON readers decode \\u escapes",
    (_JSON, "json.dump(vocab, f, )"):
        "the same JSON object either way: JSON readers decode \\u escapes",
    (_JSON, "json.dump(vocab, f, ensure_ascii=True)"):
        "the same JSON object either way: JSON readers decode \\u escapes",
    (_ORDER, "vocab = dict(sorted(tokenizer.vocab.items(), key=None))"):
        "vocab.json is a JSON object: the order of its entries means nothing to a reader",
    (_ORDER, "vocab = dict(sorted(tokenizer.vocab.items(), ))"):
        "vocab.json is a JSON object: the order of its entries means nothing to a reader",
}
