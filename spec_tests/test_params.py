"""The parameter-tree helpers (``params``): flat paths, counts and maps over nested dicts
and lists of arrays, which optimizers, clipping and the memory calculator all rely on."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import strategies as hs


def _tree(rng, widths):
    """A GPT-like tree: a table, a list of blocks with two leaves each, a final vector."""
    return {"wte": {"W": rng.standard_normal((5, widths[0]))},
            "blocks": [{"W": rng.standard_normal((w, w + 1)), "b": rng.standard_normal(w + 1)}
                       for w in widths],
            "ln_f": {"gamma": rng.standard_normal(widths[-1])}}


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), hs.seeds)
def test_flatten_gives_every_leaf_its_dotted_path(impl, widths, seed):
    """Flattening names every leaf by its dotted path (list positions as numbers) and keeps
    the leaf itself; counting adds up every element."""
    tree = _tree(np.random.default_rng(seed), widths)
    flat = impl("params.flatten")(tree)
    expected = {"wte.W": tree["wte"]["W"], "ln_f.gamma": tree["ln_f"]["gamma"]}
    for i, block in enumerate(tree["blocks"]):
        expected[f"blocks.{i}.W"], expected[f"blocks.{i}.b"] = block["W"], block["b"]
    assert sorted(flat) == sorted(expected)
    for key, leaf in expected.items():
        assert flat[key] is leaf, key
    sizes = 5 * widths[0] + sum(w * (w + 1) + w + 1 for w in widths) + widths[-1]
    assert impl("params.count")(tree) == sizes
    assert impl("params.nbytes")(tree) == 8 * sizes


@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), hs.seeds)
def test_map_tree_keeps_the_structure(impl, widths, seed):
    """Mapping a function over a tree gives a tree of the same shape with the function
    applied to every leaf."""
    tree = _tree(np.random.default_rng(seed), widths)
    doubled = impl("params.map_tree")(lambda a: 2 * a, tree)
    flat, flat_doubled = impl("params.flatten")(tree), impl("params.flatten")(doubled)
    assert sorted(flat) == sorted(flat_doubled)
    for key in flat:
        np.testing.assert_array_equal(flat_doubled[key], 2 * flat[key])
    assert isinstance(doubled["blocks"], list) and len(doubled["blocks"]) == len(widths)



@given(st.lists(st.integers(1, 4), min_size=1, max_size=3), hs.seeds)
def test_unflatten_inverts_flatten(impl, widths, seed):
    """unflatten(flatten(tree)) is the tree again: the same nesting, levels keyed "0" ..
    "n-1" back as lists, the very same leaves; other digit keys stay a dict."""
    tree = _tree(np.random.default_rng(seed), widths)
    back = impl("params.unflatten")(impl("params.flatten")(tree))
    assert sorted(back) == sorted(tree) and isinstance(back["blocks"], list)
    assert len(back["blocks"]) == len(widths)
    for i, block in enumerate(tree["blocks"]):
        assert back["blocks"][i]["W"] is block["W"] and back["blocks"][i]["b"] is block["b"]
    assert back["wte"]["W"] is tree["wte"]["W"] and back["ln_f"]["gamma"] is tree["ln_f"]["gamma"]
    x, y = np.ones(1), np.zeros(2)
    assert impl("params.unflatten")({"a.0": x, "a.2": y}) == {"a": {"0": x, "2": y}}
    assert impl("params.unflatten")({}) == {}


def test_flatten_prefixes_every_path(impl):
    """With a prefix every path starts with it; a bare leaf's path is the prefix itself, and
    map_with_paths gives a bare leaf the path ''."""
    x, y = np.ones(2), np.zeros(3)
    assert impl("params.flatten")({"a": {"b": x}, "c": [y]}, prefix="model") == {
        "model.a.b": x, "model.c.0": y}
    assert impl("params.flatten")(x, prefix="model") == {"model": x}
    assert impl("params.map_with_paths")(lambda path, leaf: path, x) == ""


def test_count_reads_shape_tuples_anywhere_in_the_tree(impl):
    """count takes shape tuples as leaves at any depth (a size of 0 included, NumPy ints
    too) next to arrays; flatten and nbytes do not (a tuple there is a list of ints); a shape
    holds only non-negative ints, not bools or floats."""
    tree = {"a": (0, 3), "b": [(np.int64(2), 3), {"c": (4,)}], "d": np.ones(5)}
    assert impl("params.count")(tree) == 0 + 6 + 4 + 5
    for name in ("flatten", "nbytes"):
        with pytest.raises(TypeError, match=r"at 'a\.0' must be an array"):
            impl(f"params.{name}")({"a": (2, 3)})
    for bad in ((True, 2), (2.0, 3), (-1, 2)):
        with pytest.raises(TypeError, match=r"at 'a\.0' must be an array"):
            impl("params.count")({"a": bad})


_ONE = np.ones(1)
_DEEP = {"x": {"a": [_ONE, 3]}}                      # a non-tree two dicts and a list down
_T = {"x": {"a": [_ONE, _ONE]}}
_NOT_A_TREE = "must be an array, a dict or a list of them, got"


def _take_first(*leaves):
    return leaves[0]


REFUSED = {
    "flatten of an int": (lambda impl: impl("params.flatten")(3), TypeError,
                          f"params.flatten: argument 'tree' {_NOT_A_TREE} int 3"),
    "flatten, deep": (lambda impl: impl("params.flatten")(_DEEP), TypeError,
                      f"params.flatten: argument 'tree' at 'x.a.1' {_NOT_A_TREE} int 3"),
    "count of an int": (lambda impl: impl("params.count")(3), TypeError,
                        f"params.count: argument 'tree' {_NOT_A_TREE} int 3"),
    "count, deep": (lambda impl: impl("params.count")(_DEEP), TypeError,
                    f"params.count: argument 'tree' at 'x.a.1' {_NOT_A_TREE} int 3"),
    "nbytes of an int": (lambda impl: impl("params.nbytes")(3), TypeError,
                         f"params.nbytes: argument 'tree' {_NOT_A_TREE} int 3"),
    "nbytes, deep": (lambda impl: impl("params.nbytes")({"x": {"a": [_ONE, None]}}), TypeError,
                     f"params.nbytes: argument 'tree' at 'x.a.1' {_NOT_A_TREE} NoneType None"),
    "map_tree of an int": (lambda impl: impl("params.map_tree")(np.negative, 3), TypeError,
                           f"params.map_tree: argument 'tree' {_NOT_A_TREE} int 3"),
    "map_tree, deep": (lambda impl: impl("params.map_tree")(np.negative, _DEEP), TypeError,
                       f"params.map_tree: argument 'tree' at 'x.a.1' {_NOT_A_TREE} int 3"),
    "map_with_paths, deep": (
        lambda impl: impl("params.map_with_paths")(lambda path, leaf: leaf, _DEEP), TypeError,
        f"params.map_with_paths: argument 'tree' at 'x.a.1' {_NOT_A_TREE} int 3"),
    "check_finite of a bare leaf": (
        lambda impl: impl("params.check_finite")("f", "x", np.array([np.nan])), ValueError,
        "f: x[''] holds NaN or inf values"),
    "check_finite, deep": (
        lambda impl: impl("params.check_finite")("f", "x",
                                                 {"x": {"a": [_ONE, np.array([np.inf])]}}),
        ValueError, "f: x['x.a.1'] holds NaN or inf values"),
    "check_finite of a non-tree": (lambda impl: impl("params.check_finite")("f", "x", _DEEP),
                                   TypeError, f"f: argument 'x' at 'x.a.1' {_NOT_A_TREE} int 3"),
    "map_trees, a non-tree deep": (
        lambda impl: impl("params.map_trees")("f", np.add, _DEEP, _T), TypeError,
        f"f: argument 'params' at 'x.a.1' {_NOT_A_TREE} int 3"),
    "map_trees, names not str": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, _T, names=3), TypeError,
        "params.map_trees: argument 'names' must be a tuple of str, got int 3"),
    "map_trees, no names": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, _T, names=()), ValueError,
        "params.map_trees: argument 'names' must name at least the first tree, got ()"),
    "map_trees, a leaf's shape": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, {"x": {"a": [_ONE, np.ones(3)]}}),
        ValueError, "f: grads['x.a.1'] must have shape (1,) like params, got (3,)"),
    "map_trees, a list for a leaf": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, {"x": {"a": [_ONE, [1.0]]}}),
        ValueError, "f: grads['x.a.1'] must have shape (1,) like params, got list"),
    "map_trees, an extra key": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, {"x": {"a": [_ONE, _ONE],
                                                                       "b": _ONE}}),
        ValueError, "f: grads at 'x' must have keys ['a'], got ['a', 'b']"),
    "map_trees, a list for a dict": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, {"x": [_ONE]}),
        ValueError, "f: grads at 'x' must have keys ['a'], got list"),
    "map_trees, keys at the top": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, {"y": _ONE}),
        ValueError, "f: grads at 'the top' must have keys ['x'], got ['y']"),
    "map_trees, a short list": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, {"x": {"a": [_ONE]}}),
        ValueError, "f: grads at 'x.a' must be a list of 2"),
    "map_trees, a short list at the top": (
        lambda impl: impl("params.map_trees")("f", np.add, [_ONE, _ONE], [_ONE]),
        ValueError, "f: grads at 'the top' must be a list of 2"),
    "map_trees, a dict for a list": (
        lambda impl: impl("params.map_trees")("f", np.add, _T, {"x": {"a": {"0": _ONE}}}),
        ValueError, "f: grads at 'x.a' must be a list of 2"),
    "map_trees, names of the 1st other tree": (
        lambda impl: impl("params.map_trees")(
            "f", _take_first, _T, {"x": {"a": [_ONE, np.ones(2)]}}, _T, _T,
            names=("p", "g", "m")),
        ValueError, "f: g['x.a.1'] must have shape (1,) like p, got (2,)"),
    "map_trees, names of the 2nd other tree": (
        lambda impl: impl("params.map_trees")(
            "f", _take_first, _T, _T, {"x": {"a": [_ONE, np.ones(2)]}}, _T,
            names=("p", "g", "m")),
        ValueError, "f: m['x.a.1'] must have shape (1,) like p, got (2,)"),
    "map_trees, names of the 3rd other tree": (
        lambda impl: impl("params.map_trees")(
            "f", _take_first, _T, _T, _T, {"x": {"a": [_ONE, np.ones(2)]}},
            names=("p", "g", "m")),
        ValueError, "f: m['x.a.1'] must have shape (1,) like p, got (2,)"),
    "map_trees of a bare leaf, where not a str": (
        lambda impl: impl("params.map_trees")(3, np.negative, _ONE), TypeError,
        "params.map_trees: argument 'where' must be a str, got int 3"),
    "map_trees of a bare leaf, fn not callable": (
        lambda impl: impl("params.map_trees")("f", 3, _ONE), TypeError,
        "params.map_trees: argument 'fn' must be a function, got int 3"),
    "map_trees of a bare leaf, no names": (
        lambda impl: impl("params.map_trees")("f", np.negative, _ONE, names=()), ValueError,
        "params.map_trees: argument 'names' must name at least the first tree, got ()"),
    "unflatten of a list": (
        lambda impl: impl("params.unflatten")([1]), TypeError,
        "params.unflatten: argument 'flat' must be a dict of dotted names to leaves, got list"),
    "unflatten of an int name": (
        lambda impl: impl("params.unflatten")({3: _ONE}), TypeError,
        "params.unflatten: argument 'flat' must have str keys, got 3"),
    "unflatten of an empty part": (
        lambda impl: impl("params.unflatten")({"a..b": _ONE}), ValueError,
        "params.unflatten: argument 'flat' has the name 'a..b' with an empty part; expected "
        "names such as 'blocks.0.attn.qkv.W'"),
    "unflatten, a leaf then a branch": (
        lambda impl: impl("params.unflatten")({"x.a": _ONE, "x.a.b": _ONE}), ValueError,
        "params.unflatten: argument 'flat' has 'x.a' both as a leaf and as a branch "
        "(in 'x.a.b')"),
    "unflatten, a branch then a leaf": (
        lambda impl: impl("params.unflatten")({"x.a.b": _ONE, "x.a": _ONE}), ValueError,
        "params.unflatten: argument 'flat' has 'x.a' both as a leaf and as a branch"),
}


@pytest.mark.reference_only
@pytest.mark.component("params")
@pytest.mark.parametrize("case", list(REFUSED))
def test_refusals_in_the_references_words(impl, case):
    """The whole message: the function (or the caller's ``where``), the argument and the
    path of the offending node, the rule and what was given."""
    call, error, message = REFUSED[case]
    with pytest.raises(error) as info:
        call(impl)
    assert str(info.value) == message
