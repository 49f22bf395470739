"""Saving and loading a parameter tree with its configuration (``.npz`` and safetensors), and
the safetensors reader against files assembled here byte by byte from the format's
definition.  The checks against the ``safetensors`` library itself are in
``test_gpt2_parity.py`` (marker ``parity``)."""

import json
import struct

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from llmref.spec.harness import params as hp
from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import assert_same_tree, flatten
from llmref.transformer.gpt import GPTConfig

CONFIGS = {
    "tied": GPTConfig(vocab_size=11, context_len=6, d_model=8, n_heads=2, n_layers=2),
    "untied, relu, d_ff 5": GPTConfig(vocab_size=7, context_len=4, d_model=6, n_heads=3,
                                      n_layers=1, d_ff=5, activation="relu",
                                      tie_weights=False, eps=1e-6),
}
FORMATS = ["safetensors", "npz"]
#: every dtype both formats store, with the safetensors code for each
DTYPE_CODES = {np.float64: "F64", np.float32: "F32", np.float16: "F16", np.int64: "I64",
               np.int32: "I32", np.int16: "I16", np.int8: "I8", np.uint64: "U64",
               np.uint32: "U32", np.uint16: "U16", np.uint8: "U8", np.bool_: "BOOL"}


def safetensors_bytes(header: dict, data: bytes, length=None, pad: int = 0) -> bytes:
    """A safetensors file by the format's definition: 8-byte little-endian header length,
    the JSON header (padded with ``pad`` spaces), then the data."""
    text = json.dumps(header).encode() + b" " * pad
    return struct.pack("<Q", len(text) if length is None else length) + text + data


# --- save / load --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_save_then_load_gives_the_same_tree_and_config(impl, tmp_path, fmt, name, dtype):
    config = CONFIGS[name]
    params = _cast(hp.random_gpt(config, np.random.default_rng(0)), dtype)
    path = tmp_path / f"model.{fmt}"
    impl("weights.save")(path, params, config)
    loaded, loaded_config = impl("weights.load")(path)
    assert loaded_config == config
    assert_same_tree(loaded, params)
    loaded["wte"]["W"][0, 0] += 1.0                     # fresh, writable arrays
    assert loaded["wte"]["W"][0, 0] != params["wte"]["W"][0, 0]


def _cast(tree, dtype):
    if isinstance(tree, dict):
        return {k: _cast(v, dtype) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_cast(v, dtype) for v in tree]
    return tree.astype(dtype)


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_casts_floats_on_request_and_keeps_integers(impl, tmp_path, fmt):
    tree = {"w": np.linspace(-1, 1, 6).reshape(2, 3), "step": np.array(7, dtype=np.int64)}
    impl("weights.save")(tmp_path / f"a.{fmt}", tree, dtype="float16")
    loaded, config = impl("weights.load")(tmp_path / f"a.{fmt}")
    assert config is None
    assert loaded["w"].dtype == np.float16 and loaded["step"].dtype == np.int64
    assert np.array_equal(loaded["w"], tree["w"].astype(np.float16))
    assert loaded["step"] == 7


def test_save_as_bfloat16_rounds_like_torch(impl, tmp_path):
    """bfloat16 rounding (nearest, ties to even; overflow to inf; NaN kept) against torch's
    float32 -> bfloat16 conversion, on values chosen to hit each case."""
    rng = np.random.default_rng(1)
    special = np.array([1.0, -2.5, 0.0, -0.0, np.inf, -np.inf, 3.4e38, 1e-40,
                        np.float32(1 + 2 ** -8), np.float32(1 + 3 * 2 ** -8),   # ties
                        np.float32(1 + 2 ** -8 + 2 ** -20)], dtype=np.float32)
    x = np.concatenate([special, (rng.standard_normal(500) * 10.0 ** rng.integers(-30, 30, 500))
                        .astype(np.float32)])
    impl("weights.save")(tmp_path / "b.safetensors", {"x": x}, dtype="bfloat16")
    loaded, _ = impl("weights.load")(tmp_path / "b.safetensors")
    want = torch.from_numpy(x).to(torch.bfloat16).to(torch.float32).numpy()
    assert loaded["x"].dtype == np.float32
    assert np.array_equal(loaded["x"].view(np.uint32), want.view(np.uint32))
    nan, _ = impl("weights.load")(impl("weights.save")(
        tmp_path / "n.safetensors", {"x": np.array([np.nan], np.float32)}, dtype="bfloat16"))
    assert np.isnan(nan["x"]).all()


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_never_overwrites_unless_asked(impl, tmp_path, fmt):
    path = tmp_path / f"m.{fmt}"
    first, second = {"w": np.zeros(3)}, {"w": np.ones(3)}
    impl("weights.save")(path, first)
    with pytest.raises(FileExistsError, match=r"weights\.save.*'path'.*overwrite=True"):
        impl("weights.save")(path, second)
    assert np.array_equal(impl("weights.load")(path)[0]["w"], first["w"])
    impl("weights.save")(path, second, overwrite=True)
    assert np.array_equal(impl("weights.load")(path)[0]["w"], second["w"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]    # no temporary left


@pytest.mark.parametrize("fmt", FORMATS)
def test_save_and_load_a_file_whose_name_is_255_bytes(impl, tmp_path, fmt):
    """The longest name most file systems allow: the save goes through a scratch file beside
    it, whose own name must not be longer."""
    path = tmp_path / ("w" * (254 - len(fmt)) + "." + fmt)
    assert len(path.name.encode()) == 255
    impl("weights.save")(path, {"w": np.arange(3.0)})
    assert np.array_equal(impl("weights.load")(path)[0]["w"], np.arange(3.0))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]          # no temporary left


