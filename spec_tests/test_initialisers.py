"""Initialisers (shapes, zero biases, unit gains, the stated standard deviations, every
option) and the parameter-tree helpers (flatten, map, count, bytes, finiteness)."""

import numpy as np
import pytest

from llmref.transformer.gpt import GPTConfig


def _std_close(a, std, name):
    """Sample standard deviation within 3% of ``std`` (thousands of samples: the estimate's
    own spread is under 1%), and mean near 0."""
    assert abs(a.std() / std - 1) < 0.03, f"{name}: std {a.std():.4g}, expected {std:.4g}"
    assert abs(a.mean()) < 5 * std / np.sqrt(a.size), f"{name}: mean {a.mean():.3g}"


def test_linear_init_options(impl):
    rng = np.random.default_rng(0)
    p = impl("linear.init")(300, 200, rng)
    assert set(p) == {"W", "b"} and p["W"].shape == (300, 200)
    _std_close(p["W"], 1 / np.sqrt(300), "default W")
    np.testing.assert_array_equal(p["b"], np.zeros(200))
    p = impl("linear.init")(300, 200, rng, bias=False, std=0.3)
    assert set(p) == {"W"}
    _std_close(p["W"], 0.3, "W with std=0.3")


def test_layer_init_options(impl):
    """Embeddings, norms, multi-head attention, feed-forward and block initialisers with
    their std and proj_std options."""
    rng = np.random.default_rng(1)
    _std_close(impl("embedding.init")(500, 64, rng)["W"], 0.02, "embedding default")
    _std_close(impl("embedding.init")(500, 64, rng, std=0.5)["W"], 0.5, "embedding std")
    _std_close(impl("positional.init")(400, 64, rng, std=0.1)["W"], 0.1, "positions std")
    ln = impl("layer_norm.init")(7)
    np.testing.assert_array_equal(ln["gamma"], np.ones(7))
    np.testing.assert_array_equal(ln["beta"], np.zeros(7))
    np.testing.assert_array_equal(impl("rms_norm.init")(5)["gamma"], np.ones(5))
    mha = impl("mha.init")(64, 4, rng, std=0.1, proj_std=0.3)
    assert mha["qkv"]["W"].shape == (64, 192) and mha["proj"]["W"].shape == (64, 64)
    _std_close(mha["qkv"]["W"], 0.1, "mha qkv")
    _std_close(mha["proj"]["W"], 0.3, "mha proj")
    ffn = impl("ffn.init")(64, 96, rng, std=0.05, proj_std=0.2)
    _std_close(ffn["fc"]["W"], 0.05, "ffn fc")
    _std_close(ffn["proj"]["W"], 0.2, "ffn proj")
    block = impl("block.init")(64, 4, 96, rng, std=0.04, proj_std=0.01)
    _std_close(block["attn"]["qkv"]["W"], 0.04, "block qkv")
    _std_close(block["ffn"]["proj"]["W"], 0.01, "block ffn proj")
    _std_close(block["attn"]["proj"]["W"], 0.01, "block attn proj")
    _std_close(block["ffn"]["fc"]["W"], 0.04, "block ffn fc")
    for name in ("ln1", "ln2"):
        np.testing.assert_array_equal(block[name]["gamma"], np.ones(64))
        np.testing.assert_array_equal(block[name]["beta"], np.zeros(64))
    np.testing.assert_array_equal(ffn["fc"]["b"], 0.0)
    np.testing.assert_array_equal(ffn["proj"]["b"], 0.0)
    default = impl("block.init")(64, 4, 96, np.random.default_rng(11))
    _std_close(np.concatenate([default["attn"]["proj"]["W"].ravel(),
                               default["ffn"]["proj"]["W"].ravel()]), 0.02, "block default")
    for part in ("qkv", "proj"):
        np.testing.assert_array_equal(block["attn"][part]["b"], 0.0)
    with pytest.raises(ValueError, match="'n_heads' must divide"):
        impl("mha.init")(10, 3, rng)
    bigram = impl("bigram_policy.init")(30, rng, std=2.0)
    assert bigram["Z"].shape == (31, 30)
    _std_close(bigram["Z"], 2.0, "bigram logits")


