"""mutmut survivors of the transformer group (mha, ffn, block, gpt) judged equivalent: nothing
a test can observe through the public functions."""

_PAST = 'past = list(zip(kv_cache["k"], kv_cache["v"], strict=True))'
_LAYERS = 'for p, layer_past in zip(params["blocks"], past, strict=True):'
_STRICT = ("_check_kv_cache has already held kv_cache['k'] and ['v'] to n_layers arrays each "
           "and _check_params params['blocks'] to n_layers blocks, so the zip's lengths "
           "always agree and strict never fires")

_NEW = "new = np.ones((B, T), bool) if attention_mask is None else \\"
_START = "start = np.zeros(B, np.int64) if kv_cache is None else \\"
_COUNTS = ("in gpt.decode these arrays only feed the row lengths int((start + new.sum(axis=1))"
           ".max()) checked against the context: float ones and zeros give the same counts "
           "(_decode builds its own mask and positions)")

SPECIFIC = {
    (_NEW, "new = np.ones((B, T), None) if attention_mask is None else \\"): _COUNTS,
    (_NEW, "new = np.ones((B, T), ) if attention_mask is None else \\"): _COUNTS,
    (_START, "start = np.zeros(B, None) if kv_cache is None else \\"): _COUNTS,
    (_START, "start = np.zeros(B, ) if kv_cache is None else \\"): _COUNTS,
    ('_check_attention_mask(where, mask, getattr(mask, "shape", ()), "kv_cache[\'mask\']")',
     '_check_attention_mask(where, mask, getattr(mask, "shape", None), "kv_cache[\'mask\']")'):
        "an object without a shape is not a NumPy array, and bool_array refuses it for its "
        "type before it reads the shape, with the same message",
    ('getattr(attention_mask, "shape", ()))', 'getattr(attention_mask, "shape", None))'):
        "an object without a shape is not a NumPy array, and bool_array refuses it for its "
        "type before it reads the shape, with the same message",
    (_PAST, 'past = list(zip(kv_cache["k"], kv_cache["v"], strict=None))'): _STRICT,
    (_PAST, 'past = list(zip(kv_cache["k"], kv_cache["v"], strict=False))'): _STRICT,
    (_PAST, 'past = list(zip(kv_cache["k"], kv_cache["v"], ))'): _STRICT,
    (_LAYERS, 'for p, layer_past in zip(params["blocks"], past, strict=None):'): _STRICT,
    (_LAYERS, 'for p, layer_past in zip(params["blocks"], past, strict=False):'): _STRICT,
    (_LAYERS, 'for p, layer_past in zip(params["blocks"], past, ):'): _STRICT,
    ('extra = _attention_inputs(config, T, keys, positions, h.dtype)',
     'extra = _attention_inputs(config, None, keys, positions, h.dtype)'):
        "_attention_inputs reads T only to make positions 0 .. T-1 when none are given, and "
        "decoding always gives them (each row's count of real tokens)",
    ("n_past = past[0].shape[2]", "n_past = past[1].shape[2]"):
        "the cached keys and values of a layer have the same length: gpt.decode, the only "
        "caller with a cache, holds both to (B, H_kv, S, D) in _check_kv_cache first",
    ('_checks.keys(where, params, ("wte",) + table + ("blocks", "ln_f") + own_head, "params")',
     '_checks.keys(where, params, ("wte",) + table + ("blocks", "ln_f") + own_head, )'):
        "_checks.keys names the tree 'params' by default, the name given",
    ("block._check_params(where, p, C, config.n_heads, f\"params['blocks'][{i}]\",",
     "block._check_params(where, p, None, config.n_heads, f\"params['blocks'][{i}]\","):
        "_check_leaf_shapes has already held every leaf of the blocks to the shape the config "
        "sets, so the width the block checks would infer cannot differ from C",
    ("NORMS[config.norm]._check_params(where, params[\"ln_f\"], C, \"params['ln_f']\", "
     "config.bias)",
     "NORMS[config.norm]._check_params(where, params[\"ln_f\"], None, \"params['ln_f']\", "
     "config.bias)"):
        "_check_leaf_shapes has already held the final norm's leaves to (C,)",
    ("_check_leaf_shapes", "leaf = None", 'leaf = ""'):
        "the walk stops at a missing part and only an ndarray leaf is compared: None and \"\" "
        "are both not arrays",
}
