r"""Mixed-precision training: low-precision compute, float32 master weights, dynamic loss
scaling.

Each part exists for a reason that `llmref.spec.test_mixed_precision` demonstrates:

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
7 fraction bits.  NumPy has no bfloat16 type, so `to_bfloat16` rounds float32 values to
the nearest bfloat16 value (ties to even), exactly as a hardware cast does, and stores them
as float32; in ``"bfloat16"`` mode the compute copies of the weights and the gradients are
rounded that way, while the arithmetic in between runs in float32.

The loss scale $S$ stays in float32's normal range, $[1.2 \times 10^{-38}, S_{max}]$ with
$S_{max} \approx 3.4 \times 10^{38}$: the gradients are unscaled in float32, where a larger
scale is infinite (every step would overflow and be skipped forever) and a smaller one
loses its precision on the way to 0.

$$ S \leftarrow \begin{cases} \max(S \cdot \text{backoff},\ S_{min})
   & \text{an overflow (skip the step)} \\
   S \cdot \text{growth} & \text{the growth\_interval-th clean step in a row (if} \le S_{max}) \\
   S & \text{otherwise} \end{cases} $$
"""

from __future__ import annotations

import numpy as np

from llmref import _checks
from llmref._contract import contract
from llmref.params import map_trees

DTYPES = ("float16", "bfloat16", "float32")

#: the range of the loss scale: float32's smallest normal and largest finite values (the
#: gradients are unscaled in float32, where a smaller scale is 0 and a larger one inf)
MIN_SCALE, MAX_SCALE = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)

SCALER_KEYS = ("scale", "growth_tracker", "growth_factor", "backoff_factor", "growth_interval")


@contract(example=lambda rng: {"x": rng.standard_normal((3, 4)).astype(np.float32)},
          # a cast: NaN and inf have bfloat16 values, and any shape or size can be rounded
          lenient={"x": ("nan", "inf", "empty", "rank_up", "rank_down")})
def to_bfloat16(x: np.ndarray) -> np.ndarray:
    r"""Round to the nearest bfloat16 value, ties to even; returned as float32.

    bfloat16 keeps float32's sign and 8 exponent bits and the top 7 of its 23 fraction bits,
    so rounding adds half of the dropped range (``0x7FFF``, plus 1 when the kept last bit is
    odd: ties to even) to the bit pattern and clears the low 16 bits:

    $$ \mathrm{bits}(y) = \big(\mathrm{bits}(x) + \mathtt{0x7FFF}
       + \mathrm{lsb}\big) \mathbin{\&} \mathtt{0xFFFF0000} $$

    Values past bfloat16's largest (about 3.39e38) round to inf, as a hardware cast does; inf
    stays inf and NaN stays NaN.

    Parameters
    ----------
    x : ndarray, any shape, floating
        Values to round.  float64 is first rounded to float32 (as torch's cast does), so a
        float64 value within one float32 rounding of a bfloat16 tie may round differently from
        an exact one-step rounding.

    Returns
    -------
    y : ndarray, x's shape, float32
        The bfloat16 values, stored as float32 (a new array).

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point NumPy array.
    """
    if not isinstance(x, np.ndarray) or not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"mixed_precision.to_bfloat16: argument 'x' must be a floating-point "
                        f"NumPy array, got {_checks._describe(x)}")
    return _to_bfloat16(x)


@contract(example=lambda rng: {"x": rng.standard_normal((3, 4)).astype(np.float32),
                               "dtype": "float16"},
          lenient={"x": ("empty", "rank_up", "rank_down")})    # any shape or size casts
def cast(x: np.ndarray, dtype: str) -> np.ndarray:
    r"""``x`` in the compute format ``dtype``: float16, bfloat16 (float32 storage, rounded
    with `to_bfloat16`) or float32.

    Parameters
    ----------
    x : ndarray, any shape, floating
        Finite values (master weights), every one within the format's range.
    dtype : str
        ``"float16"``, ``"bfloat16"`` or ``"float32"``.

    Returns
    -------
    y : ndarray, x's shape
        A new array: float16 for ``"float16"``, float32 otherwise.

    Raises
    ------
    TypeError
        If ``x`` is not a floating-point NumPy array or ``dtype`` is not a string.
    ValueError
        If ``x`` holds NaN or inf, a value overflows the format (float16's largest is 65504),
        or ``dtype`` is not one of the three.
    """
    where = "mixed_precision.cast"
    _checks.float_array(where, "x", x, allow_empty=True)
    return _cast(where, x, _checks.choice(where, "dtype", dtype, DTYPES))


@contract(example=lambda rng: {"init_scale": 2.0**10, "growth_factor": 2.0,
                               "backoff_factor": 0.5, "growth_interval": 3})
