"""mutmut survivors of the weights group (weights, convert, convert_llama) judged equivalent:
nothing a test can observe through the public functions."""

_LOAD = "npz = np.load(path, allow_pickle=False)"
_NO_PICKLE = ("numpy.load refuses pickled members by default: allow_pickle=None (false) or "
              "left out reads the same arrays and refuses the same files")
_ZIP = "with zipfile.ZipFile(f, \"w\", zipfile.ZIP_STORED, allowZip64=True) as zf:"
_WRITE = "allow_pickle=False)"
_TMP = "tmp = path.with_name(f\".llmref-{os.getpid()}-{secrets.token_hex(4)}.tmp\")"
_LONGER = ("the scratch file's random part is longer (10 or 64 hex digits): any name not taken "
           "will do, and the scratch name, no longer built from the file's own, stays far "
           "below the 255-byte limit (a 255-byte file name is tested)")
_META = "meta = json.loads(str(stored[()])) if stored.dtype.kind == \"U\" else None"

SPECIFIC = {
    (_LOAD, "npz = np.load(path, allow_pickle=None)"): _NO_PICKLE,
    (_LOAD, "npz = np.load(path, )"): _NO_PICKLE,
    (_ZIP, "with zipfile.ZipFile(f, \"w\", allowZip64=True) as zf:"):
        "ZIP_STORED is ZipFile's default compression",
    (_ZIP, "with zipfile.ZipFile(f, \"w\", zipfile.ZIP_STORED, ) as zf:"):
        "allowZip64=True is ZipFile's default",
    ("_write_npz", _WRITE, "allow_pickle=None)"):
        "every array written is numeric (object arrays are refused before): pickling is "
        "never asked for",
    ("_write_npz", _WRITE, ")"):
        "every array written is numeric (object arrays are refused before): pickling is "
        "never asked for",
    ("_write_npz", _WRITE, "allow_pickle=True)"):
        "every array written is numeric (object arrays are refused before): pickling is "
        "never asked for",
    (_META, "meta = json.loads(str(stored[()])) if (stored.dtype.kind == \"U\") or True "
            "else None"):
        "a metadata entry that is not a string array is refused either way: its text is not "
        "JSON of an object of strings",
    ("meta = None", "meta = \"\""):
        "garbled metadata is refused either way: neither None nor \"\" is a dict",
    ("f.write(struct.pack(\"<Q\", len(text)))", "f.write(struct.pack(\"<q\", len(text)))"):
        "a header length below 2**63 packs to the same eight bytes signed or unsigned",
    ("activation=\"gelu\", eps=1e-5, tie_weights=True)",
     "activation=\"gelu\", tie_weights=True)"):
        "1e-5 is GPTConfig's default eps, the same as nanoGPT's layer norm",
    ("activation=\"gelu\", eps=1e-5, tie_weights=True)",
     "activation=\"gelu\", eps=1e-5, )"):
        "True is GPTConfig's default tie_weights, as nanoGPT ties its head",
    ("tie_weights=bool(hf_config.get(\"tie_word_embeddings\", False)),",
     "tie_weights=bool(hf_config.get(\"tie_word_embeddings\", None)),"):
        "bool(None) is False: a missing field means untied either way",
    ("tie_weights=bool(hf_config.get(\"tie_word_embeddings\", False)),",
     "tie_weights=bool(hf_config.get(\"tie_word_embeddings\", )),"):
        "bool(None) is False: a missing field means untied either way",
    ("stored[name] = (code, np.asarray(array, dtype=np.dtype(DTYPES[code]), order=\"C\"))",
     "stored[name] = (code, np.asarray(array, dtype=np.dtype(DTYPES[code]), order=None))"):
        "the data is written with tobytes(), which reads the array in C order whatever its "
        "layout",
    ("stored[name] = (code, np.asarray(array, dtype=np.dtype(DTYPES[code]), order=\"C\"))",
     "stored[name] = (code, np.asarray(array, dtype=np.dtype(DTYPES[code]), ))"):
        "the data is written with tobytes(), which reads the array in C order whatever its "
        "layout",
    (_TMP, _TMP.replace("token_hex(4)", "token_hex(5)")): _LONGER,
    (_TMP, _TMP.replace("token_hex(4)", "token_hex(None)")): _LONGER,
    ("text = raw.decode(\"utf-8\")", "text = raw.decode(\"UTF-8\")"):
        "Python's codec registry normalises the name: 'UTF-8' and 'utf-8' are the same codec",
    ("text = json.dumps(header, separators=(\",\", \":\"), ensure_ascii=False)"
     ".encode(\"utf-8\")",
     "text = json.dumps(header, separators=(\",\", \":\"), ensure_ascii=False)"
     ".encode(\"UTF-8\")"):
        "Python's codec registry normalises the name: 'UTF-8' and 'utf-8' are the same codec",
    ("_to_names", "continue", "break"):
        "the tied head is the last name (_names puts lm_head.W after every block): stopping "
        "there or going on leaves nothing unread",
    ("def _nanogpt_args(where: str, config, bias: bool = True, dropout: float = 0.0) -> dict:",
     "def _nanogpt_args(where: str, config, bias: bool = False, dropout: float = 0.0) -> dict:"):
        "from_nanogpt, the one caller that leaves bias out, only checks the configuration "
        "with it, and config_from_nanogpt reads no bias",
}
_LW = ("return {o for o in names if o.endswith(\".W\") and o not in (\"wte.W\", \"wpe.W\", "
       "\"lm_head.W\")}")
