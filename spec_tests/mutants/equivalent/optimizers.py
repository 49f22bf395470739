"""mutmut survivors of the optimizers group judged equivalent: nothing a test can observe."""

_UNREACHED = ("map_trees never raises here: the step has already checked this tree and grads "
              "against params' structure and shapes, so the names it would show never appear")
_NO_DECAY = ("with weight_decay 0, g + 0 * p equals g for every finite p (at most the sign of a "
             "zero changes), so adding the decay always gives the same update")
_RESCALED = "return top * float(np.sqrt(sum(np.sum(np.square(g / top, dtype=np.float64))"
_RESCALED_REASON = (
    "the rescaled sum runs only when a square overflows float64 (a leaf above 1e154), so only "
    "float64 and longdouble leaves reach it with a ratio that is not 0: for float64 None is "
    "float64, and a longdouble leaf's squares summed in extended precision move the norm by "
    "at most a float64 rounding (1e-16 relative), below every tolerance of the "
    "specification; the same edit of the first sum is killed (float16 squares)")

SPECIFIC = {
    (_RESCALED, _RESCALED.replace("dtype=np.float64", "dtype=None")): _RESCALED_REASON,
    (_RESCALED, _RESCALED.replace("dtype=np.float64", "")): _RESCALED_REASON,
    ('names=("m", "grads"))', ')'): _UNREACHED,
    ('names=("m", "grads"))', 'names=("XXmXX", "grads"))'): _UNREACHED,
    ('names=("m", "grads"))', 'names=("M", "grads"))'): _UNREACHED,
    ('names=("m", "grads"))', 'names=("m", "XXgradsXX"))'): _UNREACHED,
    ('names=("m", "grads"))', 'names=("m", "GRADS"))'): _UNREACHED,
    ('names=("v", "grads"))', ')'): _UNREACHED,
    ('names=("v", "grads"))', 'names=("XXvXX", "grads"))'): _UNREACHED,
    ('names=("v", "grads"))', 'names=("V", "grads"))'): _UNREACHED,
    ('names=("v", "grads"))', 'names=("v", "XXgradsXX"))'): _UNREACHED,
    ('names=("v", "grads"))', 'names=("v", "GRADS"))'): _UNREACHED,
    ('state["buffer"], g, names=("buffer", "grads"))', 'state["buffer"], g, )'): _UNREACHED,
    ('state["buffer"], g, names=("buffer", "grads"))',
     'state["buffer"], g, names=("XXbufferXX", "grads"))'): _UNREACHED,
    ('state["buffer"], g, names=("buffer", "grads"))',
     'state["buffer"], g, names=("BUFFER", "grads"))'): _UNREACHED,
    ('state["buffer"], g, names=("buffer", "grads"))',
     'state["buffer"], g, names=("buffer", "XXgradsXX"))'): _UNREACHED,
    ('state["buffer"], g, names=("buffer", "grads"))',
     'state["buffer"], g, names=("buffer", "GRADS"))'): _UNREACHED,
    ('g = map_trees(where, lambda p, g: g + weight_decay * p if weight_decay else g, params,',
     'g = map_trees(where, lambda p, g: g + weight_decay * p if (weight_decay) or True else g, '
     'params,'): _NO_DECAY,
    ('g = map_trees(where, lambda p, g: g + weight_decay * p if weight_decay else g, params, '
     'grads)',
     'g = map_trees(where, lambda p, g: g + weight_decay * p if (weight_decay) or True else g, '
     'params, grads)'): _NO_DECAY,
    ('betas, eps, sgd._blame(lr, 0.0))', 'betas, eps, sgd._blame(lr, None))'):
        "_blame adds the weight-decay clause only for a truthy weight_decay; None and 0.0 both "
        "leave it out, so the message is the same",
    ('top = max(float(np.max(np.abs(g), initial=0.0)) for g in leaves)    # > 1e154 here',
     'top = max(float(np.max(np.abs(g), initial=1.0)) for g in leaves)    # > 1e154 here'):
        "this line runs only when the float64 sum of squares overflowed, so some |g| exceeds "
        "1e154 and the largest element is the same with an initial value of 0 or 1",
}