@pytest.mark.parametrize("suffix", [".Xnpz", ".XXsafetensors", "..npz.", ".npz.X"])
def test_a_format_is_read_from_the_exact_suffix(impl, tmp_path, suffix):
    """The format is the file's suffix without its dot, nothing else stripped."""
    with pytest.raises(ValueError, match=r"weights\.save.*'path'.*\.safetensors or \.npz"):
        impl("weights.save")(tmp_path / f"m{suffix}", {"w": np.zeros(1)})
    assert not list(tmp_path.iterdir())


def test_npz_holds_a_member_past_the_zip64_limit(impl, tmp_path, monkeypatch):
    """zipfile refuses a member that grows past ZIP64_LIMIT (2 GiB - 1) while it is written
    unless the member is opened with zip64 from the start: a float32 token table of 128k x
    4096 is that big.  The limit is lowered here so that 4 kB stand for 2 GiB."""
    import zipfile

    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
    x = np.arange(512.0)
    impl("weights.save")(tmp_path / "big.npz", {"w": x})
    assert np.array_equal(impl("weights.load")(tmp_path / "big.npz")[0]["w"], x)


def test_save_rejects_what_a_file_cannot_hold(impl, tmp_path):
    save = impl("weights.save")
    cases = [({"a.b": np.zeros(1)}, ValueError, ["params", "'a.b'", "dots"]),
             ({"a": [np.zeros(1), 3.0]}, TypeError, ["params['a.1']", "float"]),
             ({"a": np.array(["x"])}, TypeError, ["params['a']", "dtype <U1"]),
             ({}, ValueError, ["'params'", "no arrays"])]
    for tree, exc, parts in cases:
        with pytest.raises(exc) as info:
            save(tmp_path / "x.safetensors", tree)
        for part in ["weights.save: ", *parts]:
            assert part in str(info.value), (part, str(info.value))
    with pytest.raises(ValueError, match=r"weights\.save.*'path'.*\.safetensors or \.npz"):
        save(tmp_path / "x.bin", {"a": np.zeros(1)})
    with pytest.raises(ValueError, match=r"weights\.save.*'dtype'.*safetensors"):
        save(tmp_path / "x.npz", {"a": np.zeros(1)}, dtype="bfloat16")
    with pytest.raises(TypeError, match=r"weights\.save.*'config'"):
        save(tmp_path / "x.npz", {"a": np.zeros(1)}, config={"d_model": 4})
    with pytest.raises(TypeError, match=r"weights\.save.*'metadata'"):
        save(tmp_path / "x.npz", {"a": np.zeros(1)}, metadata={"n": 3})
    assert not list(tmp_path.iterdir())


@given(st.dictionaries(
    st.text("abcxyz_0123456789", min_size=1, max_size=6),
    st.tuples(st.sampled_from(list(DTYPE_CODES)),
              st.lists(st.integers(0, 3), max_size=3)), min_size=1, max_size=6),
    hs.seeds)
def test_safetensors_write_then_read_round_trips_any_dtype_and_shape(impl, tensors, seed):
    """Names, dtypes, shapes (0-d and empty included) and bits survive; metadata too."""
    import tempfile
    from pathlib import Path
    rng = np.random.default_rng(seed)
    arrays = {name: np.asarray(rng.standard_normal(shape) * 50).astype(dtype)
              for name, (dtype, shape) in tensors.items()}
    meta = {"note": "ünïcode ✓", "n": str(len(arrays))}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "t.safetensors"
        impl("weights.write_safetensors")(path, arrays, meta)
        raw = path.read_bytes()
        got, got_meta = impl("weights.read_safetensors")(path)
    assert got_meta == meta
    assert set(got) == set(arrays)
    for name, a in arrays.items():
        assert got[name].dtype == a.dtype and got[name].shape == a.shape
        assert np.array_equal(got[name], a)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    assert (8 + n) % 8 == 0, "header padded to a multiple of 8 bytes"
    for name, a in arrays.items():
        entry = header[name]
        assert entry["dtype"] == DTYPE_CODES[a.dtype.type] and entry["shape"] == list(a.shape)
        begin, end = entry["data_offsets"]
        assert begin % a.dtype.itemsize == 0, "each tensor aligned to its element size"
        assert raw[8 + n + begin:8 + n + end] == a.astype(a.dtype.newbyteorder("<")).tobytes()