def scaler_init(init_scale: float = 2.0**16, growth_factor: float = 2.0,
                backoff_factor: float = 0.5, growth_interval: int = 2000) -> dict:
    r"""Loss-scaler state (the defaults are ``torch.amp.GradScaler``'s).

    Parameters
    ----------
    init_scale : float, default 65536.0
        The first loss scale $S$, in [`MIN_SCALE`, `MAX_SCALE`].
    growth_factor : float, default 2.0
        Factor applied after ``growth_interval`` clean steps in a row, > 1.
    backoff_factor : float, default 0.5
        Factor applied after an overflow, in (0, 1).
    growth_interval : int, default 2000
        Clean steps in a row before the scale grows, >= 1.

    Returns
    -------
    state : dict
        ``{"scale", "growth_tracker": 0, "growth_factor", "backoff_factor",
        "growth_interval"}`` (floats and ints).

    Raises
    ------
    TypeError
        If an argument is not a number (``growth_interval``: not an int).
    ValueError
        If an argument is not finite or out of its range.
    """
    where = "mixed_precision.scaler_init"
    return {"scale": _checks.real(where, "init_scale", init_scale, MIN_SCALE, MAX_SCALE),
            "growth_tracker": 0,
            "growth_factor": _checks.real(where, "growth_factor", growth_factor, 1.0,
                                          low_open=True),
            "backoff_factor": _checks.real(where, "backoff_factor", backoff_factor, 0.0, 1.0,
                                           low_open=True, high_open=True),
            "growth_interval": _checks.integer(where, "growth_interval", growth_interval,
                                               low=1)}


@contract(example=lambda rng: {"state": {**scaler_init(2.0**10, 2.0, 0.5, 3),
                                         "growth_tracker": 1},
                               "found_inf": False})
def scaler_update(state: dict, found_inf: bool) -> dict:
    r"""The next loss-scaler state: back off on overflow; grow after ``growth_interval``
    clean steps in a row (torch's ``_amp_update_scale_``: no growth past `MAX_SCALE`; unlike
    torch, no back-off below `MIN_SCALE`, so the state stays one this function accepts).

    $$ (S, n) \leftarrow \begin{cases} (\max(S\,b, S_{min}), 0) & \text{found\_inf} \\
       (S\,g, 0) & n + 1 = N \;(\text{S kept if } S g > S_{max}) \\
       (S, n + 1) & \text{otherwise} \end{cases} $$

    Parameters
    ----------
    state : dict
        From `scaler_init` or the previous update: ``scale`` $S$ in [`MIN_SCALE`, `MAX_SCALE`],
        ``growth_tracker`` $n$ in [0, N), ``growth_factor`` $g > 1$, ``backoff_factor``
        $b$ in (0, 1), ``growth_interval`` $N \ge 1$.
    found_inf : bool
        Whether this step's gradients held NaN or inf.

    Returns
    -------
    state : dict
        A new dict; ``state`` is not changed.

    Raises
    ------
    TypeError
        If ``state`` is not a dict, a field has the wrong type, or ``found_inf`` is not a
        bool (Python or NumPy).
    ValueError
        If ``state`` misses a key, has an unknown one, or a field is out of its range.
    """
    where = "mixed_precision.scaler_update"
    _check_scaler(where, "state", state)
    return _scaler_update(state, _checks.boolean(where, "found_inf", found_inf))


@contract(example=lambda rng: {"grads": {"W": rng.standard_normal((3, 4)).astype(np.float16),
                                         "b": rng.standard_normal(4).astype(np.float16)},
                               "scale": 256.0},
          lenient={"grads": ("missing_key", "extra_key")})      # any tree is a valid one
def unscale(grads, scale: float):
    r"""Divide the (scaled, low-precision) gradients by the loss scale, in float32, and report
    whether any is NaN or inf.

    $$ g \leftarrow \mathrm{float32}(g) / S, \qquad
       \text{found\_inf} = \exists\, i: g_i \notin \mathbb{R} $$

    Parameters
    ----------
    grads : dict
        Gradient tree of floating-point arrays; NaN and inf are allowed (they are what this
        detects).
    scale : float
        The loss scale $S$, in [`MIN_SCALE`, `MAX_SCALE`].

    Returns
    -------
    grads : dict
        New tree, every leaf float32.
    found_inf : bool
        True if any unscaled value is NaN or inf.

    Raises
    ------
    TypeError
        If ``grads`` is not a dict of floating-point arrays or ``scale`` is not a number.
    ValueError
        If ``scale`` is not finite or out of its range.
    """
    where = "mixed_precision.unscale"
    _checks.float_tree(where, "grads", grads, finite=False)
    return _unscale(where, grads, _checks.real(where, "scale", scale, MIN_SCALE,
                                               MAX_SCALE))


