"""mutmut survivors of the embeddings group judged equivalent: nothing a test can observe."""

_POSITIONS = ("positions = np.arange(seq_len, dtype=np.float64)[:, None]"
              "               # (T, 1)")
_EVEN = "even = np.arange(0, d_model, 2, dtype=np.float64)                       # 2i"
_WHOLE = ("np.arange of ints without a dtype gives int64: the same whole numbers (below "
          "2**53), which the next operation, a true division by a float, reads exactly")

SPECIFIC = {
    # sinusoidal._table: the positions and the even indices 2i
    (_POSITIONS, _POSITIONS.replace("dtype=np.float64", "dtype=None")): _WHOLE,
    (_POSITIONS, _POSITIONS.replace("dtype=np.float64", "")): _WHOLE,
    (_EVEN, _EVEN.replace("dtype=np.float64", "dtype=None")): _WHOLE,
    (_EVEN, _EVEN.replace("dtype=np.float64", "")): _WHOLE,
}