def test_safetensors_reader_reads_a_file_built_by_hand(impl, tmp_path):
    """Little-endian data, a BF16 tensor (1.0 = 0x3F80, -2.5 = 0xC020, 3.140625 = 0x4049),
    a 0-d and an empty tensor, metadata and header padding, in an order of our choosing."""
    f32 = np.array([[1.5, -2.0], [0.25, 8.0]], dtype="<f4").tobytes()
    bf16 = struct.pack("<3H", 0x3F80, 0xC020, 0x4049)
    i64 = struct.pack("<q", -3)
    header = {"__metadata__": {"format": "pt"},
              "b": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
              "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [6, 22]},
              "s": {"dtype": "I64", "shape": [], "data_offsets": [22, 30]},
              "e": {"dtype": "F64", "shape": [0, 4], "data_offsets": [30, 30]}}
    path = tmp_path / "hand.safetensors"
    path.write_bytes(safetensors_bytes(header, bf16 + f32 + i64, pad=5))
    tensors, meta = impl("weights.read_safetensors")(path)
    assert meta == {"format": "pt"}
    assert list(tensors) == ["b", "a", "s", "e"], "the tensors in the order they lie in the file"
    assert np.array_equal(tensors["a"], [[1.5, -2.0], [0.25, 8.0]])
    assert tensors["a"].dtype == np.float32
    assert tensors["b"].dtype == np.float32 and list(tensors["b"]) == [1.0, -2.5, 3.140625]
    assert tensors["s"].shape == () and tensors["s"] == -3
    assert tensors["e"].shape == (0, 4) and tensors["e"].dtype == np.float64
    params, config = impl("weights.load")(path)
    assert config is None and set(params) == {"a", "b", "s", "e"}


# --- bad files ----------------------------------------------------------------------------

def _valid():
    header = {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
              "y": {"dtype": "I8", "shape": [3], "data_offsets": [8, 11]}}
    return header, bytes(range(11))


GARBLED = {
    "header longer than the file": (lambda h, d: safetensors_bytes(h, d, length=10 ** 6),
                                    ["header length", "truncated"]),
    "absurd header length": (lambda h, d: safetensors_bytes(h, d, length=2 ** 62),
                             ["header length", "garbled"]),
    "header not JSON": (lambda h, d: struct.pack("<Q", 5) + b"{abc}" + d, ["not valid JSON"]),
    "header not UTF-8": (lambda h, d: struct.pack("<Q", 3) + b"{\xff}" + d, ["UTF-8"]),
    "header a JSON list": (lambda h, d: safetensors_bytes([1], d), ["JSON object"]),
    "unknown dtype": (lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "dtype": "F8_E4M3"}}, d), ["'x'", "F8_E4M3"]),
    "negative size": (lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "shape": [-2]}}, d), ["'x'", "shape"]),
    "size disagrees with offsets": (lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "shape": [3]}}, d), ["'x'", "needs 12 bytes", "span 8"]),
    "missing field": (lambda h, d: safetensors_bytes(
        {**h, "x": {"dtype": "F32", "shape": [2]}}, d), ["'x'", "data_offsets"]),
    "gap": (lambda h, d: safetensors_bytes(
        {**h, "y": {**h["y"], "data_offsets": [9, 12]}}, d + b"\0"), ["'y'", "gap"]),
    "overlap": (lambda h, d: safetensors_bytes(
        {**h, "y": {**h["y"], "data_offsets": [7, 10]}}, d[:10]), ["'y'", "overlap"]),
    "bytes after the last tensor": (lambda h, d: safetensors_bytes(h, d + b"junk"),
                                    ["15 bytes of data"]),
    "metadata not strings": (lambda h, d: safetensors_bytes(
        {"__metadata__": {"n": 3}, **h}, d), ["__metadata__"]),
    "a name twice": (lambda h, d: struct.pack("<Q", 2 * len(json.dumps(h)) + 1)
                     + (json.dumps(h)[:-1] + ", " + json.dumps(h)[1:]).encode()
                     + d, ["twice"]),
}


# more garbled headers, each reaching one condition of the entry checks (as the reference
# words it; the reference-only test below checks these and GARBLED word for word)
GARBLED_MORE = {
    "shape not a list": lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "shape": 2}}, d),
    "offsets not a list": lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "data_offsets": 8}}, d),
    "three offsets": lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "data_offsets": [0, 8, 8]}}, d),
    "begin after end": lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "data_offsets": [8, 0]}}, d),
    "a negative offset": lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "data_offsets": [-1, 7]}}, d),
    "a shape past int64": lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "shape": [2 ** 40, 2 ** 40]}}, d),
    "a later size that disagrees": lambda h, d: safetensors_bytes(
        {**h, "y": {**h["y"], "shape": [2]}}, d),
    "data cut short": lambda h, d: safetensors_bytes(h, d[:10]),
    "a shape of true": lambda h, d: safetensors_bytes(
        {**h, "x": {**h["x"], "shape": [True, 2]}}, d),
    "a long JSON list": lambda h, d: safetensors_bytes(["a" * 30], d),
    "one tensor inside another": lambda h, d: safetensors_bytes(
        {"x": {"dtype": "I8", "shape": [11], "data_offsets": [0, 11]},
         "y": {"dtype": "I8", "shape": [3], "data_offsets": [4, 7]}}, d),
}

