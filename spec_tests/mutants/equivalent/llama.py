"""mutmut survivors of the llama group judged equivalent: nothing a test can observe."""

_INV_FREQ = ("inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / "
             "head_dim)")
_WHOLE = ("np.arange of ints without a dtype gives int64: the same whole numbers (below "
          "2**53), which the next operation, a true division by an int, makes float64 exactly")

SPECIFIC = {
    # rope._angles: the even indices 2i of the inverse frequencies
    (_INV_FREQ, _INV_FREQ.replace("dtype=np.float64", "dtype=None")): _WHOLE,
    (_INV_FREQ, _INV_FREQ.replace("dtype=np.float64", "")): _WHOLE,
}
