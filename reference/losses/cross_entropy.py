r"""Cross-entropy loss from logits, mean over the targets that are not ignored.

$$
L = -\frac{1}{N} \sum_{n:\,t_n \ne \mathrm{ignore}} \log \mathrm{softmax}(z_n)_{t_n},
\qquad
\frac{\partial L}{\partial z_n} = \frac{\mathrm{softmax}(z_n) - \mathrm{onehot}(t_n)}{N}
$$

where `N` counts the targets that are not `ignore_index`; ignored rows get zero gradient.
Shapes: `logits` (..., V) float, `targets` (...) int -> scalar loss.  For next-token
prediction that is `logits` (B, T, V) and `targets` (B, T).
The log-probability of the target is computed with the row maximum $m = z_{n,k}$ subtracted
first (as in `llmref.layers.log_softmax`), so logits of any magnitude give a finite loss, and
with the maximum's own term, exactly 1, taken out of the sum:

$$
-\log \mathrm{softmax}(z_n)_{t}
  = (m - z_{n,t}) + \operatorname{log1p}\Big(\sum_{j \ne k} e^{z_{n,j} - m}\Big)
$$

so a confident right answer's tiny loss (4e-8 for logits [17, 0]) keeps its relative
accuracy: `log(1 + rest)` would round it to 0 once `rest` < 1e-16, and the suite checks the
loss stays above 0 and accurate up to a margin of 59.5.  The forward keeps the
probabilities, which are all the backward needs.
A batch where every target is ignored has no mean and raises `ValueError`
(PyTorch returns NaN there).
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


def _example(rng) -> dict:
    targets = rng.integers(0, 5, size=(2, 3))
    targets[0, 0] = -100                                 # one ignored position
    return {"logits": rng.standard_normal((2, 3, 5)), "targets": targets,
            "ignore_index": -100}


@contract(example=_example, lenient={"ignore_index": ("negative", "zero")})
def forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100):
    r"""Mean negative log-probability of the targets.

    $$ L = -\frac{1}{N} \sum_{n:\,t_n \ne \mathrm{ignore}} \log \mathrm{softmax}(z_n)_{t_n} $$

    Computed as $(m - z_{n,t}) + \operatorname{log1p}(\sum_{j \ne k} e^{z_{n,j} - m})$ with
    $m = z_{n,k}$ the row maximum, so a tiny loss (a confident right answer) keeps its
    relative accuracy (see the module docstring).

    Parameters
    ----------
    logits : ndarray, shape (..., V), floating
        Scores `z`, one row of V per prediction. The loss is computed in logits' dtype
        (float32 in, float32 out).
    targets : ndarray, shape (...) = logits.shape[:-1], integer
        Class of each row, in [0, V), or `ignore_index` for a row that does not count.
    ignore_index : int, default -100
        The target value that marks an ignored row (PyTorch's default, -100).

    Returns
    -------
    loss : float scalar (NumPy, logits' dtype)
        Mean over the `N` rows that are not ignored.
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The probabilities `softmax(z)` and the mask of kept rows (new arrays), and the caller's
    `targets` by reference: do not change `targets` in place before the backward
    (`LLMREF_DEBUG_CACHE=1` verifies it).

    Raises
    ------
    TypeError
        If `logits` is not a floating-point array, `targets` not an integer array, or
        `ignore_index` not an int.
    ValueError
        If `logits` is 0-dimensional, empty or not finite, `targets` does not have shape
        logits.shape[:-1] or holds a value outside [0, V) other than `ignore_index`, or
        every target is ignored.
    """
    where = "cross_entropy.forward"
    _checks.float_array(where, "logits", logits, ndim_min=1)
    V = logits.shape[-1]
    ignore_index = _checks.integer(where, "ignore_index", ignore_index)
    _checks.int_array(where, "targets", targets, 0, V, allowed=(ignore_index,))
    if targets.shape != logits.shape[:-1]:
        raise ValueError(f"{where}: argument 'targets' must have shape {logits.shape[:-1]} "
                         f"(the shape of 'logits' {logits.shape} without its last axis), "
                         f"got shape {targets.shape}")
    keep = (targets != ignore_index).reshape(-1)
    n = int(keep.sum())
    if n == 0:
        raise ValueError(f"{where}: argument 'targets' has no target to average: "
                         f"all {targets.size} equal ignore_index={ignore_index}")
    rows = logits.reshape(-1, V)                                # (N, V)
    picked = np.where(keep, targets.reshape(-1), 0)            # a valid column for every row
    every = np.arange(rows.shape[0])
    # log softmax(z)_t = (z_t - m) - log sum_j exp(z_j - m), m the row maximum (as in
    # llmref.layers.log_softmax); the exponentials are kept, as probabilities, for the backward.
    # The maximum's own term is exactly 1, so the sum is 1 + rest and its log is log1p(rest):
    # a confident, correct prediction (loss ~ rest, maybe 1e-8) keeps full relative accuracy
    # instead of the ~1e-16 absolute error of log(1 + rest).
    top = rows.argmax(axis=1)
    probs = rows - rows[every, top][:, None]
    shifted_target = probs[every, picked]
    np.exp(probs, out=probs)
    probs[every, top] = 0.0
    rest = probs @ np.ones(V, dtype=probs.dtype)               # row sums, one BLAS call
    probs[every, top] = 1.0
    total = 1.0 + rest
    log_p_target = shifted_target - np.log1p(rest)
    loss = -log_p_target[keep].sum() / n
    probs *= (1.0 / total)[:, None]                            # softmax(z)
    return loss, _checks.guard(where, (probs, targets, keep, n, logits.shape), targets=targets)


@contract(example=lambda rng: {"dloss": 1.5, "cache": forward(**_example(rng))[1]},
          lenient={"dloss": ("negative",)})
def backward(dloss, cache) -> dict:
    r"""Gradient of the mean cross-entropy with respect to the logits.

    $$ \frac{\partial L}{\partial z_n} = \mathrm{d}L \cdot
       \frac{\mathrm{softmax}(z_n) - \mathrm{onehot}(t_n)}{N}, \quad 0 \text{ for ignored rows} $$

    Parameters
    ----------
    dloss : float or 0-d ndarray
        Upstream gradient of the scalar loss (1.0 when the loss is the objective).
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"logits": ndarray (..., V)}` (integer targets get no gradient); each row sums
        to 0.

    Raises
    ------
    TypeError
        If `dloss` is not a number or a floating-point array.
    ValueError
        If `dloss` is not a scalar or is NaN or inf, or (debug mode) if `targets` changed
        since the forward.
    """
    probs, targets, keep, n, shape = _checks.unguard("cross_entropy.backward", cache, 5)
    dloss = _checks.dout_like("cross_entropy.backward", dloss, (), name="dloss")
    scale = float(dloss) / n
    grad = probs * scale                                       # (softmax(z) - onehot) / N
    grad[np.arange(grad.shape[0]), np.where(keep, targets.reshape(-1), 0)] -= scale
    if not keep.all():
        grad[~keep] = 0.0                                      # ignored rows: no gradient
    return {"logits": grad.reshape(shape)}
