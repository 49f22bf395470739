"""mutmut survivors of the mixed_precision group judged equivalent: nothing a test can observe."""

SPECIFIC = {
    ("_pair", "got = _checks.float_tree(where, \"grads\", grads, finite=finite)",
     "got = _checks.float_tree(where, \"grads\", grads, finite=None)"):
        "_pair's only caller passes finite=False, and float_tree reads the flag for its truth: "
        "None is False",
    ("_pair", "_checks.same_tree(where, \"grads\", got, \"master\", flat, same_dtype=False)",
     "_checks.same_tree(where, \"grads\", got, \"master\", flat, same_dtype=None)"):
        "same_tree reads same_dtype for its truth: None is False",
}