#: the reference's whole message for each garbled file, after "weights.read_safetensors:
#: argument 'path' (PATH) is not a valid safetensors file: "
GARBLED_WORDS = {
    "header longer than the file": "the header length field says 1000000 bytes but only "
                                   "{rest} follow (truncated?)",
    "absurd header length": "the header length field says 4611686018427387904 bytes, more "
                            "than the 100000000 allowed (garbled?)",
    "header not JSON": "the header is not valid JSON (Expecting property name enclosed in "
                       "double quotes: line 1 column 2 (char 1))",
    "header a JSON list": "the header must be a JSON object starting with '{{', got '[1]'",
    "shape not a list": "tensor 'x' has shape 2; expected a list of integers >= 0",
    "offsets not a list": "tensor 'x' has data_offsets 8; expected [begin, end] with "
                          "0 <= begin <= end",
    "three offsets": "tensor 'x' has data_offsets [0, 8, 8]; expected [begin, end] with "
                     "0 <= begin <= end",
    "begin after end": "tensor 'x' has data_offsets [8, 0]; expected [begin, end] with "
                       "0 <= begin <= end",
    "a negative offset": "tensor 'x' has data_offsets [-1, 7]; expected [begin, end] with "
                         "0 <= begin <= end",
    "a shape past int64": "tensor 'x' of dtype F32 and shape [1099511627776, 1099511627776] "
                          "needs 4835703278458516698824704 bytes, but its data_offsets "
                          "[0, 8] span 8",
    "negative size": "tensor 'x' has shape [-2]; expected a list of integers >= 0",
    "a shape of true": "tensor 'x' has shape [True, 2]; expected a list of integers >= 0",
    "a long JSON list": "the header must be a JSON object starting with '{{', got "
                        "'[\"aaaaaaaaaaaaaaaaaa'",
    "a later size that disagrees": "tensor 'y' of dtype I8 and shape [2] needs 2 bytes, but "
                                   "its data_offsets [8, 11] span 3",
    "data cut short": "tensor 'y' ends at data byte 11, but the file holds only 10 bytes of "
                      "data (truncated?)",
    "gap": "tensor 'y' starts at data byte 9, but the previous tensors end at 8 (a gap)",
    "overlap": "tensor 'y' starts at data byte 7, but the previous tensors end at 8 "
               "(an overlap)",
    "one tensor inside another": "tensor 'y' starts at data byte 4, but the previous tensors "
                                 "end at 11 (an overlap)",
    "bytes after the last tensor": "the tensors end at data byte 11, but the file has 15 "
                                   "bytes of data",
}


@pytest.mark.reference_only
@pytest.mark.parametrize("case", sorted(GARBLED_WORDS))
def test_garbled_safetensors_files_are_refused_word_for_word(impl, tmp_path, case):
    header, data = _valid()
    make = GARBLED_MORE.get(case) or GARBLED[case][0]
    path = tmp_path / "bad.safetensors"
    raw = make(header, data)
    path.write_bytes(raw)
    with pytest.raises(ValueError) as info:
        impl("weights.read_safetensors")(path)
    expected = GARBLED_WORDS[case].format(rest=len(raw) - 8)
    assert str(info.value) == (f"weights.read_safetensors: argument 'path' ({path}) is not a "
                               f"valid safetensors file: {expected}")


@pytest.mark.parametrize("case", GARBLED)
def test_garbled_safetensors_files_are_rejected_with_the_reason(impl, tmp_path, case):
    header, data = _valid()
    make, parts = GARBLED[case]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(make(header, data))
    for fn in ("weights.read_safetensors", "weights.load"):
        with pytest.raises(ValueError) as info:
            impl(fn)(path)
        for part in [f"{fn}: ", "'path'", "not a valid safetensors file", *parts]:
            assert part in str(info.value), (part, str(info.value))


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_truncation_of_a_file_is_rejected(impl, tmp_path, fmt):
    """A file cut anywhere (every length up to 64 bytes, then every 7th for safetensors;
    spread cuts for .npz) raises ValueError naming the function and the argument, never
    returns fewer tensors."""
    config = GPTConfig(vocab_size=3, context_len=2, d_model=2, n_heads=1, n_layers=1)
    path = tmp_path / f"m.{fmt}"
    impl("weights.save")(path, hp.random_gpt(config, np.random.default_rng(0)), config)
    raw = path.read_bytes()
    cuts = [*range(64), *range(64, len(raw), 7)] if fmt == "safetensors" \
        else range(0, len(raw), 37)
    cut = tmp_path / f"cut.{fmt}"
    for n in cuts:
        cut.write_bytes(raw[:n])
        with pytest.raises(ValueError, match=r"weights\.load: argument 'path' .* not a valid"):
            impl("weights.load")(cut)


