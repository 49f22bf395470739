"""mutmut survivors of the params group judged equivalent: nothing a test can observe."""

_NO_PREFIX = ("a prefix of None and '' print the same: _join(None, k) == _join('', k) == str(k), "
              "and an error at the top shows no path for either; count and nbytes return only "
              "a sum, never the paths")

SPECIFIC = {
    ('leaves = _flatten("params.count", "tree", tree, "", {}, shapes=True).values()',
     'leaves = _flatten("params.count", "tree", tree, None, {}, shapes=True).values()'):
        _NO_PREFIX,
    ('for leaf in _flatten("params.nbytes", "tree", tree, "", {}).values()))',
     'for leaf in _flatten("params.nbytes", "tree", tree, None, {}).values()))'): _NO_PREFIX,
}
