"""Every tolerance the suite uses, in one place, with the reason for each.

A comparison passes when, elementwise, ``|actual - expected| <= rtol * |expected| + floor``
where ``floor = atol_scale * max(max|expected|, reference_scale)``.  The floor is relative to
the size of the whole array and, for gradients, to the size of the upstream gradient: that is
the scale rounding works at in the chain rule (``1 - tanh(x)^2`` near saturation is a
difference of two numbers near 1, exact only to 1e-16 times the upstream value).  So an
element that is 1e-14 of the largest one is not held to 1e-9 of itself (its value comes from
a cancellation and has no more digits than that), yet nothing is compared with a fixed
absolute tolerance that would hide an error in a tensor of small magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from llmref.spec.harness import findings


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol_scale: float
    why: str
    underflow: float = 0.0   # absolute: below this a format has no normal numbers left
    label: str = ""          # what the figures of a claim test call it (harness.findings)


#: float64 against the float64 PyTorch oracle: both compute the same formula in double
#: precision, so only rounding separates them.
F64 = Tolerance(rtol=1e-9, atol_scale=1e-12, why="float64 vs float64 autograd: rounding only",
                label="float64")

#: central finite differences with step h = 1e-6 (scaled by |x|): truncation error ~h^2 and
#: rounding error ~1e-16/h, so about 1e-10 of the scale; 1e-6 leaves room for curvature.
FD = Tolerance(rtol=1e-6, atol_scale=1e-7, why="central differences, h = 1e-6 * max(1, |x|)",
               label="finite differences")
FD_STEP = 1e-6

#: a float32 forward pass against the float64 oracle: float32 has a 24-bit mantissa
#: (6e-8 unit roundoff) and a handful of operations accumulate a few units of it.
#: Below float32's smallest normal number (1.2e-38) there is no relative precision at all; a
#: factor that underflows there, times inputs up to 1e3, stays under 1e-35.
F32 = Tolerance(rtol=2e-5, atol_scale=2e-6, why="float32 forward vs float64 oracle",
                underflow=1e-35, label="float32")


#: Adam and AdamW trajectories against torch.optim, step for step in float64 (the case that
#: set this: hypothesis' seed 777 in the thorough profile, lr 0.5, betas (1e-9, 0)).
#: Two correct float64 implementations round the first moment differently, and not relative
#: to the moment itself: torch computes m_t = lerp(m_{t-1}, g_t, 1 - beta1) as
#: g_t - (g_t - m_{t-1}) (1 - (1 - beta1)), and 1 - beta1 is rounded to float64 first, so the
#: effective beta1 is off by up to 1.1e-16 absolute (a relative 1e-7 at beta1 = 1e-9).  m_t is
#: then exact only to about u (|m_{t-1}| + |g_t|), u = 1.1e-16, and the update divides it by
#: sqrt(v_hat_t) + eps.  When the gradient drops by orders of magnitude in one step and
#: beta2 -> 0 makes sqrt(v_t) ~ |g_t|, the division amplifies that error by |m_{t-1}| / |g_t|:
#: 21.5 / 2e-6 ~ 1e7 in the seed-777 case, a 1.5e-10 difference in a weight that later crosses
#: zero (0.04), where rtol 1e-9 of its current value allows only 4e-11.
#: So a step may differ by ADAM_ROUNDING times its sensitivity (:func:`adam_step_floor`)
#:     s_t = |theta_{t-1}| + lr (|m_{t-1}| + |g_t|) / ((1 - beta1^t) (sqrt(v_hat_t) + eps)),
#:     v_hat_t = v_t / (1 - beta2^t)
#: (the first term for the subtraction, the second for an update computed from inputs of that
#: size, which also bounds the update itself), and a trajectory by the sum of its steps' s_t,
#: per element.  ADAM_ROUNDING = 4u: a step rounds the lerp coefficient (u/2), its product and
#: difference (u each), the square root and the division (u/2 each, through the update); the
#: seed-777 element used 0.13 u of its bound.  With usual betas |m| / sqrt(v) stays near 1,
#: s_t ~ |theta| + lr, and the floor (~1e-15 after 25 steps) is far below rtol 1e-9: it only
#: widens where the arithmetic itself is ill-conditioned.
ADAM_ROUNDING = 4 * (np.finfo(np.float64).eps / 2)


def adam_step_floor(theta_prev, m_prev, grad, v, step: int, lr: float, betas, eps: float):
    """The elementwise rounding allowance of one Adam step (see :data:`ADAM_ROUNDING`), from
    the oracle's values: the parameter before the step, the first moment before it, the
    gradient the moments saw (with L2 decay added, for Adam) and the second moment after."""
    b1, b2 = betas
    v_hat_root = np.sqrt(np.asarray(v) / (1.0 - b2**step))
    sensitivity = np.abs(theta_prev) + lr * (np.abs(m_prev) + np.abs(grad)) / (
        (1.0 - b1**step) * (v_hat_root + eps))
    return ADAM_ROUNDING * sensitivity


def _num(value) -> str:
    """A number with every digit that matters (10 significant), no NumPy type noise."""
    v = float(value)
    return "nan" if v != v else f"{v:.10g}"


def _row(values) -> str:
    return "[" + ", ".join(_num(v) for v in values) + "]"


def _index(idx) -> str:
    return "(" + ", ".join(str(int(i)) for i in idx) + ("," if len(idx) == 1 else "") + ")"


#: arrays up to this many elements are shown whole in a failure message
SHOW_WHOLE = 12
#: elements shown on each side of the worst one along the last axis
NEIGHBOURS = 2


def describe_difference(actual: np.ndarray, expected: np.ndarray, bad: np.ndarray,
                        worst: tuple) -> list:
    """Lines that show a wrong array: shape and dtype, the worst element with its index, and
    the whole array when small or a few neighbours along the last axis when large."""
    a, e = np.asarray(actual), np.asarray(expected)
    lines = [f"  shape {a.shape}, dtype {a.dtype}"]
    if e.ndim == 0:
        err = abs(float(a) - float(e))
        lines.append(f"  got {_num(a)}, expected {_num(e)}"
                     + (f" (off by {_num(err)})" if np.isfinite(err) else ""))
        return lines
    err = abs(float(a[worst]) - float(e[worst]))
    rel = f", relative error {err / abs(float(e[worst])):.3g}" \
        if float(e[worst]) and np.isfinite(err) else ""
    off = f" (off by {_num(err)}{rel})" if np.isfinite(err) else ""
    lines.append(f"  worst at index {_index(worst)}: got {_num(a[worst])}, expected "
                 f"{_num(e[worst])}{off}")
    if e.size <= SHOW_WHOLE:
        flat = " (flattened)" if e.ndim > 1 else ""
        lines += [f"  got      {_row(a.ravel())}{flat}", f"  expected {_row(e.ravel())}",
                  f"  wrong    {_row(bad.ravel().astype(int))}  (1 = outside the tolerance)"]
        return lines
    lo = max(0, worst[-1] - NEIGHBOURS)
    hi = min(e.shape[-1], worst[-1] + NEIGHBOURS + 1)
    head = tuple(worst[:-1])
    lines += [f"  around it, index {_index(head + (lo,))} to {_index(head + (hi - 1,))}:",
              f"    got      {_row(a[head][lo:hi])}",
              f"    expected {_row(e[head][lo:hi])}"]
    return lines


def compare(actual, expected, tol: Tolerance = F64, name: str = "value",
            reference_scale: float = 0.0, floor=0.0) -> str | None:
    """None when ``actual`` agrees with ``expected`` elementwise, else the failure message.

    The message starts with one summary line (what, how many elements, the tolerance), then
    shows shape and dtype, the worst element with its index and both values in full, and
    either the whole array (small ones) or its neighbours along the last axis.

    ``floor``: an extra absolute allowance per element (broadcast against ``expected``), for
    a computation whose rounding is known not to be relative to its result
    (:func:`adam_step_floor`)."""
    if actual is None or isinstance(actual, (dict, str, bytes)):
        return f"{name}: expected an array, got {type(actual).__name__}: {actual!r}"[:400]
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return f"{name}: got shape {actual.shape}, expected shape {expected.shape}"
    if actual.dtype.kind not in "fiub":
        return f"{name}: got dtype {actual.dtype}, expected a floating-point array"
    if expected.size == 0:
        return None
    finite = np.isfinite(actual)
    if not np.all(finite):
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        bad = ~finite
        return "\n".join([f"{name}: {int(np.sum(bad))} of {bad.size} element(s) are NaN or inf"]
                         + describe_difference(actual, expected, bad, where))
    scale = max(float(np.max(np.abs(expected))), reference_scale)
    err = np.abs(actual.astype(np.float64) - expected)
    allowed = tol.rtol * np.abs(expected) + tol.atol_scale * scale + tol.underflow + floor
    bad = err > allowed
    if not np.any(bad):
        findings.note_comparison(tol, actual, expected, allowed)
        return None
    worst = tuple(int(i) for i in np.unravel_index(np.argmax(err - allowed), err.shape))
    extra = "" if np.all(np.asarray(floor) == 0) else \
        f", + a rounding floor of at most {np.max(floor):.3g}"
    return "\n".join(
        [f"{name}: {int(np.sum(bad))} of {bad.size} element(s) differ beyond the tolerance "
         f"(rtol {tol.rtol:g}, floor {tol.atol_scale:g} x {scale:.3g}{extra}: {tol.why})"]
        + describe_difference(actual, expected, bad, worst))


def assert_close(actual, expected, tol: Tolerance = F64, name: str = "value",
                 reference_scale: float = 0.0, floor=0.0) -> None:
    """Assert elementwise closeness; the message shows the worst element, its index, both
    values in full and its neighbours (see :func:`compare`)."""
    message = compare(actual, expected, tol, name, reference_scale, floor)
    if message is not None:
        raise AssertionError(message)


def grad_errors(grads: dict, expected: dict, tol: Tolerance = F64, upstream=None,
                label: str = "backward") -> dict:
    """``{key: failure message}`` for every gradient that is missing, extra or wrong."""
    upstream_scale = 0.0 if upstream is None else float(np.max(np.abs(upstream), initial=0.0))
    if not isinstance(grads, dict):
        return {"*": f"{label} must return a dict of gradients, got {type(grads).__name__}"}
    errors = {}
    for key in sorted(set(expected) - set(grads), key=str):
        errors[key] = f"{label}: no gradient for {key!r} (expected keys {sorted(expected)})"
    for key in sorted(set(grads) - set(expected), key=str):
        errors[key] = (f"{label}: a gradient for {key!r}, which is not a differentiable input "
                       f"or parameter (expected keys {sorted(expected)})")
    for key in expected:
        if key in grads:
            message = compare(grads[key], expected[key], tol,
                              name=f"{label}: gradient of {key!r}",
                              reference_scale=upstream_scale)
            if message is not None:
                errors[key] = message
    return errors


def grads_message(errors: dict, keys) -> str:
    """One line naming which gradients are wrong and which agree, then the details of the
    wrong ones."""
    wrong = [k for k in keys if k in errors] + [k for k in errors if k not in keys]
    right = [k for k in keys if k not in errors]
    head = "wrong gradient(s): " + ", ".join(map(repr, wrong))
    if right:
        head += "; correct: " + ", ".join(map(repr, right))
    return "\n".join([head, *(errors[k] for k in wrong)])


def assert_grads_close(grads: dict, expected: dict, tol: Tolerance = F64,
                       upstream=None, label: str = "backward") -> None:
    """Every expected gradient must be present, and no other; each compared in full, and the
    message names every wrong one (not just the first)."""
    errors = grad_errors(grads, expected, tol, upstream, label)
    if errors:
        raise AssertionError(grads_message(errors, list(expected)))