def _example_loss_and_grads(params, dloss):
    """Loss ``sum |w|^2 / 2`` over a flat dict, in the compute format, and its gradient times
    ``dloss``."""
    loss = sum(float(np.sum(w.astype(np.float32) ** 2)) / 2 for w in params.values())
    return loss, {k: w * np.asarray(dloss, w.dtype) for k, w in params.items()}


def _example_sgd(params, grads, state):
    return {k: w - 0.1 * grads[k] for k, w in params.items()}, state


@contract(example=lambda rng: {"master": {"w": rng.standard_normal(3).astype(np.float32)},
                               "loss_and_grads": _example_loss_and_grads,
                               "optimizer_step": _example_sgd, "opt_state": None,
                               "scaler": scaler_init(2.0**8), "dtype": "float16"},
          lenient={"scaler": ("none",),                         # None: no loss scaling
                   "master": ("missing_key", "extra_key")},     # any tree is a valid one
          opaque=("opt_state",))                                # the optimizer's business
def train_step(master, loss_and_grads, optimizer_step, opt_state, scaler: dict | None,
               dtype: str = "float16"):
    r"""One mixed-precision step: cast the master weights to the compute format, compute the
    gradients of the scaled loss there, unscale them in float32 and, unless they overflowed,
    update the master weights.

    $$ \theta_c = \mathrm{cast}(\theta), \quad g = \nabla_{\theta_c} (S \cdot L) / S, \quad
       \theta \leftarrow \begin{cases} \theta & g \text{ not finite (skip)} \\
       \mathrm{opt}(\theta, g) & \text{otherwise} \end{cases} $$

    Parameters
    ----------
    master : dict
        Master weights: a tree of finite float32 (or float64) arrays.
    loss_and_grads : callable
        ``loss_and_grads(params, dloss) -> (loss, grads)``: computes in whatever dtype
        ``params`` has, with ``dloss`` (the scale $S$) fed into the loss's backward; ``grads``
        has the structure and shapes of ``master`` and may overflow to inf.
    optimizer_step : callable
        ``optimizer_step(params, grads, state) -> (params, state)``: updates the master
        weights with float32 gradients.
    opt_state : object
        The optimizer's state, passed through to ``optimizer_step``.
    scaler : dict or None
        Loss-scaler state (`scaler_init`), or None for no loss scaling (the usual choice with
        bfloat16).
    dtype : str, default 'float16'
        Compute format: ``"float16"``, ``"bfloat16"`` or ``"float32"``.

    Returns
    -------
    master : dict
        The new master weights (the same object when the step is skipped).
    opt_state : object
        The optimizer's new state (unchanged when skipped).
    scaler : dict or None
        The updated scaler state.
    info : dict
        ``{"loss": float, "skipped": bool, "scale": the scale used}``.

    Raises
    ------
    TypeError
        If ``master`` is not a tree of float32/float64 arrays, a function is not callable or
        returns the wrong kind of value, ``scaler`` is malformed or ``dtype`` is not a string.
    ValueError
        If ``master`` holds NaN or inf or overflows the compute format, ``scaler`` misses a
        key or holds a value out of range, ``dtype`` is unknown, the gradients do not match
        ``master``, or they hold NaN or inf while loss scaling is off (nothing to lower, so
        the step cannot be skipped safely).
    """
    where = "mixed_precision.train_step"
    flat = _checks.float_tree(where, "master", master)
    for path, leaf in flat.items():
        if leaf.dtype.itemsize < 4:
            raise TypeError(f"{where}: argument master[{path!r}] must be float32 or float64 "
                            f"(master weights keep the precision), got dtype {leaf.dtype}")
    _checks.function(where, "loss_and_grads", loss_and_grads)
    _checks.function(where, "optimizer_step", optimizer_step)
    if scaler is not None:
        _check_scaler(where, "scaler", scaler)
    dtype = _checks.choice(where, "dtype", dtype, DTYPES)

    scale = 1.0 if scaler is None else scaler["scale"]
    compute = map_trees(where, lambda p: _cast(where, p, dtype, name="master"), master)
    with np.errstate(over="ignore", invalid="ignore"):
        loss, grads = _pair(where, "loss_and_grads", loss_and_grads(compute, scale), flat,
                            finite=False)
    if dtype == "bfloat16":
        grads = map_trees(where, _to_bfloat16, grads)
    grads, found_inf = _unscale(where, grads, scale)
    info = {"loss": loss, "skipped": found_inf, "scale": scale}
    if scaler is not None:
        scaler = _scaler_update(scaler, found_inf)
    if found_inf:
        if scaler is None:
            raise ValueError(f"{where}: the gradients that argument 'loss_and_grads' returned "
                             f"hold NaN or inf and loss scaling is off, so the step cannot be "
                             f"skipped safely")
        return master, opt_state, scaler, info
    result = optimizer_step(master, grads, opt_state)
    if not isinstance(result, tuple) or len(result) != 2:
        raise TypeError(f"{where}: argument 'optimizer_step' must return a pair "
                        f"(params, state), got {_checks._describe(result)}")
    new, opt_state = result
    try:
        _checks.same_tree(where, "params", _checks.float_tree(where, "params", new),
                          "master", flat)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: argument 'optimizer_step' returned bad parameters: "
                        f"{str(exc).removeprefix(f'{where}: argument ')}") from None
    return new, opt_state, scaler, info


