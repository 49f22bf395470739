"""mutmut survivors of the generate group judged equivalent: nothing a test can observe."""

SPECIFIC = {
    ('drop = np.zeros_like(p, dtype=bool)',
     'drop = np.zeros_like(p, dtype=None)'):
        'a float 0/1 array selects in np.where as the boolean one does (put_along_axis writes'
        ' True as 1.0)',
    ('drop = np.zeros_like(p, dtype=bool)',
     'drop = np.zeros_like(p, )'):
        'a float 0/1 array selects in np.where as the boolean one does (put_along_axis writes'
        ' True as 1.0)',
    ('z = (logits - logits.max(axis=-1, keepdims=True)) / temperature',
     'z = (logits - logits.max(axis=+1, keepdims=True)) / temperature'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('np.put_along_axis(drop, order, before >= top_p, axis=-1)      # the first always stays',
     'np.put_along_axis(drop, order, before >= top_p, axis=+1)      # the first always stays'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('p /= p.sum(axis=-1, keepdims=True)',
     'p /= p.sum(axis=+1, keepdims=True)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('keep = np.argsort(-z, axis=-1, kind="stable")[:, :top_k]      # exactly k per row',
     'keep = np.argsort(-z, axis=+1, kind="stable")[:, :top_k]      # exactly k per row'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('np.put_along_axis(masked, keep, np.take_along_axis(z, keep, axis=-1), axis=-1)',
     'np.put_along_axis(masked, keep, np.take_along_axis(z, keep, axis=+1), axis=-1)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('np.put_along_axis(masked, keep, np.take_along_axis(z, keep, axis=-1), axis=-1)',
     'np.put_along_axis(masked, keep, np.take_along_axis(z, keep, axis=-1), axis=+1)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('e = np.exp(z - z.max(axis=-1, keepdims=True))                     # exp(-inf) = 0',
     'e = np.exp(z - z.max(axis=+1, keepdims=True))                     # exp(-inf) = 0'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('p = e / e.sum(axis=-1, keepdims=True)',
     'p = e / e.sum(axis=+1, keepdims=True)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('order = np.argsort(-p, axis=-1, kind="stable")',
     'order = np.argsort(-p, axis=+1, kind="stable")'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('sorted_p = np.take_along_axis(p, order, axis=-1)',
     'sorted_p = np.take_along_axis(p, order, axis=+1)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('before = np.cumsum(sorted_p, axis=-1) - sorted_p              # mass of the likelier ones',
     'before = np.cumsum(sorted_p, axis=+1) - sorted_p              # mass of the likelier ones'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('nxt = z.argmax(axis=-1)',
     'nxt = z.argmax(axis=+1)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    # _draw: its weights are (B, V) from both callers (generate and bigram_policy.sample)
    ('cdf = np.cumsum(weights, axis=-1)', 'cdf = np.cumsum(weights, axis=+1)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('return (cdf <= u).sum(axis=-1)', 'return (cdf <= u).sum(axis=+1)'):
        'every array here is 2-D (B, V), so axis +1 is axis -1',
    ('V = logits.shape[-1]',
     'V = logits.shape[+1]'):
        'logits is checked 2-D (B, V), so shape[+1] is shape[-1]',
    ('keep = np.argsort(-z, axis=-1, kind="stable")[:, :top_k]      # exactly k per row',
     'keep = np.argsort(-z, kind="stable")[:, :top_k]      # exactly k per row'):
        "argsort's default axis is -1",
    ('order = np.argsort(-p, axis=-1, kind="stable")',
     'order = np.argsort(-p, kind="stable")'):
        "argsort's default axis is -1",
    ('np.put_along_axis(masked, keep, np.take_along_axis(z, keep, axis=-1), axis=-1)',
     'np.put_along_axis(masked, keep, np.take_along_axis(z, keep, ), axis=-1)'):
        "take_along_axis's default axis is -1 from NumPy 2.3 on (before, axis is required: "
        'every top-k call fails)',
    ('sorted_p = np.take_along_axis(p, order, axis=-1)',
     'sorted_p = np.take_along_axis(p, order, )'):
        "take_along_axis's default axis is -1 from NumPy 2.3 on (before, axis is required: "
        'every top-k call fails)',
    ('keep = np.argsort(-z, axis=-1, kind="stable")[:, :top_k]      # exactly k per row',
     'keep = np.argsort(-z, axis=-1, kind="STABLE")[:, :top_k]      # exactly k per row'):
        "NumPy reads a sort kind by its first letter, case-insensitive: 'STABLE' is 'stable'",
    ('order = np.argsort(-p, axis=-1, kind="stable")',
     'order = np.argsort(-p, axis=-1, kind="STABLE")'):
        "NumPy reads a sort kind by its first letter, case-insensitive: 'STABLE' is 'stable'",
    ('e = np.exp(z - z.max(axis=-1, keepdims=True))                     # exp(-inf) = 0',
     'e = np.exp(z + z.max(axis=-1, keepdims=True))                     # exp(-inf) = 0'):
        "z is (logits - row max) / tau, so each row's maximum is exactly 0 (top-k keeps it): "
        'subtracting or adding it, per row or over the whole array, changes nothing',
    ('e = np.exp(z - z.max(axis=-1, keepdims=True))                     # exp(-inf) = 0',
     'e = np.exp(z - z.max(axis=None, keepdims=True))                     # exp(-inf) = 0'):
        "z is (logits - row max) / tau, so each row's maximum is exactly 0 (top-k keeps it): "
        'subtracting or adding it, per row or over the whole array, changes nothing',
    ('e = np.exp(z - z.max(axis=-1, keepdims=True))                     # exp(-inf) = 0',
     'e = np.exp(z - z.max(keepdims=True))                     # exp(-inf) = 0'):
        "z is (logits - row max) / tau, so each row's maximum is exactly 0 (top-k keeps it): "
        'subtracting or adding it, per row or over the whole array, changes nothing',
    ('return np.where(seen, np.where(logits > 0, logits / penalty, logits * penalty), logits)',
     'return np.where(seen, np.where(logits >= 0, logits / penalty, logits * penalty), logits)'):
        'at a logit of 0 (or -0.0) dividing and multiplying by r both give it back unchanged',
    ('seen = np.zeros((B, V), dtype=bool)',
     'seen = np.zeros((B, V), dtype=None)'):
        'a float 0/1 array selects in np.where as the boolean one does',
    ('seen = np.zeros((B, V), dtype=bool)',
     'seen = np.zeros((B, V), )'):
        'a float 0/1 array selects in np.where as the boolean one does',
    ('return ids, mask, "1-D" if prompt.ndim == 1 else "2-D"',
     'return ids, mask, "1-D" if prompt.ndim == 1 else "XX2-DXX"'):
        "the form is only compared with '1-D' and 'list': any other string is the 2-D form",
    ('return ids, mask, "1-D" if prompt.ndim == 1 else "2-D"',
     'return ids, mask, "1-D" if prompt.ndim == 1 else "2-d"'):
        "the form is only compared with '1-D' and 'list': any other string is the 2-D form",
    ('return np.zeros(0, dtype=np.int64)',
     'return np.zeros(0, dtype=None)'):
        'an empty array of stop ids matches nothing in np.isin whatever its dtype',
    ('return np.zeros(0, dtype=np.int64)',
     'return np.zeros(0, )'):
        'an empty array of stop ids matches nothing in np.isin whatever its dtype',
    ('mask[:, -1:])',
     'None)'):
        'the mask of the new position is ~done: True (as for None) in every row still '
        "generating; a stopped row's logits are never used (its tokens are pad_id)",
    ('done |= np.isin(nxt, stops) & mask[:, -1]',
     'done |= np.isin(nxt, stops) & mask[:, -2]'):
        'mask[:, -2] is ~done of the step before; a row it differs for (stopped at the last '
        'step) is already done, and done |= keeps it',
    ('return [row[keep] for row, keep in zip(ids, mask, strict=True)]',
     'return [row[keep] for row, keep in zip(ids, mask, strict=None)]'):
        'ids and mask have the same number of rows by construction',
    ('return [row[keep] for row, keep in zip(ids, mask, strict=True)]',
     'return [row[keep] for row, keep in zip(ids, mask, )]'):
        'ids and mask have the same number of rows by construction',
    ('return [row[keep] for row, keep in zip(ids, mask, strict=True)]',
     'return [row[keep] for row, keep in zip(ids, mask, strict=False)]'):
        'ids and mask have the same number of rows by construction',
}