def test_npz_that_is_not_an_archive_is_rejected(impl, tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    for name in ("one.npz", "junk.npz"):
        with pytest.raises(ValueError, match=r"weights\.load: argument 'path' .* \.npz"):
            impl("weights.load")(tmp_path / name)


def test_stored_config_is_validated(impl, tmp_path):
    header = {"__metadata__": {"config": json.dumps({"d_model": 4, "colour": "red"})},
              "x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}
    path = tmp_path / "c.safetensors"
    path.write_bytes(safetensors_bytes(header, b"\0" * 4))
    with pytest.raises(ValueError, match=r"weights\.load: the config stored in .*'colour'"):
        impl("weights.load")(path)


def test_missing_file_raises_file_not_found(impl, tmp_path):
    for name in ("none.safetensors", "none.npz"):
        with pytest.raises(FileNotFoundError):
            impl("weights.load")(tmp_path / name)


# --- params.unflatten ---------------------------------------------------------------------

@pytest.mark.parametrize("name", CONFIGS)
def test_unflatten_inverts_flatten(impl, name):
    tree = hp.random_gpt(CONFIGS[name], np.random.default_rng(0))
    flat = impl("params.flatten")(tree)
    back = impl("params.unflatten")(flat)
    assert_same_tree(back, tree)
    assert all(back_leaf is leaf for back_leaf, leaf in
               zip(flatten(back).values(), flatten(tree).values(), strict=True))


def test_unflatten_rejects_names_that_form_no_tree(impl):
    for flat, part in [({"a": np.zeros(1), "a.b": np.zeros(1)}, "both as a leaf"),
                       ({"a.b": np.zeros(1), "a": np.zeros(1)}, "both as a leaf"),
                       ({"a..b": np.zeros(1)}, "empty part")]:
        with pytest.raises(ValueError, match=part):
            impl("params.unflatten")(flat)


# --- the writer's choices, read back byte by byte -------------------------------------------

def _header(raw: bytes) -> dict:
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n])


def test_safetensors_layout_is_largest_element_first_then_by_name(impl, tmp_path):
    """The data part holds the tensors in the order (element size descending, name), each
    right after the one before; no ``__metadata__`` entry when there is none to store."""
    arrays = {"b8": np.zeros(3, np.int8), "a8": np.zeros(2, np.uint8), "z64": np.zeros(1),
              "c16": np.zeros(2, np.float16), "a64": np.zeros(2, np.int64),
              "m32": np.zeros((1, 2), np.float32)}
    path = impl("weights.write_safetensors")(tmp_path / "o.safetensors", arrays)
    header = _header(path.read_bytes())
    assert "__metadata__" not in header
    names = [k for k, _ in sorted(header.items(), key=lambda e: e[1]["data_offsets"])]
    assert names == ["a64", "z64", "m32", "c16", "a8", "b8"]
    end = 0
    for name in names:
        assert header[name]["data_offsets"] == [end, end + arrays[name].nbytes]
        end += arrays[name].nbytes
    empty_meta = impl("weights.write_safetensors")(tmp_path / "e.safetensors", arrays, {})
    assert "__metadata__" not in _header(empty_meta.read_bytes())


def test_save_stores_metadata_and_the_config_and_casts_for_bfloat16_only_floats(impl,
                                                                                 tmp_path):
    config = CONFIGS["tied"]
    tree = {"w": np.array([1.0, 1 + 2 ** -9, 3.0]), "n": np.array([1, 2], np.int32)}
    path = impl("weights.save")(tmp_path / "m.safetensors", tree, config,
                                metadata={"who": "me"}, dtype="bfloat16")
    tensors, meta = impl("weights.read_safetensors")(path)
    assert meta == {"who": "me", "config": impl("weights.config_to_json")(config)}
    assert tensors["w"].dtype == np.float32 and tensors["w"].tolist() == [1.0, 1.0, 3.0]
    assert tensors["n"].dtype == np.int32
    assert _header(path.read_bytes())["w"]["dtype"] == "BF16"
    plain = impl("weights.save")(tmp_path / "p.safetensors", tree, dtype="float32")
    assert _header(plain.read_bytes())["w"]["dtype"] == "F32"
    assert _header(plain.read_bytes())["n"]["dtype"] == "I32"
    assert impl("weights.read_safetensors")(plain)[1] == {}


def test_format_argument_overrides_the_suffix(impl, tmp_path):
    tree = {"w": np.arange(3.0)}
    for fmt in FORMATS:
        path = impl("weights.save")(tmp_path / f"weights-{fmt}.bin", tree, format=fmt)
        loaded, _ = impl("weights.load")(path, format=fmt)
        assert np.array_equal(loaded["w"], tree["w"])
    with pytest.raises(ValueError, match=r"weights\.load: .*'path'.*not a valid safetensors"):
        impl("weights.load")(tmp_path / "weights-npz.bin", format="safetensors")
    with pytest.raises(ValueError, match=r"weights\.save: argument 'format'.*got 'zip'"):
        impl("weights.save")(tmp_path / "x.npz", tree, format="zip")


