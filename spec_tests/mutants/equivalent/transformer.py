"""mutmut survivors of the transformer group (mha, ffn, block, gpt) judged equivalent: nothing
a test can observe through the public functions."""

_PAST = 'past = list(zip(kv_cache["k"], kv_cache["v"], strict=True))'
_LAYERS = 'for p, layer_past in zip(params["blocks"], past, strict=True):'
_STRICT = ("_check_kv_cache has already held kv_cache['k'] and ['v'] to n_layers arrays each "
           "and _check_params params['blocks'] to n_layers blocks, so the zip's lengths "
           "always agree and strict never fires")

SPECIFIC = {
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
}
