r"""Save and load a GPT's parameter tree and its configuration: NumPy's ``.npz`` and the
safetensors format, read and written here with NumPy and the standard library alone.

A parameter tree is stored flat, one tensor per leaf, under the dotted names of
:func:`llmref.params.flatten` (``blocks.0.attn.qkv.W``); loading rebuilds the tree
(``blocks`` becomes a list again).  The ``GPTConfig`` travels with the
weights as JSON text under the key ``"config"`` of the file's metadata.

A safetensors file is three parts, one after the other:

1. ``N``, the length of the header in bytes: an unsigned 64-bit little-endian integer;
2. the header, ``N`` bytes of UTF-8 JSON (padded with spaces): one entry per tensor,
   ``{"dtype": "F32", "shape": [3, 4], "data_offsets": [begin, end]}``, and optionally
   ``"__metadata__"``, a map of strings to strings;
3. the data: every tensor's elements in row-major order and little-endian byte order, at
   bytes ``[begin, end)`` counted from the end of the header.  The tensors fill the data part
   exactly, without gaps or overlaps, so ``end - begin`` is the number of elements times the
   element size, and the file is

$$
\text{size} = 8 + N + \max_i \text{end}_i .
$$

Element types: ``F64``, ``F32``, ``F16``, ``BF16``, ``I64``, ``I32``, ``I16``, ``I8``,
``U64``, ``U32``, ``U16``, ``U8`` and ``BOOL``.  NumPy has no bfloat16, so ``BF16`` is read
into float32: a bfloat16 number is the top 16 bits of a float32, so shifting its bits left by
16 gives that float32 exactly.  Writing bfloat16 rounds float32 to the nearest bfloat16 (ties
to even).  ``.npz`` keeps NumPy's own dtypes and has no bfloat16.

Writers never replace an existing file unless asked to (``overwrite=True``), and write to a
temporary file first, so a failed save leaves no half-written file behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from llmref._contract import contract
from llmref.params import flatten, unflatten
from llmref.transformer.gpt import GPTConfig

#: safetensors' element types and the little-endian NumPy dtype each is stored as
#: (``BF16`` is read as raw 16-bit words, then widened to float32)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
          "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1",
          "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in DTYPES.items() if k != "BF16"}

#: the largest header accepted; real headers are kilobytes, and a garbled length field
#: must not make the reader allocate gigabytes
MAX_HEADER = 100_000_000

METADATA_KEY = "__metadata__"
CONFIG_KEY = "config"
FORMATS = ("safetensors", "npz")
SAVE_DTYPES = ("float64", "float32", "float16", "bfloat16")


def _scratch(name: str) -> Path:
    """A file in the temporary folder, one per process and name, for the input contracts'
    examples (which write and read real files)."""
    return Path(tempfile.gettempdir()) / f"llmref-contract-{os.getpid()}-{name}"


def _example_saved(rng, name: str) -> Path:
    """An example file, written fresh."""
    return save(_scratch(name), {"w": rng.standard_normal((2, 3))}, overwrite=True)


@contract(example=lambda rng: {"path": str(_scratch("save.safetensors")),
                               "params": {"w": rng.standard_normal((2, 3))},
                               "overwrite": True},
          lenient={"params": ("extra_key", "list")})        # any tree of arrays is saved
def save(path, params, config: GPTConfig | None = None, *, format: str | None = None,
         dtype: str | None = None, metadata: dict | None = None,
         overwrite: bool = False) -> Path:
    """Write a parameter tree and its configuration to a ``.safetensors`` or ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.  Its suffix (``.safetensors`` or ``.npz``) chooses the format
        unless ``format`` is given.
    params : dict
        The parameter tree (nested dicts and lists whose leaves are NumPy arrays), for
        example from :func:`llmref.transformer.gpt.init`.  Dict keys must be non-empty strings
        without dots.  Not modified.
    config : GPTConfig, default None
        Stored as JSON under the metadata key ``"config"``.
    format : {"safetensors", "npz"}, default None
        Overrides the suffix.
    dtype : {"float64", "float32", "float16", "bfloat16"}, default None
        Cast every floating-point leaf to this type first (``None``: keep each leaf's own).
        ``"bfloat16"`` rounds to nearest, ties to even, and needs the safetensors format.
    metadata : dict of str to str, default None
        More metadata to store beside the configuration.
    overwrite : bool, default False
        Replace an existing file (default: refuse).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    TypeError
        If a leaf is not a NumPy array of a supported dtype, a key is not a string, the
        config is not a GPTConfig, or the metadata is not a map of strings to strings.
    ValueError
        If the format cannot be told from the suffix, a key is empty or holds a dot, or the
        dtype is unknown (or bfloat16 for ``.npz``).
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        If the folder ``path`` names does not exist.
    """
    where = "weights.save"
    path = _path(where, path)
    fmt = _format(where, path, format)
    if dtype is not None and dtype not in SAVE_DTYPES:
        raise ValueError(f"{where}: argument 'dtype' must be one of {SAVE_DTYPES} or None, "
                         f"got {dtype!r}")
    if dtype == "bfloat16" and fmt == "npz":
        raise ValueError(f"{where}: argument 'dtype' 'bfloat16' needs the safetensors format "
                         f"(NumPy has no bfloat16 type to put in an .npz file)")
    if config is not None and not isinstance(config, GPTConfig):
        raise TypeError(f"{where}: argument 'config' must be a GPTConfig or None, "
                        f"got {type(config).__name__}")
    meta = dict(_metadata(where, metadata))
    if config is not None:
        meta[CONFIG_KEY] = config_to_json(config)
    _check_tree(where, params)
    tensors = flatten(params)
    if not tensors:
        raise ValueError(f"{where}: argument 'params' holds no arrays to save")
    if dtype is not None and dtype != "bfloat16":
        tensors = {k: v.astype(dtype) if v.dtype.kind == "f" else v for k, v in tensors.items()}
    if fmt == "safetensors":
        _write_safetensors(where, path, tensors, meta, dtype == "bfloat16", overwrite)
    else:
        _write_npz(where, path, tensors, meta, overwrite)
    return path


@contract(example=lambda rng: {"path": str(_example_saved(rng, "load.npz"))})
def load(path, *, format: str | None = None):
    """Read a parameter tree and its configuration written by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` or ``.npz`` file (the suffix chooses the reader unless ``format``
        is given).  A safetensors file written by another program loads too: its tensor names
        become the tree (``h.0.attn.c_attn.weight`` -> ``tree["h"][0]["attn"]...``).
    format : {"safetensors", "npz"}, default None
        Overrides the suffix.

    Returns
    -------
    params : dict or list
        The parameter tree, fresh writable arrays (``BF16`` tensors as float32).
    config : GPTConfig or None
        The stored configuration, or ``None`` if the file has none.

    Raises
    ------
    ValueError
        If the file is truncated or garbled, or its stored configuration is not a valid
        GPTConfig.
    FileNotFoundError
        If there is no file at ``path``.
    """
    where = "weights.load"
    path = _path(where, path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{where}: argument 'path' names no file: {str(path)!r} "
                                f"(from {os.getcwd()!r})")
    fmt = _format(where, path, format)
    if fmt == "safetensors":
        tensors, meta = _read_safetensors(where, path)
    else:
        tensors, meta = _read_npz(where, path)
    config = None
    if CONFIG_KEY in meta:
        config = _config_from_json(where, meta[CONFIG_KEY], f"the config stored in {path}")
    try:
        params = unflatten(tensors, where)
    except ValueError as exc:
        detail = str(exc).removeprefix(f"{where}: argument 'flat' ")
        raise ValueError(f"{where}: argument 'path' ({path}) holds tensor names that do not "
                         f"form a tree: {detail}") from None
    return params, config


@contract(example=lambda rng: {"config": GPTConfig(vocab_size=5, context_len=3, d_model=4,
                                                   n_heads=2, n_layers=1)})
def config_to_json(config: GPTConfig) -> str:
    """The configuration as JSON text (every field, keys sorted).

    Parameters
    ----------
    config : GPTConfig

    Returns
    -------
    str

    Raises
    ------
    TypeError
        If `config` is not a GPTConfig.
    """
    if not isinstance(config, GPTConfig):
        raise TypeError(f"weights.config_to_json: argument 'config' must be a GPTConfig, got "
                        f"{type(config).__name__}")
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


@contract(example=lambda rng: {"text": '{"vocab_size": 5, "context_len": 3, "d_model": 4, '
                                       '"n_heads": 2, "n_layers": 1}'})
def config_from_json(text: str) -> GPTConfig:
    """The inverse of :func:`config_to_json`; fields the text leaves out take their defaults.

    Parameters
    ----------
    text : str
        JSON object of GPTConfig fields.

    Returns
    -------
    GPTConfig

    Raises
    ------
    TypeError
        If ``text`` is not a string.
    ValueError
        If the text is not a JSON object, names a field GPTConfig lacks, or GPTConfig
        rejects a value.
    """
    return _config_from_json("weights.config_from_json", text, "argument 'text'")


def _config_from_json(where: str, text, source: str) -> GPTConfig:
    if not isinstance(text, str):
        raise TypeError(f"{where}: {source} must be a str of JSON, got {type(text).__name__}")
    try:
        fields = json.loads(text)
    except (TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{where}: {source} is not valid JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise ValueError(f"{where}: {source} must be a JSON object of GPTConfig fields, "
                         f"got {type(fields).__name__}")
    known = {f.name for f in dataclasses.fields(GPTConfig)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{where}: {source} has field(s) {unknown} that GPTConfig lacks; "
                         f"known fields {sorted(known)}")
    try:
        return GPTConfig(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {source} is not a valid GPTConfig: {exc}") from None


@contract(example=lambda rng: {"path": str(_scratch("write.safetensors")),
                               "tensors": {"w": rng.standard_normal((2, 3)),
                                           "n": np.arange(4)},
                               "metadata": {"note": "example"}, "bfloat16": False,
                               "overwrite": True},
          lenient={"tensors": ("missing_key", "extra_key"),       # any named arrays
                   "metadata": ("missing_key", "extra_key", "none")})
def write_safetensors(path, tensors: dict, metadata: dict | None = None, *,
                      bfloat16: bool = False, overwrite: bool = False) -> Path:
    """Write named arrays to a safetensors file.

    Tensors are laid out largest element first, then by name, after a header padded with
    spaces to a multiple of 8 bytes, so every tensor starts at a multiple of its element
    size (a reader can map the file and view it in place).

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    tensors : dict of str to numpy.ndarray
        Names to arrays of a dtype in ``DTYPES`` (any byte order, any memory layout).
        Not modified.
    metadata : dict of str to str, default None
        Stored under ``"__metadata__"``.
    bfloat16 : bool, default False
        Store the floating-point arrays as ``BF16``, rounded from float32 to nearest, ties to
        even (float64 arrays are rounded to float32 first).
    overwrite : bool, default False
        Replace an existing file (default: refuse).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        If a name is not a string, a value is not an array of a supported dtype, or the
        metadata is not a map of strings to strings.
    ValueError
        If a name is empty or ``"__metadata__"``.
    FileExistsError
        If ``path`` exists and ``overwrite`` is false.
    FileNotFoundError
        If the folder ``path`` names does not exist.
    """
    where = "weights.write_safetensors"
    path = _path(where, path)
    if not isinstance(bfloat16, bool):
        raise TypeError(f"{where}: argument 'bfloat16' must be a bool, got {bfloat16!r}")
    return _write_safetensors(where, path, tensors, _metadata(where, metadata), bfloat16,
                              overwrite)


def _write_safetensors(where, path, tensors, meta, bfloat16, overwrite) -> Path:
    if not isinstance(tensors, dict):
        raise TypeError(f"{where}: argument 'tensors' must be a dict of names to NumPy arrays, "
                        f"got {type(tensors).__name__}")
    stored = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or not name or name == METADATA_KEY:
            raise (TypeError if not isinstance(name, str) else ValueError)(
                f"{where}: argument 'tensors' has the name {name!r}; names must be non-empty "
                f"strings other than {METADATA_KEY!r}")
        code = _code(where, f"tensors[{name!r}]", array)
        if bfloat16 and array.dtype.kind == "f":
            code, array = "BF16", to_bfloat16_bits(array)
        stored[name] = (code, np.asarray(array, dtype=np.dtype(DTYPES[code]), order="C"))
    order = sorted(stored, key=lambda n: (-stored[n][1].dtype.itemsize, n))
    header, offset = {}, 0
    if meta:
        header[METADATA_KEY] = meta
    for name in order:
        code, array = stored[name]
        header[name] = {"dtype": code, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)

    def write(f):
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(stored[name][1].tobytes())

    _write_file(where, path, write, overwrite)
    return path


@contract(example=lambda rng: {"path": str(_example_saved(rng, "read.safetensors"))})
def read_safetensors(path):
    """Read every tensor and the metadata of a safetensors file, checking its structure.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read.

    Returns
    -------
    tensors : dict of str to numpy.ndarray
        Fresh writable arrays in native byte order, in the order they lie in the file;
        ``BF16`` tensors as float32.
    metadata : dict of str to str
        The ``"__metadata__"`` entry (empty if the file has none).

    Raises
    ------
    ValueError
        If the file is shorter than its header says (truncated), the header is not the JSON
        the format prescribes, an entry's byte range does not match its dtype and shape, the
        byte ranges leave gaps or overlap, or the file has bytes after the last tensor.
    FileNotFoundError
        If there is no file at ``path``.
    """
    where = "weights.read_safetensors"
    return _read_safetensors(where, _path(where, path))


def _read_safetensors(where: str, path: Path):
    size = path.stat().st_size

    def bad(problem):
        return ValueError(f"{where}: argument 'path' ({path}) is not a valid safetensors file: "
                          f"{problem}")

    with open(path, "rb") as f:
        if size < 8:
            raise bad(f"it has {size} bytes, fewer than the 8 of the header length "
                      f"(truncated?)")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER:
            raise bad(f"the header length field says {n} bytes, more than the {MAX_HEADER} "
                      f"allowed (garbled?)")
        if 8 + n > size:
            raise bad(f"the header length field says {n} bytes but only {size - 8} follow "
                      f"(truncated?)")
        header = _parse_header(f.read(n), bad)
        data_size = size - 8 - n
        entries = _check_entries(header, data_size, bad)
        tensors = {}
        for name, (code, shape, begin, end) in entries.items():
            f.seek(8 + n + begin)
            stored = np.dtype(DTYPES[code])
            raw = np.fromfile(f, dtype=stored, count=(end - begin) // stored.itemsize)
            if code == "BF16":
                tensors[name] = from_bfloat16_bits(raw).reshape(shape)
            else:                                     # a no-op on little-endian machines
                tensors[name] = raw.astype(stored.newbyteorder("="), copy=False).reshape(shape)
    return tensors, header.get(METADATA_KEY, {})


@contract(example=lambda rng: {"x": rng.standard_normal((2, 3)).astype(np.float32)},
          lenient={"x": ("nan", "inf", "empty", "rank_up", "rank_down")})   # all rounded
def to_bfloat16_bits(x: np.ndarray) -> np.ndarray:
    r"""Round floats to bfloat16 (to nearest, ties to even) and return the 16-bit patterns.

    bfloat16 keeps float32's sign and 8-bit exponent and the top 7 of its 23 mantissa bits.
    Rounding adds ``0x7FFF`` (one less than half a unit of the 16 bits dropped) plus the
    lowest kept bit, then drops the 16 bits: below half a unit rounds down, above rounds up,
    and exactly half rounds up only from an odd kept part, so ties go to the even neighbour.
    Finite values past the largest bfloat16 become infinite, as in PyTorch.

    $$
    b = \big(u + \mathtt{0x7FFF} + (\lfloor u / 2^{16} \rfloor \bmod 2)\big) \gg 16
    $$

    where ``u`` is the float32's bit pattern.  NaN stays a (quiet) NaN.

    Parameters
    ----------
    x : numpy.ndarray
        Floating-point values (float64 is rounded to float32 first).

    Returns
    -------
    numpy.ndarray
        uint16 array of the same shape.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point NumPy array.
    """
    _float_or_bits("weights.to_bfloat16_bits", "x", x, floating=True)
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), bits)


@contract(example=lambda rng: {"bits": rng.integers(0, 2 ** 16, (2, 3)).astype(np.uint16)},
          lenient={"bits": ("negative", "too_large", "empty")})  # every pattern is a number
def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> the same numbers as float32, exactly.

    Parameters
    ----------
    bits : numpy.ndarray
        uint16 patterns.

    Returns
    -------
    numpy.ndarray
        float32 array of the same shape.

    Raises
    ------
    TypeError
        If ``bits`` is not a NumPy array of dtype uint16.
    """
    _float_or_bits("weights.from_bfloat16_bits", "bits", bits, floating=False)
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _float_or_bits(where: str, name: str, x, floating: bool) -> None:
    """``x`` must be a float array (``floating``) or a uint16 array of bits (not)."""
    want = "a floating-point dtype" if floating else "dtype uint16"
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{where}: argument '{name}' must be a NumPy array of {want}, "
                        f"got {type(x).__name__}")
    if (x.dtype.kind != "f") if floating else (x.dtype != np.uint16):
        raise TypeError(f"{where}: argument '{name}' must have {want}, got dtype {x.dtype}")


# --- helpers --------------------------------------------------------------------------------

def _path(where: str, path) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: argument 'path' must be a str or os.PathLike, "
                        f"got {type(path).__name__} {path!r}")
    return Path(path)


def _format(where: str, path: Path, fmt) -> str:
    if fmt is None:
        fmt = path.suffix.lstrip(".")
        if fmt not in FORMATS:
            raise ValueError(f"{where}: argument 'path' must end in .safetensors or .npz, or "
                             f"argument 'format' must say which, got {str(path)!r}")
    elif fmt not in FORMATS:
        raise ValueError(f"{where}: argument 'format' must be one of {FORMATS}, got {fmt!r}")
    return fmt


def _metadata(where: str, metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError(f"{where}: argument 'metadata' must be a dict of str to str, "
                        f"got {metadata!r}")
    return metadata


def _code(where: str, name: str, array) -> str:
    """The safetensors dtype code of an array, or TypeError."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{where}: argument {name} must be a NumPy array, "
                        f"got {type(array).__name__}")
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"{where}: argument {name} has dtype {array.dtype}; storable dtypes "
                        f"are float64/32/16, int64/32/16/8, uint64/32/16/8 and bool")
    return code


def _check_tree(where: str, tree, path: str = "") -> None:
    """Every dict key a non-empty string without dots, every leaf a storable array."""
    label = f"params[{path!r}]" if path else "'params'"
    if isinstance(tree, np.ndarray):
        _code(where, label, tree)
        return
    if isinstance(tree, dict):
        for key in tree:
            if not isinstance(key, str) or not key or "." in key:
                raise (TypeError if not isinstance(key, str) else ValueError)(
                    f"{where}: argument {label} has the key {key!r}; keys must be non-empty "
                    f"strings without dots (the dots join the names in the file)")
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        raise TypeError(f"{where}: argument {label} must be a dict, a list or a NumPy array, "
                        f"got {type(tree).__name__}")
    for key, value in items:
        _check_tree(where, value, f"{path}.{key}" if path else str(key))


def _parse_header(raw: bytes, bad) -> dict:
    def no_duplicates(pairs):
        names = [k for k, _ in pairs]
        twice = sorted({k for k in names if names.count(k) > 1})
        if twice:
            raise bad(f"the header names a key twice: {twice}")
        return dict(pairs)

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad(f"the header is not UTF-8 text ({exc})") from None
    if not text.startswith("{"):
        raise bad(f"the header must be a JSON object starting with '{{', got {text[:20]!r}")
    try:
        header = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        raise bad(f"the header is not valid JSON ({exc})") from None
    meta = header.get(METADATA_KEY, {})
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise bad(f"the {METADATA_KEY!r} entry must be an object of strings to strings, "
                  f"got {meta!r}")
    return header


def _check_entries(header: dict, data_size: int, bad) -> dict:
    """``{name: (code, shape, begin, end)}`` in file order, after checking every entry and
    that the byte ranges tile ``[0, data_size)`` exactly."""
    entries = {}
    for name, entry in header.items():
        if name == METADATA_KEY:
            continue
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r} must have exactly the fields dtype, shape and "
                      f"data_offsets, got {entry!r}")
        code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if code not in DTYPES:
            raise bad(f"tensor {name!r} has dtype {code!r}; this reader knows {sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(_count(s) for s in shape):
            raise bad(f"tensor {name!r} has shape {shape!r}; expected a list of integers >= 0")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(map(_count, offsets)) \
                or offsets[0] > offsets[1]:
            raise bad(f"tensor {name!r} has data_offsets {offsets!r}; expected [begin, end] "
                      f"with 0 <= begin <= end")
        begin, end = offsets
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(DTYPES[code]).itemsize
        if end - begin != nbytes:
            raise bad(f"tensor {name!r} of dtype {code} and shape {shape} needs {nbytes} bytes, "
                      f"but its data_offsets {offsets} span {end - begin}")
        if end > data_size:
            raise bad(f"tensor {name!r} ends at data byte {end}, but the file holds only "
                      f"{data_size} bytes of data (truncated?)")
        entries[name] = (code, tuple(shape), begin, end)
    covered = 0
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda e: e[1][2:]):
        if begin != covered:
            raise bad(f"tensor {name!r} starts at data byte {begin}, but the previous tensors "
                      f"end at {covered} ({'a gap' if begin > covered else 'an overlap'})")
        covered = end
    if covered != data_size:
        raise bad(f"the tensors end at data byte {covered}, but the file has {data_size} bytes "
                  f"of data")
    return dict(sorted(entries.items(), key=lambda e: e[1][2:]))


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _write_file(where: str, path: Path, write, overwrite: bool) -> None:
    """Write through ``write(f)`` to a new temporary file beside ``path``, then move it in
    place (atomic: a reader never sees half a file, a failure leaves none)."""
    if not isinstance(overwrite, bool):
        raise TypeError(f"{where}: argument 'overwrite' must be a bool, got {overwrite!r}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{where}: argument 'path' names an existing file ({path}); "
                              f"pass overwrite=True to replace it")
    if path.is_dir():
        raise IsADirectoryError(f"{where}: argument 'path' names a directory ({path})")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{where}: argument 'path' ({path}) is in a folder that does "
                                f"not exist ({path.parent})")
    # a scratch name of fixed length beside the file: one built from the file's own name
    # could pass the file system's limit (255 bytes) where the name itself does not
    tmp = path.with_name(f".llmref-{os.getpid()}-{secrets.token_hex(4)}.tmp")
    f = open(tmp, "xb")              # an error here (no permission, say) leaves no file
    try:
        with f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink()                 # the scratch file exists until os.replace moves it
        raise


def _write_npz(where: str, path: Path, tensors: dict, meta: dict, overwrite: bool) -> None:
    """An ``.npz`` file as ``numpy.savez`` writes one (a zip of ``.npy`` members), plus the
    metadata as JSON in a 0-d string array named ``__metadata__``."""
    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, array in {**tensors, METADATA_KEY: np.array(json.dumps(meta))}.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array),
                                              allow_pickle=False)

    _write_file(where, path, write, overwrite)


def _read_npz(where: str, path: Path):
    def bad(problem):
        return ValueError(f"{where}: argument 'path' ({path}) is not a valid .npz file: "
                          f"{problem}")

    try:
        npz = np.load(path, allow_pickle=False)
        if isinstance(npz, np.lib.npyio.NpzFile):
            with npz:
                arrays = {name: npz[name] for name in npz.files}
    except (ValueError, zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise bad(f"{type(exc).__name__}: {exc} (truncated or garbled?)") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise bad("it holds a single array, not an archive of named arrays")
    meta = {}
    if METADATA_KEY in arrays:
        stored = arrays.pop(METADATA_KEY)
        try:
            meta = json.loads(str(stored[()])) if stored.dtype.kind == "U" else None
        except json.JSONDecodeError:
            meta = None
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise bad(f"its {METADATA_KEY!r} entry must be JSON text of an object of strings")
    for name, array in arrays.items():
        if array.dtype.newbyteorder("=") not in _CODES:
            raise bad(f"the array {name!r} has dtype {array.dtype}, not a parameter's")
    return arrays, meta
