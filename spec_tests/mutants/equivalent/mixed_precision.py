"""mutmut survivors of the mixed_precision group judged equivalent: nothing a test can observe."""

_NO_INVALID = ("no operation in the block can signal an invalid value: a float32 (NaN and inf "
               "included) divided by a finite positive scale (a scale outside float32's range "
               "is refused before)")
_G32 = "where, \"grads\", g32, finite=False).values())"
_G32_REASON = ("g32 is map_trees' copy of gradients already checked as a float tree (dicts and "
               "lists of float32 arrays), and finite=False: float_tree never raises here, so "
               "its function and argument names are never shown")
_FALSY = "float_tree reads finite for its truth: None is as false as False"

SPECIFIC = {
    ("_pair", "got = _checks.float_tree(where, \"grads\", grads, finite=finite)",
     "got = _checks.float_tree(where, \"grads\", grads, finite=None)"):
        "_pair's only caller passes finite=False, and float_tree reads the flag for its truth: "
        "None is False",
    ("_pair", "_checks.same_tree(where, \"grads\", got, \"master\", flat, same_dtype=False)",
     "_checks.same_tree(where, \"grads\", got, \"master\", flat, same_dtype=None)"):
        "same_tree reads same_dtype for its truth: None is False",
    # _unscale: a float32 (NaN and inf included) divided by a finite positive scale
    ("_unscale", "with np.errstate(over=\"ignore\", invalid=\"ignore\"):",
     "with np.errstate(over=\"ignore\", invalid=None):"): _NO_INVALID,
    ("_unscale", "with np.errstate(over=\"ignore\", invalid=\"ignore\"):",
     "with np.errstate(over=\"ignore\", ):"): _NO_INVALID,
    **{("_unscale", _G32, _G32.replace(old, new)): _G32_REASON
       for old, new in (("where", "None"), ('"grads"', "None"), ('"grads"', '"XXgradsXX"'),
                        ('"grads"', '"GRADS"'))},
    ("_unscale", _G32, _G32.replace("finite=False", "finite=None")): _FALSY,
    ("unscale", "_checks.float_tree(where, \"grads\", grads, finite=False)",
     "_checks.float_tree(where, \"grads\", grads, finite=None)"): _FALSY,
    ("train_step", "finite=False)", "finite=None)"): _FALSY,
}