def test_bfloat16_bits_of_nan_and_back(impl):
    """NaN becomes PyTorch's quiet NaN pattern 0x7FC0; every bit pattern widens to the float32
    with those top 16 bits, exactly (torch's own widening)."""
    to_bits, from_bits = impl("weights.to_bfloat16_bits"), impl("weights.from_bfloat16_bits")
    x = np.array([[np.nan, 1.0], [-np.nan, 2.0 ** -133]], dtype=np.float64)
    bits = to_bits(x)
    want = torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).view(torch.int16)
    assert bits.dtype == np.uint16 and bits.shape == (2, 2)
    assert np.array_equal(bits[~np.isnan(x)], want.numpy().view(np.uint16)[~np.isnan(x)])
    assert bits[0, 0] == 0x7FC0
    every = np.arange(2 ** 16, dtype=np.uint16)
    wide = from_bits(every)
    torch_wide = torch.from_numpy(every.view(np.int16)).view(torch.bfloat16).float().numpy()
    assert wide.dtype == np.float32
    assert np.array_equal(wide.view(np.uint32), torch_wide.view(np.uint32))


def test_config_json_round_trip_and_refusals(impl):
    config = CONFIGS["untied, relu, d_ff 5"]
    text = impl("weights.config_to_json")(config)
    assert json.loads(text) == {f: getattr(config, f) for f in json.loads(text)}
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert impl("weights.config_from_json")(text) == config
    assert impl("weights.config_from_json")(
        '{"vocab_size": 5, "context_len": 3, "d_model": 4, "n_heads": 2, "n_layers": 1}') == \
        GPTConfig(vocab_size=5, context_len=3, d_model=4, n_heads=2, n_layers=1)
    for bad, exc, parts in [(3, TypeError, ["'text'", "str of JSON", "int"]),
                            ("{", ValueError, ["'text'", "not valid JSON"]),
                            ("[1]", ValueError, ["'text'", "JSON object", "list"]),
                            ('{"d_model": 4, "hue": 1}', ValueError,
                             ["'text'", "['hue']", "GPTConfig lacks"]),
                            ('{"vocab_size": 5, "context_len": 3, "d_model": 5, '
                             '"n_heads": 2, "n_layers": 1}', ValueError,
                             ["'text'", "not a valid GPTConfig"])]:
        with pytest.raises(exc) as info:
            impl("weights.config_from_json")(bad)
        for part in ["weights.config_from_json: ", *parts]:
            assert part in str(info.value), (part, str(info.value))


WRITE_BAD = {
    "tensors not a dict": (([("w", np.zeros(1))],), {}, TypeError, ["'tensors'", "list"]),
    "a name not a str": (({1: np.zeros(1)},), {}, TypeError, ["'tensors'", "name 1"]),
    "an empty name": (({"": np.zeros(1)},), {}, ValueError, ["'tensors'", "name ''"]),
    "the metadata key as a name": (({"__metadata__": np.zeros(1)},), {}, ValueError,
                                   ["'tensors'", "'__metadata__'"]),
    "a value not an array": (({"w": [1.0]},), {}, TypeError, ["tensors['w']", "list"]),
    "a complex array": (({"w": np.zeros(1, complex)},), {}, TypeError,
                        ["tensors['w']", "complex128"]),
    "bfloat16 not a bool": (({"w": np.zeros(1)},), {"bfloat16": 1}, TypeError,
                            ["'bfloat16'", "bool", "1"]),
    "overwrite not a bool": (({"w": np.zeros(1)},), {"overwrite": "yes"}, TypeError,
                             ["'overwrite'", "bool", "'yes'"]),
    "metadata of numbers": (({"w": np.zeros(1)}, {"n": 1}), {}, TypeError,
                            ["'metadata'", "str to str"]),
    "metadata not a dict": (({"w": np.zeros(1)}, [("n", "1")]), {}, TypeError,
                            ["'metadata'", "str to str"]),
}


@pytest.mark.parametrize("case", WRITE_BAD)
def test_write_safetensors_refuses_what_it_cannot_store(impl, tmp_path, case):
    args, kwargs, exc, parts = WRITE_BAD[case]
    with pytest.raises(exc) as info:
        impl("weights.write_safetensors")(tmp_path / "w.safetensors", *args, **kwargs)
    for part in ["weights.write_safetensors: ", *parts]:
        assert part in str(info.value), (part, str(info.value))
    assert not list(tmp_path.iterdir())


def test_save_and_load_refusals_name_the_argument(impl, tmp_path):
    save, load = impl("weights.save"), impl("weights.load")
    cases = [(lambda: save(3, {"w": np.zeros(1)}), TypeError, ["weights.save: ", "'path'",
                                                               "int"]),
             (lambda: save(tmp_path / "x.npz", {"w": np.zeros(1)}, dtype="int8"), ValueError,
              ["weights.save: ", "'dtype'", "'int8'"]),
             (lambda: save(tmp_path / "x.npz", {1: np.zeros(1)}), TypeError,
              ["weights.save: ", "'params'", "key 1"]),
             (lambda: save(tmp_path / "x.npz", {"a": {"": np.zeros(1)}}), ValueError,
              ["weights.save: ", "params['a']", "key ''"]),
             (lambda: save(tmp_path / "x.npz", {"a": ({"b": 3},)}), TypeError,
              ["weights.save: ", "params['a.0.b']", "int"]),
             (lambda: save(tmp_path, {"w": np.zeros(1)}, format="npz", overwrite=True),
              IsADirectoryError, ["weights.save: ", "'path'", "directory"]),
             (lambda: load(tmp_path / "none.npz"), FileNotFoundError,
              ["weights.load: ", "'path'", "none.npz"]),
             (lambda: load(b"x.npz"), TypeError, ["weights.load: ", "'path'", "bytes"]),
             (lambda: impl("weights.read_safetensors")(tmp_path / "none.safetensors"),
              FileNotFoundError, ["none.safetensors"])]
    for call, exc, parts in cases:
        with pytest.raises(exc) as info:
            call()
        for part in parts:
            assert part in str(info.value), (part, str(info.value))
    assert not [p for p in tmp_path.iterdir()]


