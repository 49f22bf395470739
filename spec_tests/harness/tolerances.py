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


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol_scale: float
    why: str
    underflow: float = 0.0   # absolute: below this a format has no normal numbers left


#: float64 against the float64 PyTorch oracle: both compute the same formula in double
#: precision, so only rounding separates them.
F64 = Tolerance(rtol=1e-9, atol_scale=1e-12, why="float64 vs float64 autograd: rounding only")

#: central finite differences with step h = 1e-6 (scaled by |x|): truncation error ~h^2 and
#: rounding error ~1e-16/h, so about 1e-10 of the scale; 1e-6 leaves room for curvature.
FD = Tolerance(rtol=1e-6, atol_scale=1e-7, why="central differences, h = 1e-6 * max(1, |x|)")
FD_STEP = 1e-6

#: a float32 forward pass against the float64 oracle: float32 has a 24-bit mantissa
#: (6e-8 unit roundoff) and a handful of operations accumulate a few units of it.
#: Below float32's smallest normal number (1.2e-38) there is no relative precision at all; a
#: factor that underflows there, times inputs up to 1e3, stays under 1e-35.
F32 = Tolerance(rtol=2e-5, atol_scale=2e-6, why="float32 forward vs float64 oracle",
                underflow=1e-35)


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


def assert_close(actual, expected, tol: Tolerance = F64, name: str = "value",
                 reference_scale: float = 0.0, floor=0.0) -> None:
    """Assert elementwise closeness; the message gives the worst element and both values.

    ``floor``: an extra absolute allowance per element (broadcast against ``expected``), for
    a computation whose rounding is known not to be relative to its result
    (:func:`adam_step_floor`)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{name}: shape {actual.shape} differs from the oracle's {expected.shape}")
    assert np.all(np.isfinite(actual)), f"{name}: has NaN or inf values: {actual}"
    if expected.size == 0:
        return
    scale = max(float(np.max(np.abs(expected))), reference_scale)
    err = np.abs(actual.astype(np.float64) - expected)
    allowed = tol.rtol * np.abs(expected) + tol.atol_scale * scale + tol.underflow + floor
    if np.all(err <= allowed):
        return
    worst = np.unravel_index(np.argmax(err - allowed), err.shape)
    extra = "" if np.all(np.asarray(floor) == 0) else \
        f", + a rounding floor of at most {np.max(floor):.3g}"
    raise AssertionError(
        f"{name}: {int(np.sum(err > allowed))} of {err.size} element(s) differ from the oracle "
        f"beyond rtol={tol.rtol:g} (+ {tol.atol_scale:g} x scale {scale:.3g}{extra}); "
        f"worst at index {tuple(int(i) for i in worst)}: got {actual[worst]!r}, "
        f"expected {expected[worst]!r} ({tol.why})")


def assert_grads_close(grads: dict, expected: dict, tol: Tolerance = F64,
                       upstream=None) -> None:
    """Every expected gradient must be present, and no other; each compared in full."""
    upstream_scale = 0.0 if upstream is None else float(np.max(np.abs(upstream), initial=0.0))
    assert isinstance(grads, dict), f"backward must return a dict of gradients, got {type(grads)}"
    assert set(grads) == set(expected), (
        f"backward returned gradients for {sorted(grads)}, expected exactly {sorted(expected)}")
    for key in expected:
        assert_close(grads[key], expected[key], tol, name=f"gradient of {key!r}",
                     reference_scale=upstream_scale)
