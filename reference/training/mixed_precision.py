r"""Mixed-precision training: low-precision compute, float32 master weights, dynamic loss
scaling.

Each part exists for a reason that :mod:`llmref.spec.test_mixed_precision` demonstrates:

* **float32 master weights.**  An update smaller than half a unit in the last place of a
  weight is rounded away: float16 has 10 fraction bits, so near 1.0 anything below
  ``2^-11 ~ 4.9e-4`` vanishes.  Updates are applied to a float32 copy (24 bits), and the
  low-precision weights are re-derived from it each step.
* **Loss scaling.**  float16 cannot hold magnitudes below ``2^-24 ~ 6e-8``; small gradients
  become 0.  Multiplying the loss by ``S`` multiplies every gradient by ``S`` (the chain rule
  is linear in the upstream gradient); the float32 gradients are divided by ``S`` again
  before the update.
* **Dynamic scale.**  Too large an ``S`` overflows float16 (max 65504) to inf.  Then the step
  is skipped and ``S`` is halved; after ``growth_interval`` clean steps in a row ``S`` is
  doubled.  This is ``torch.amp.GradScaler``'s rule.

bfloat16 has float32's exponent range (no underflow problem, no loss scaling needed) but only
7 fraction bits.  NumPy has no bfloat16 type, so :func:`to_bfloat16` rounds float32 values to
the nearest bfloat16 value (ties to even), exactly as a hardware cast does, and stores them
as float32; in ``"bfloat16"`` mode the compute copies of the weights and the gradients are
rounded that way, while the arithmetic in between runs in float32.
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref.params import flatten, map_trees

DTYPES = ("float16", "bfloat16", "float32")


def to_bfloat16(x) -> np.ndarray:
    """Round to the nearest bfloat16 value, ties to even; returned as float32."""
    x32 = np.asarray(x, dtype=np.float32)
    bits = x32.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1                      # round half to even on the kept 16 bits
    rounded = ((bits + 0x7FFF + lsb) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32).reshape(x32.shape)
    return np.where(np.isnan(x32), x32, out)    # NaN stays NaN (rounding could make it inf)


def cast(x: np.ndarray, dtype: str) -> np.ndarray:
    """``x`` in the compute format ``dtype`` ("float16", "bfloat16" or "float32")."""
    if dtype == "float16":
        return x.astype(np.float16)
    if dtype == "bfloat16":
        return to_bfloat16(x)
    if dtype == "float32":
        return x.astype(np.float32)
    raise ValueError(f"mixed_precision.cast: argument 'dtype' must be one of {DTYPES}, "
                     f"got {dtype!r}")


def scaler_init(init_scale: float = 2.0**16, growth_factor: float = 2.0,
                backoff_factor: float = 0.5, growth_interval: int = 2000) -> dict:
    """Loss-scaler state (the defaults are torch.amp.GradScaler's)."""
    _checks.positive("mixed_precision.scaler_init", "init_scale", init_scale)
    if not growth_factor > 1.0:
        raise ValueError(f"mixed_precision.scaler_init: argument 'growth_factor' must be > 1, "
                         f"got {growth_factor!r}")
    if not 0.0 < backoff_factor < 1.0:
        raise ValueError(f"mixed_precision.scaler_init: argument 'backoff_factor' must be in "
                         f"(0, 1), got {backoff_factor!r}")
    _checks.positive("mixed_precision.scaler_init", "growth_interval", growth_interval,
                     integer=True)
    return {"scale": float(init_scale), "growth_tracker": 0, "growth_factor": growth_factor,
            "backoff_factor": backoff_factor, "growth_interval": growth_interval}


def scaler_update(state: dict, found_inf: bool) -> dict:
    """Halve (back off) on overflow; grow after ``growth_interval`` clean steps in a row."""
    new = dict(state)
    if found_inf:
        new["scale"] = state["scale"] * state["backoff_factor"]
        new["growth_tracker"] = 0
    elif state["growth_tracker"] + 1 == state["growth_interval"]:
        new["scale"] = state["scale"] * state["growth_factor"]
        new["growth_tracker"] = 0
    else:
        new["growth_tracker"] = state["growth_tracker"] + 1
    return new


def unscale(grads, scale: float):
    """``(float32 grads / scale, found_inf)``; ``found_inf`` is True if any value is NaN/inf."""
    g32 = map_trees("mixed_precision.unscale", lambda g: g.astype(np.float32) / scale, grads)
    found_inf = not all(np.all(np.isfinite(g)) for g in flatten(g32).values())
    return g32, found_inf


def train_step(master, loss_and_grads, optimizer_step, opt_state, scaler: dict | None,
               dtype: str = "float16"):
    """One mixed-precision step.

    ``master``: float32 parameter tree.  ``loss_and_grads(params, dloss) -> (loss, grads)``
    computes in whatever dtype ``params`` has.  ``optimizer_step(params, grads, state) ->
    (params, state)`` updates the float32 master weights.  ``scaler``: loss-scaler state, or
    None for no loss scaling (the usual choice with bfloat16).

    Returns ``(master, opt_state, scaler, info)`` with ``info = {"loss", "skipped", "scale"}``;
    a skipped step leaves ``master`` and ``opt_state`` as they were.
    """
    if dtype not in DTYPES:
        raise ValueError(f"mixed_precision.train_step: argument 'dtype' must be one of "
                         f"{DTYPES}, got {dtype!r}")
    scale = 1.0 if scaler is None else scaler["scale"]
    compute = map_trees("mixed_precision.train_step", lambda p: cast(p, dtype), master)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, grads = loss_and_grads(compute, scale)
    if dtype == "bfloat16":
        grads = map_trees("mixed_precision.train_step", to_bfloat16, grads)
    grads, found_inf = unscale(grads, scale)
    info = {"loss": float(loss), "skipped": found_inf, "scale": scale}
    if scaler is not None:
        scaler = scaler_update(scaler, found_inf)
    if found_inf:
        if scaler is None:
            raise ValueError("mixed_precision.train_step: the gradients hold NaN or inf and "
                             "loss scaling is off, so the step cannot be skipped safely")
        return master, opt_state, scaler, info
    master, opt_state = optimizer_step(master, grads, opt_state)
    return master, opt_state, scaler, info
