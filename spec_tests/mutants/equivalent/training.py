"""mutmut survivors of the training group (accumulate, checkpoint, train, memory) judged
equivalent: nothing a test can observe through the public functions."""

SPECIFIC = {
    ("first = flat if first is None else first",
     "first = flat if (first is None) or True else first"):
        "each micro-batch's gradient tree is compared with the previous one's instead of the "
        "first one's; until a comparison fails they are the same tree, so the same mismatch "
        "is found at the same micro-batch",
    ('boundaries[s // segment_size] = None            # this boundary is no longer needed',
     'boundaries[s // segment_size] = ""            # this boundary is no longer needed'):
        "a boundary no longer needed is dropped either way: an empty string holds no array, "
        "so the memory measured is the same",
    ("h, _ = _blocks_forward(h, params[\"blocks\"][s:s + segment_size], config, False, extra)",
     "h, _ = _blocks_forward(h, params[\"blocks\"][s:s + segment_size], config, None, extra)"):
        "keep_caches=None is as false as False",
    ("h, _ = _blocks_forward(h, params[\"blocks\"][s:s + segment_size], config, False, extra)",
     "h, _ = _blocks_forward(h, params[\"blocks\"][s:s + segment_size], config, True, extra)"):
        "the caches a segment's first forward would keep are dropped as it ends (h, _ =); "
        "the peak is reached while a segment is rerun, which holds them anyway",
}