def test_load_refuses_names_that_form_no_tree(impl, tmp_path):
    path = impl("weights.write_safetensors")(tmp_path / "t.safetensors",
                                             {"a": np.zeros(1), "a.b": np.zeros(1)})
    with pytest.raises(ValueError) as info:
        impl("weights.load")(path)
    assert str(info.value).startswith("weights.load: argument 'path'")
    assert "do not form a tree" in str(info.value)


def test_npz_metadata_and_dtypes_are_checked(impl, tmp_path):
    """An .npz whose metadata entry is not JSON text of strings, or whose arrays are not of a
    parameter's dtype, is refused naming the entry."""
    bad = {"not JSON": {"__metadata__": np.array("{oops"), "w": np.zeros(1)},
           "numbers": {"__metadata__": np.array('{"n": 1}'), "w": np.zeros(1)},
           "a list": {"__metadata__": np.array("[1]"), "w": np.zeros(1)},
           "not text": {"__metadata__": np.array(3), "w": np.zeros(1)},
           "complex": {"w": np.zeros(1, complex)}}
    for name, arrays in bad.items():
        path = tmp_path / f"{name}.npz"
        np.savez(path, **arrays)
        with pytest.raises(ValueError) as info:
            impl("weights.load")(path)
        message = str(info.value)
        assert message.startswith("weights.load: argument 'path'") and ".npz" in message
        assert ("'w'" if name == "complex" else "__metadata__") in message, message
    np.savez(tmp_path / "plain.npz", w=np.arange(3.0))
    loaded, config = impl("weights.load")(tmp_path / "plain.npz")
    assert config is None and np.array_equal(loaded["w"], np.arange(3.0))