@pytest.mark.parametrize("tie", [True, False], ids=["tied", "untied"])
def test_gpt_and_reward_model_init(impl, tie):
    """GPT-2's initialisation: N(0, 0.02^2) weights, residual projections at
    0.02 / sqrt(2 n_layers), positions at 0.01, zero biases, unit gains, float32 when asked;
    the reward model drops the LM head and adds a (C, 1) head with a zero bias."""
    config = GPTConfig(vocab_size=300, context_len=64, d_model=64, n_heads=4, n_layers=8,
                       tie_weights=tie)
    p = impl("gpt.init")(config, np.random.default_rng(2), dtype=np.float32)
    assert all(a.dtype == np.float32 for a in impl("params.flatten")(p).values())
    assert ("lm_head" in p) is (not tie)
    _std_close(p["wte"]["W"], 0.02, "wte")
    _std_close(p["wpe"]["W"], 0.01, "wpe")
    proj = np.concatenate([np.concatenate([b["attn"]["proj"]["W"].ravel(),
                                           b["ffn"]["proj"]["W"].ravel()]) for b in p["blocks"]])
    _std_close(proj, 0.02 / np.sqrt(16), "residual projections")
    _std_close(np.concatenate([b["ffn"]["fc"]["W"].ravel() for b in p["blocks"]]), 0.02, "fc")
    np.testing.assert_array_equal(p["ln_f"]["gamma"], 1.0)
    rm = impl("reward_model.init")(config, np.random.default_rng(3))
    assert "lm_head" not in rm and rm["reward_head"]["W"].shape == (64, 1)
    np.testing.assert_array_equal(rm["reward_head"]["b"], [0.0])


def test_tree_helpers(impl):
    """flatten's paths, map_tree and map_with_paths keep the tree's shape, count and nbytes
    add up the leaves, map_trees and check_finite name the offending path."""
    tree = {"a": {"W": np.ones((2, 3)), "b": np.zeros(3, dtype=np.float32)},
            "blocks": [{"g": np.arange(4.0)}, {"g": np.full(4, 2.0)}]}
    flat = impl("params.flatten")(tree)
    assert list(flat) == ["a.W", "a.b", "blocks.0.g", "blocks.1.g"]
    assert flat["a.W"] is tree["a"]["W"]                      # leaves are not copied
    assert impl("params.count")(tree) == 6 + 3 + 4 + 4
    assert impl("params.nbytes")(tree) == 6 * 8 + 3 * 4 + 8 * 8
    doubled = impl("params.map_tree")(lambda a: 2 * a, tree)
    np.testing.assert_array_equal(doubled["blocks"][1]["g"], np.full(4, 4.0))
    paths = impl("params.map_with_paths")(lambda path, a: path, tree)
    assert paths == {"a": {"W": "a.W", "b": "a.b"}, "blocks": [{"g": "blocks.0.g"},
                                                               {"g": "blocks.1.g"}]}
    summed = impl("params.map_trees")("test", lambda x, y: x + y, tree, doubled)
    np.testing.assert_array_equal(summed["a"]["W"], np.full((2, 3), 3.0))
    with pytest.raises(ValueError, match=r"blocks\.1\.g"):
        impl("params.map_trees")("test", lambda x, y: x, tree,
                                 {**tree, "blocks": [tree["blocks"][0], {"g": np.ones(5)}]})
    bad = {**tree, "blocks": [tree["blocks"][0], {"g": np.array([1.0, np.inf])}]}
    with pytest.raises(ValueError, match=r"test: grads\['blocks\.1\.g'\] holds NaN or inf"):
        impl("params.check_finite")("test", "grads", bad)
    impl("params.check_finite")("test", "grads", tree)        # finite: no error


def test_layers_of_width_one(impl):
    """A width of 1 is a valid size for every table and layer."""
    rng = np.random.default_rng(6)
    assert impl("embedding.init")(5, 1, rng)["W"].shape == (5, 1)
    assert impl("positional.init")(4, 1, rng)["W"].shape == (4, 1)
    p = impl("linear.init")(1, 1, rng)
    assert p["W"].shape == (1, 1) and p["b"].shape == (1,)


