"""The parameter-tree helpers (``params``): flat paths, counts and maps over nested dicts
and lists of arrays, which optimizers, clipping and the memory calculator all rely on."""

import numpy as np
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

