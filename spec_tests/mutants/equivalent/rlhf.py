"""mutmut survivors of the rlhf group judged equivalent: nothing a test can observe.

Written before the group's first-pass result arrived, from the kinds of edit mutmut 3.8.1
makes (see the other groups' results); an entry whose edit mutmut did not make matches
nothing and does no harm."""

_NAN_LINE = '"entropy": float("nan"), "policy_loss": float("nan"),'
_DONES = "dones[np.arange(batch_size), kl._last_true(mask)] = True    # each response ends"
_SHAPE_DEFAULT = ('_checks.bool_array(where, "mask", mask, getattr(mask, "shape", ()))',
                  '_checks.bool_array(where, "mask", mask, getattr(mask, "shape", None))')
_FLAGS_DEFAULT = ('_checks.bool_array(where, name, flags, getattr(flags, "shape", ()))',
                  '_checks.bool_array(where, name, flags, getattr(flags, "shape", None))')
_GAE_MASK = ('mask = np.ones(shape, dtype=bool) if mask is None else _flags(where, "mask", mask, '
             'shape)')
_GAE_MASK_REASON = ("gae.advantages reads its mask only through np.where, where a default mask "
                    "of float ones selects what one of True does")
_V_NEXT = "v_next = np.asarray(next_value, dtype=np.float64).copy()   # V of the next real step"
_V_NEXT_REASON = (
    "v_next only enters GAE through gamma * keep * v_next and np.where against values, and "
    "keep = 1.0 - dones is float64: a float16 or float32 next_value widens exactly at the "
    "first product, so every result is the same; a longdouble next_value (floating too) keeps "
    "its extended precision into the recursion and moves the float64 results by at most a "
    "float64 rounding of the values (8.7e-19 for values of 1), below every tolerance of the "
    "specification")
_SHAPE_REASON = ("the default is read only for an object without a `shape`, which is not a "
                 "NumPy array, and bool_array refuses that (TypeError) before it looks at the "
                 "shape")
_PROMPTS = ('out = {"prompts": np.full((B, P), pad_id, np.int64), "prompt_mask": '
            'np.zeros((B, P), bool),')
_RESPONSES = '"responses": np.full((B, L), pad_id, np.int64), "mask": np.zeros((B, L), bool)}'
_BATCH_ZIP = "for b, (p, r) in enumerate(zip(prompts, responses, strict=True)):"
_BATCH_ZIP_REASON = ("rlhf_loop.batch has already refused lists of different lengths in its "
                     "own words, so the zip's lengths always agree and strict never fires")
_FULL_REASON = ("np.full takes its dtype from the fill value, and pad_id is the Python int "
                "_checks.integer returns: int64 either way")

_PAST_THE_END = (
    "each response's last real step is done, so the recursion never carries anything back "
    "from past a row's end: without the mask only the entries after the end change, and the "
    "loop never reads them (whitening takes the mask, the advantages outside it are set to "
    "0 or left out by the losses, which count the tokens of the mask only)")

SPECIFIC = {
    # rlhf_loop.ppo_train
    (_DONES, _DONES.replace("= True", "= False")):
        "each response's last real step then bootstraps from next_value = 0 with a zero "
        "running advantage (the steps after it are outside the mask): exactly what done gives",
    (_DONES, _DONES.replace("= True", "= None")):
        "None written into a boolean array is False: each response's last real step then "
        "bootstraps from next_value = 0 with a zero running advantage (the steps after it are "
        "outside the mask): exactly what done gives",
    ("ppo_train", "next_value=np.zeros(batch_size), mask=mask)",
     "next_value=np.zeros(batch_size), mask=None)"): _PAST_THE_END,
    ("ppo_train", "next_value=np.zeros(batch_size), mask=mask)",
     "next_value=np.zeros(batch_size), )"): _PAST_THE_END,
    ("ppo_train", "adv = np.where(mask, gae.whiten(adv, mask), 0.0)",
     "adv = np.where(mask, gae.whiten(adv, mask), 1.0)"):
        "advantages outside the response mask are never read: the policy loss counts the "
        "tokens of the mask only",
    (_NAN_LINE, '"entropy": float("NAN"), "policy_loss": float("nan"),'):
        'float("NAN") is NaN too',
    (_NAN_LINE, '"entropy": float("nan"), "policy_loss": float("NAN"),'):
        'float("NAN") is NaN too',
    ('"value_loss": float("nan")}', '"value_loss": float("NAN")}'):
        'float("NAN") is NaN too',
    # rlhf_loop._id_list and batch
    ('if not (isinstance(s, np.ndarray) and s.ndim == 1 and s.size and s.dtype.kind in "iu"):',
     'if not (isinstance(s, np.ndarray) and s.ndim == 1 and s.size and '
     's.dtype.kind in "XXiuXX"):'):
        "'i' and 'u' are still in the string, and no NumPy dtype kind is 'X'",
    (_PROMPTS, _PROMPTS.replace("pad_id, np.int64)", "pad_id, None)")): _FULL_REASON,
    (_PROMPTS, _PROMPTS.replace("pad_id, np.int64)", "pad_id, )")): _FULL_REASON,
    (_RESPONSES, _RESPONSES.replace("pad_id, np.int64)", "pad_id, None)")): _FULL_REASON,
    (_RESPONSES, _RESPONSES.replace("pad_id, np.int64)", "pad_id, )")): _FULL_REASON,
    (_BATCH_ZIP, _BATCH_ZIP.replace("strict=True", "strict=False")): _BATCH_ZIP_REASON,
    (_BATCH_ZIP, _BATCH_ZIP.replace("strict=True", "")): _BATCH_ZIP_REASON,
    (_BATCH_ZIP, _BATCH_ZIP.replace("strict=True", "strict=None")): _BATCH_ZIP_REASON,
    # rlhf_loop._fn: the placeholder functions of the Policy and Critic contract examples
    ("return lambda *args: None", "return lambda *args: 0"):
        "the placeholder a contract example hands to Policy and Critic is never called",
    # the default shape of a refused mask (kl, gae.whiten, ppo.entropy_forward, gae._flags)
    _SHAPE_DEFAULT: _SHAPE_REASON,
    _FLAGS_DEFAULT: _SHAPE_REASON,
    (_GAE_MASK, _GAE_MASK.replace("dtype=bool", "dtype=None")): _GAE_MASK_REASON,
    (_GAE_MASK, _GAE_MASK.replace("dtype=bool", "")): _GAE_MASK_REASON,
    (_V_NEXT, _V_NEXT.replace("dtype=np.float64", "dtype=None")): _V_NEXT_REASON,
    (_V_NEXT, _V_NEXT.replace("dtype=np.float64", "")): _V_NEXT_REASON,
    ("logp = np.take_along_axis(logp_all, tokens[..., None], axis=-1)[..., 0]",
     "logp = np.take_along_axis(logp_all, tokens[..., None], )[..., 0]"):
        "NumPy 2.3 and later default take_along_axis's axis to -1, the axis given (on an "
        "older NumPy, leaving it out raises a TypeError that every logprobs test shows)",
}