def test_documented_defaults(impl):
    """Defaults the docstrings state: learned positions and token embeddings N(0, 0.02^2),
    the sinusoidal base 10000 (table and forward), linear layers with a bias."""
    rng = np.random.default_rng(4)
    _std_close(impl("positional.init")(400, 64, rng)["W"], 0.02, "positions default")
    _std_close(impl("embedding.init")(400, 64, rng)["W"], 0.02, "embedding default")
    table = impl("sinusoidal.table")(12, 8)
    np.testing.assert_array_equal(table, impl("sinusoidal.table")(12, 8, 10000.0))
    x = np.zeros((1, 12, 8))
    np.testing.assert_array_equal(impl("sinusoidal.forward")(x)[0][0], table)
    assert "b" in impl("linear.init")(3, 2, rng)


def test_held_bytes_walks_dicts_lists_and_views(impl):
    """Distinct buffers reachable through dicts, lists and tuples count once each (a view
    counts with the array it views), and buffers behind the excluded arrays not at all."""
    x, y = np.zeros((4, 8)), np.ones(16)
    held = impl("checkpoint.held_bytes")([{"a": x, "b": [x[:2], (y, y.reshape(4, 4))]}],
                                         exclude=[y[:3]])
    assert held == x.nbytes
    assert impl("checkpoint.held_bytes")([{"a": x}, [y]]) == x.nbytes + y.nbytes


@pytest.mark.parametrize(("fused", "bias"), [(True, True), (False, False)],
                         ids=["fused-bias", "separate-no-bias"])
def test_gpt_init_of_a_llama_configuration(impl, fused, bias):
    """A Llama configuration: float64 by default, grouped-query q/k/v widths (fused
    (C, (H + 2 H_kv) D) or separate), SwiGLU's three matrices, zero biases in every linear
    layer or none, RMSNorm gains only (no beta even with biases), no position table, an
    untied head; weights N(0, 0.02^2), the residual projections (attn proj, SwiGLU down)
    N(0, (0.02 / sqrt(2 L))^2), gains 1; gpt.shapes (nested and flat) describes exactly
    that tree."""
    config = GPTConfig(vocab_size=300, context_len=16, d_model=64, n_heads=4, n_layers=8,
                       d_ff=96, activation="swiglu", tie_weights=False, norm="rms",
                       position="rope", n_kv_heads=2, bias=bias, fused_qkv=fused)
    p = impl("gpt.init")(config, np.random.default_rng(5))
    flat = impl("params.flatten")(p)
    assert all(a.dtype == np.float64 for a in flat.values())
    assert "wpe" not in p and p["lm_head"]["W"].shape == (64, 300)
    assert not any(k.endswith(".beta") for k in flat)
    biases = [k for k in flat if k.endswith(".b")]
    assert len(biases) == (8 * (2 + 3) if bias else 0)      # per block: qkv, proj, 3 SwiGLU
    for k in biases:
        np.testing.assert_array_equal(flat[k], 0.0, err_msg=k)
    attn = p["blocks"][0]["attn"]
    if fused:
        assert set(attn) == {"qkv", "proj"} and attn["qkv"]["W"].shape == (64, 128)
    else:
        assert {k: v["W"].shape for k, v in attn.items()} == {
            "q": (64, 64), "k": (64, 32), "v": (64, 32), "proj": (64, 64)}
    ffn = p["blocks"][0]["ffn"]
    assert {k: v["W"].shape for k, v in ffn.items()} == {"gate": (64, 96), "up": (64, 96),
                                                         "down": (96, 64)}
    for name in ("ln1", "ln2"):
        assert set(p["blocks"][3][name]) == {"gamma"}
        np.testing.assert_array_equal(p["blocks"][3][name]["gamma"], 1.0)
    np.testing.assert_array_equal(p["ln_f"]["gamma"], 1.0)
    proj = np.concatenate([np.concatenate([b["attn"]["proj"]["W"].ravel(),
                                           b["ffn"]["down"]["W"].ravel()]) for b in p["blocks"]])
    _std_close(proj, 0.02 / np.sqrt(16), "residual projections")
    _std_close(np.concatenate([b["ffn"]["gate"]["W"].ravel() for b in p["blocks"]]), 0.02,
               "gate")
    _std_close(p["wte"]["W"], 0.02, "wte")
    _std_close(p["lm_head"]["W"], 0.02, "lm_head")
    shapes = impl("gpt.shapes")(config)
    assert impl("params.map_tree")(lambda a: a.shape, p) == shapes
    assert impl("gpt.shapes")(config, flat=True) == {k: v.shape for k, v in flat.items()}
