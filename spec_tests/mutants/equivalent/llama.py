"""mutmut survivors of the llama group judged equivalent: nothing a test can observe."""

_INV_FREQ = ("inv_freq = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / "
             "head_dim)")
_WHOLE = ("np.arange of ints without a dtype gives int64: the same whole numbers (below "
          "2**53), which the next operation, a true division by an int, makes float64 exactly")

SPECIFIC = {
    # rope._angles: the even indices 2i of the inverse frequencies
    (_INV_FREQ, _INV_FREQ.replace("dtype=np.float64", "dtype=None")): _WHOLE,
    (_INV_FREQ, _INV_FREQ.replace("dtype=np.float64", "")): _WHOLE,
    # rope._tables: float32 tables for float32 x; a float64 sine is multiplied into a
    # product that is added in place into the float32 output (and subtracted in place from
    # the float32 gradient), so the results stay float32 and move by float32 rounding only
    ("return cos[:, None].astype(dtype, copy=False), sin[:, None].astype(dtype, copy=False)",
     "return cos[:, None].astype(dtype, copy=False), sin[:, None].astype(None, copy=False)"):
        "the sine table in float64 for a float32 input: its products are added in place into "
        "the float32 output and gradient, so they stay float32 and differ by float32 "
        "rounding only, within the specification's float32 tolerance",
    ("return out, _checks.guard(where, cache)", "return out, _checks.guard(None, cache)"):
        "rope's cache holds no array of the caller (the guard watches nothing), so the name "
        "of the forward is never shown",
    ("return _backward(_checks.dout_like(\"silu.backward\", dout, cache[0].shape), cache)",
     "return _backward(_checks.dout_like(\"silu.backward\", dout, cache[1].shape), cache)"):
        "cache[0] and cache[1] (x and sigma(x)) have the same shape",
    ("x = cache[0][0]                                     # the input, kept by the gate layer",
     "x = cache[1][0]                                     # the input, kept by the gate layer"):
        "the gate's and the up projection's caches each hold the same input x",
}
