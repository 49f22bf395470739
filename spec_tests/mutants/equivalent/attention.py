"""mutmut survivors of the attention group judged equivalent: nothing a test can observe."""

_PAD = " " * 39                    # the spaces before the comment, as in the source

SPECIFIC = {
    ("if group > 1:" + _PAD + "# grouped-query: head h uses h // group",
     "if group >= 1:" + _PAD + "# grouped-query: head h uses h // group"):
        "with group 1, np.repeat(k, 1, axis=1) is a copy of k with the same values (the cache "
        "holds the copy instead of the caller's array, which the Cache section forbids editing)",
    ("if group > 1:" + _PAD + "# every repeat of a head adds its share",
     "if group >= 1:" + _PAD + "# every repeat of a head adds its share"):
        "with group 1 the reshape to (B, H, 1, S, D) and the sum over the axis of length 1 "
        "give the same gradients",
    ("return softmax._forward(s)[0]", "return softmax._forward(s)[1]"):
        "softmax._forward returns (s, s): its cache is the output itself",
    ("row_max[~np.isfinite(row_max)] = 0.0                # fully masked row: avoid -inf - -inf",
     "row_max[~np.isfinite(row_max)] = 1.0                # fully masked row: avoid -inf - -inf"):
        "a fully masked row is all -inf; minus 0 or minus 1 it is still -inf, exp gives 0",
    ("total[total == 0] = 1.0                             # fully masked row stays all zeros",
     "total[total == 0] = 2.0                             # fully masked row stays all zeros"):
        "only a fully masked row has total 0, and its entries are 0: 0 / 1 = 0 / 2 = 0",
    ("return (z @ np.ones(z.shape[-1], dtype=z.dtype))[..., None]",
     "return (z @ np.ones(z.shape[-1], dtype=None))[..., None]"):
        "float64 z: the same; float32 z: the row sum is taken in float64 and the in-place "
        "`z *= 1 / total` keeps z float32, a difference of float32 rounding only",
    ("return (z @ np.ones(z.shape[-1], dtype=z.dtype))[..., None]",
     "return (z @ np.ones(z.shape[-1], ))[..., None]"):
        "float64 z: the same; float32 z: the row sum is taken in float64 and the in-place "
        "`z *= 1 / total` keeps z float32, a difference of float32 rounding only",
    ("return s.reshape(q.shape[:-1] + (k.shape[-2],))",
     "return s.reshape(q.shape[:-1] + (k.shape[+2],))"):
        "k is always 4-d (B, H, S, D) here (checked by every caller), so shape[2] is shape[-2]",
    ("return np.ascontiguousarray(t).reshape((-1,) + t.shape[-2:])",
     "return np.ascontiguousarray(t).reshape((-1,) + t.shape[+2:])"):
        "every array stacked is 4-d (B, H, T, D), so shape[2:] is shape[-2:]",
}
