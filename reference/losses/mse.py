r"""Mean squared error.

$$
L = \frac1N \sum_i (p_i - y_i)^2, \qquad
\frac{\partial L}{\partial p} = \frac{2}{N}(p - y), \qquad
\frac{\partial L}{\partial y} = -\frac{2}{N}(p - y)
$$

Shapes: `pred` and `target` of the same shape (...) -> scalar loss; `N` is their size.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract


def _example(rng) -> dict:
    return {"pred": rng.standard_normal((2, 3)), "target": rng.standard_normal((2, 3))}


@contract(example=_example)
def forward(pred: np.ndarray, target: np.ndarray):
    r"""Mean of the squared differences.

    $$ L = \frac1N \sum_i (p_i - y_i)^2 $$

    Parameters
    ----------
    pred : ndarray, any shape, floating
        Predictions `p`.
    target : ndarray, the shape of pred, floating
        Targets `y` (also differentiable). The loss has the promoted dtype of the two
        (float32 in, float32 out).

    Returns
    -------
    loss : float scalar (NumPy)
    cache : object
        What `backward` needs (see Cache).

    Cache
    -----
    The difference `p - y` (a new array): nothing the caller holds.

    Raises
    ------
    TypeError
        If `pred` or `target` is not a NumPy floating-point array.
    ValueError
        If either is empty or not finite, or their shapes differ.
    """
    _checks.float_array("mse.forward", "pred", pred)
    _checks.float_array("mse.forward", "target", target)
    if target.shape != pred.shape:
        raise ValueError(f"mse.forward: argument 'target' must have shape {pred.shape} "
                         f"(the shape of 'pred'), got shape {target.shape}")
    diff = pred - target
    return np.mean(diff * diff), diff


@contract(example=lambda rng: {"dloss": 0.5, "cache": forward(**_example(rng))[1]},
          lenient={"dloss": ("negative",)})
def backward(dloss, cache) -> dict:
    r"""Gradients of the mean squared error.

    $$ \frac{\partial L}{\partial p} = \mathrm{d}L\,\frac{2}{N}(p - y) =
       -\frac{\partial L}{\partial y} $$

    Parameters
    ----------
    dloss : float or 0-d ndarray
        Upstream gradient of the scalar loss.
    cache : object
        The cache returned by `forward`.

    Returns
    -------
    grads : dict
        `{"pred": ndarray, "target": ndarray}`, the shape of the inputs.

    Raises
    ------
    TypeError
        If `dloss` is not a number or a floating-point array.
    ValueError
        If `dloss` is not a scalar or is NaN or inf.
    """
    diff = _checks.unguard("mse.backward", cache)
    dloss = _checks.dout_like("mse.backward", dloss, (), name="dloss")
    with np.errstate(over="ignore", invalid="ignore"):
        dpred = (2.0 * float(dloss) / diff.size) * diff
    _checks.finite_result("mse.backward", "the gradient", dpred,
                          f"argument 'dloss' = {float(dloss)!r}")
    return {"pred": dpred, "target": -dpred}