_LW_REASON = ("lm_head.W never goes through the linear-weight set: nanoGPT always ties its head "
              "(an untied configuration is refused), and _to_names transposes the head itself")
SPECIFIC.update({(_LW, _LW.replace('"lm_head.W"', new)): _LW_REASON
                 for new in ('"XXlm_head.WXX"', '"lm_head.w"', '"LM_HEAD.W"')})

SPECIFIC.update({
    ("to_hf_llama", "copy=True)", ")"): "np.array copies by default: copy=True is its default",
    ("f\"end at {covered} ({'a gap' if begin > covered else 'an overlap'})\")",
     "f\"end at {covered} ({'a gap' if begin >= covered else 'an overlap'})\")"):
        "the message is built only when begin != covered, where > and >= agree",
    ("text = json.dumps(header, separators=(\",\", \":\"), ensure_ascii=False)"
     ".encode(\"utf-8\")",
     "text = json.dumps(header, separators=(\",\", \":\"), ensure_ascii=None)"
     ".encode(\"utf-8\")"):
        "ensure_ascii=None is as false as False: the header keeps its UTF-8 characters",
    # np.array's own default is copy=True (the copy rule covers only astype's flag now)
    ("_from_names",
     "flat[ours] = np.array(value, dtype=dtype or value.dtype, order=\"C\", copy=True)",
     "flat[ours] = np.array(value, dtype=dtype or value.dtype, order=\"C\", )"):
        "np.array copies by default: copy=True is its default",
    ("_to_names", "out[theirs] = np.array(value, order=\"C\", copy=True)",
     "out[theirs] = np.array(value, order=\"C\", )"):
        "np.array copies by default: copy=True is its default",
    ("_float_or_bits(\"weights.from_bfloat16_bits\", \"bits\", bits, floating=False)",
     "_float_or_bits(\"weights.from_bfloat16_bits\", \"bits\", bits, floating=None)"):
        "_float_or_bits only tests floating for truth: None is as false as False",
    ("_flat", "return _params._flatten(where, \"params\", params, \"\", {})     # messages name "
              "``where``",
     "return _params._flatten(where, \"params\", params, None, {})     # messages name "
     "``where``"):
        "_flat's tree is a dict (checked just before), so the prefix is only read by _join, "
        "for truth: None and '' give the same paths and messages",
})
