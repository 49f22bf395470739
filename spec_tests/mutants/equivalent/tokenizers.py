"""mutmut survivors of the tokenizers group (bpe, word_tokenizer) judged equivalent: nothing a
test can observe."""

_DECODE = 'return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")'

SPECIFIC = {
    ('tokens = list(text.encode("utf-8"))', 'tokens = list(text.encode("UTF-8"))'):
        "Python's codec registry normalises the name: 'UTF-8' and 'utf-8' are the same codec",
    (_DECODE, 'return b"".join(table[i] for i in ids).decode(errors="replace")'):
        "bytes.decode's default encoding is 'utf-8'",
    (_DECODE, 'return b"".join(table[i] for i in ids).decode("UTF-8", errors="replace")'):
        "Python's codec registry normalises the name: 'UTF-8' and 'utf-8' are the same codec",
}