def test_safetensors_files_are_byte_for_byte_what_the_safetensors_library_writes(impl,
                                                                                tmp_path):
    """The same tensors and metadata written by ``write_safetensors`` and by the
    ``safetensors`` library give the same bytes: the compact JSON header (UTF-8, no ASCII
    escapes), its padding, the order of the tensors and their little-endian data, a
    big-endian input array included."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a": np.arange(3.0),
              "c": np.array([1, -2], dtype=np.int16), "ü": np.ones(2, np.float32),
              "big": np.arange(4, dtype=">f8")}
    meta = {"note": "ünï ✓"}       # one key: the library orders several as a hash map does
    safetensors_numpy.save_file({k: v.astype(v.dtype.newbyteorder("<")) for k, v in
                                 arrays.items()}, str(tmp_path / "theirs.safetensors"),
                                metadata=meta)
    impl("weights.write_safetensors")(tmp_path / "ours.safetensors", arrays, meta)
    assert (tmp_path / "ours.safetensors").read_bytes() == \
        (tmp_path / "theirs.safetensors").read_bytes()


@pytest.mark.reference_only
def test_file_refusals_word_for_word(impl, tmp_path):
    """The readers' and the bit converters' refusals, each as the reference words it: a file
    of only the 8 length bytes, a header length at the limit and one past 2**63, a file
    without a known suffix, an .npz holding one array or cut short, names that form no
    tree, and the bfloat16 converters given the wrong dtype or a list."""
    def refused(call, error=ValueError):
        with pytest.raises(error) as info:
            call()
        return str(info.value)

    def file(name, raw):
        (tmp_path / name).write_bytes(raw)
        return tmp_path / name

    read, load = impl("weights.read_safetensors"), impl("weights.load")
    bad = "weights.read_safetensors: argument 'path' ({}) is not a valid safetensors file: "
    eight = file("eight.safetensors", struct.pack("<Q", 0))
    assert refused(lambda: read(eight)) == bad.format(eight) + (
        "the header must be a JSON object starting with '{', got ''")
    at_limit = file("limit.safetensors", struct.pack("<Q", 100_000_000) + b"{}")
    assert refused(lambda: read(at_limit)) == bad.format(at_limit) + (
        "the header length field says 100000000 bytes but only 2 follow (truncated?)")
    past = file("past.safetensors", struct.pack("<Q", 2 ** 63 + 5) + b"{}")
    assert refused(lambda: read(past)) == bad.format(past) + (
        "the header length field says 9223372036854775813 bytes, more than the 100000000 "
        "allowed (garbled?)")
    unknown = file("model.bin", b"x")
    assert refused(lambda: load(unknown)) == (
        f"weights.load: argument 'path' must end in .safetensors or .npz, or argument "
        f"'format' must say which, got {str(unknown)!r}")
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, np.zeros(2))
    assert refused(lambda: load(single)) == (
        f"weights.load: argument 'path' ({single}) is not a valid .npz file: it holds a single "
        f"array, not an archive of named arrays")
    np.savez(tmp_path / "cut.npz", a=np.zeros(3))
    cut = file("cut.npz", (tmp_path / "cut.npz").read_bytes()[:40])
    assert refused(lambda: load(cut)) == (
        f"weights.load: argument 'path' ({cut}) is not a valid .npz file: BadZipFile: File is "
        f"not a zip file (truncated or garbled?)")
    no_tree = tmp_path / "no_tree.safetensors"
    impl("weights.write_safetensors")(no_tree, {"a": np.zeros(1), "a.b": np.zeros(1)})
    assert refused(lambda: load(no_tree)) == (
        f"weights.load: argument 'path' ({no_tree}) holds tensor names that do not form a "
        f"tree: has 'a' both as a leaf and as a branch (in 'a.b')")
    short = file("short.safetensors", b"abc")
    assert refused(lambda: read(short)) == bad.format(short) + (
        "it has 3 bytes, fewer than the 8 of the header length (truncated?)")
    assert refused(lambda: impl("weights.save")(tmp_path / "n.npz", 5), TypeError) == (
        "weights.save: argument 'params' must be a dict, a list or a NumPy array, got int")
    nowhere = tmp_path / "nope" / "m.npz"
    assert refused(lambda: impl("weights.save")(nowhere, {"w": np.zeros(2)}),
                   FileNotFoundError) == (
        f"weights.save: argument 'path' ({nowhere}) is in a folder that does not exist "
        f"({nowhere.parent})")
    assert refused(lambda: impl("weights.save")(tmp_path / "c.npz", {"w": np.zeros(2)},
                                                config="x"), TypeError) == (
        "weights.save: argument 'config' must be a GPTConfig or None, got str")
    assert refused(lambda: impl("weights.config_to_json")("x"), TypeError) == (
        "weights.config_to_json: argument 'config' must be a GPTConfig, got str")
    assert refused(lambda: impl("weights.config_from_json")("{bad")) == (
        "weights.config_from_json: argument 'text' is not valid JSON: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)")
    twice = tmp_path / "twice.safetensors"
    impl("weights.write_safetensors")(twice, {"w": np.zeros(2)})
    assert refused(lambda: impl("weights.write_safetensors")(twice, {"w": np.zeros(2)}),
                   FileExistsError).startswith(
        "weights.write_safetensors: argument 'path' names an existing file")
    to_bits, from_bits = impl("weights.to_bfloat16_bits"), impl("weights.from_bfloat16_bits")
    assert refused(lambda: from_bits(np.zeros(2)), TypeError) == (
        "weights.from_bfloat16_bits: argument 'bits' must have dtype uint16, got dtype float64")
    assert refused(lambda: from_bits([1, 2]), TypeError) == (
        "weights.from_bfloat16_bits: argument 'bits' must be a NumPy array of dtype uint16, "
        "got list")
    assert refused(lambda: to_bits(np.zeros(2, np.uint16)), TypeError) == (
        "weights.to_bfloat16_bits: argument 'x' must have a floating-point dtype, got dtype "
        "uint16")
    assert refused(lambda: to_bits([1.0]), TypeError) == (
        "weights.to_bfloat16_bits: argument 'x' must be a NumPy array of a floating-point "
        "dtype, got list")


def test_bfloat16_bits_of_nans_with_a_payload_are_the_quiet_nan(impl):
    """A NaN whose payload sits in the low bits (float32 0x7F800001, 0xFF800001) would round
    to an infinity; it becomes bfloat16's quiet NaN 0x7FC0, as torch's cast gives."""
    nans = np.array([0x7F800001, 0xFF800001, 0x7FC00000], dtype=np.uint32).view(np.float32)
    assert impl("weights.to_bfloat16_bits")(nans).tolist() == [0x7FC0] * 3


def test_a_bfloat16_matrix_reads_back_as_a_matrix(impl, tmp_path):
    """A 2-D tensor saved as bfloat16 reads back with its shape (and the rounded values)."""
    x = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    impl("weights.write_safetensors")(tmp_path / "m.safetensors", {"m": x}, bfloat16=True)
    tensors, _ = impl("weights.read_safetensors")(tmp_path / "m.safetensors")
    assert tensors["m"].shape == (2, 3) and np.array_equal(tensors["m"], x)
    assert b'"dtype":"BF16"' in (tmp_path / "m.safetensors").read_bytes()


def test_an_empty_tensor_is_read_in_file_order(impl, tmp_path):
    """An empty tensor lying where another ends comes after it, whatever order the header
    lists them in (file order is the order of the offsets, begin then end)."""
    header = {"e": {"dtype": "F64", "shape": [0], "data_offsets": [8, 8]},
              "x": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}}
    (tmp_path / "e.safetensors").write_bytes(safetensors_bytes(header, struct.pack("<d", 2.5)))
    tensors, _ = impl("weights.read_safetensors")(tmp_path / "e.safetensors")
    assert list(tensors) == ["x", "e"]