def _check_scaler(where: str, name: str, state) -> None:
    """A loss-scaler state: the five keys, each in its range."""
    _checks.keys(where, state, SCALER_KEYS, name)
    _checks.real(where, f"{name}['scale']", state["scale"], MIN_SCALE, MAX_SCALE)
    _checks.real(where, f"{name}['growth_factor']", state["growth_factor"], 1.0,
                 low_open=True)
    _checks.real(where, f"{name}['backoff_factor']", state["backoff_factor"], 0.0, 1.0,
                 low_open=True, high_open=True)
    interval = _checks.integer(where, f"{name}['growth_interval']", state["growth_interval"],
                               low=1)
    tracker = _checks.integer(where, f"{name}['growth_tracker']", state["growth_tracker"], low=0)
    if tracker >= interval:
        raise ValueError(f"{where}: argument {name}['growth_tracker'] must be < "
                         f"growth_interval = {interval}, got {tracker}")


def _pair(where: str, fn_name: str, result, flat: dict, finite: bool):
    """``(loss as a float, grads)`` from ``loss_and_grads``: a number and a float tree shaped
    like the master weights (dtypes may differ: they are the compute format's)."""
    loss, grads = _checks.loss_and_grads_result(where, fn_name, result)
    try:
        got = _checks.float_tree(where, "grads", grads, finite=finite)
        _checks.same_tree(where, "grads", got, "master", flat, same_dtype=False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: argument {fn_name!r} returned bad gradients: "
                        f"{str(exc).removeprefix(f'{where}: argument ')}") from None
    return float(loss), grads


# Unchecked cores.

def _to_bfloat16(x: np.ndarray) -> np.ndarray:
    x32 = np.asarray(x, dtype=np.float32)
    bits = x32.view(np.uint32).astype(np.uint64)
    lsb = (bits >> 16) & 1                      # round half to even on the kept 16 bits
    rounded = ((bits + 0x7FFF + lsb) & 0xFFFF0000).astype(np.uint32)
    out = rounded.view(np.float32)                # the shape of x32 already
    return np.where(np.isnan(x32), x32, out)    # NaN stays NaN (rounding could make it inf)


def _cast(where: str, x: np.ndarray, dtype: str, name: str = "x") -> np.ndarray:
    """``x`` (finite) in the format ``dtype``; a value that overflows it is an error."""
    with np.errstate(over="ignore"):
        y = x.astype(np.float16) if dtype == "float16" else \
            _to_bfloat16(x) if dtype == "bfloat16" else x.astype(np.float32)
    if y.size and not (np.isfinite(y.min()) and np.isfinite(y.max())):
        raise ValueError(f"{where}: argument {_checks._label(name)} holds values beyond "
                         f"{dtype}'s range (largest |x| = {float(np.abs(x).max()):g}); they "
                         f"would become inf")
    return y


def _scaler_update(state: dict, found_inf: bool) -> dict:
    new = dict(state)
    if found_inf:
        new["scale"] = max(state["scale"] * state["backoff_factor"], MIN_SCALE)
        new["growth_tracker"] = 0
    elif state["growth_tracker"] + 1 == state["growth_interval"]:
        grown = state["scale"] * state["growth_factor"]
        new["scale"] = grown if grown <= MAX_SCALE else state["scale"]
        new["growth_tracker"] = 0
    else:
        new["growth_tracker"] = state["growth_tracker"] + 1
    return new


def _unscale(where: str, grads, scale: float):
    with np.errstate(over="ignore", invalid="ignore"):
        g32 = map_trees(where, lambda g: g.astype(np.float32) / np.float32(scale), grads)
    found_inf = not all(np.all(np.isfinite(g)) for g in _checks.float_tree(
        where, "grads", g32, finite=False).values())
    return g32, found_inf
