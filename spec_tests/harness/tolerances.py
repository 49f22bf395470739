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


def assert_close(actual, expected, tol: Tolerance = F64, name: str = "value",
                 reference_scale: float = 0.0) -> None:
    """Assert elementwise closeness; the message gives the worst element and both values."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (
        f"{name}: shape {actual.shape} differs from the oracle's {expected.shape}")
    assert np.all(np.isfinite(actual)), f"{name}: has NaN or inf values: {actual}"
    if expected.size == 0:
        return
    scale = max(float(np.max(np.abs(expected))), reference_scale)
    err = np.abs(actual.astype(np.float64) - expected)
    allowed = tol.rtol * np.abs(expected) + tol.atol_scale * scale + tol.underflow
    if np.all(err <= allowed):
        return
    worst = np.unravel_index(np.argmax(err - allowed), err.shape)
    raise AssertionError(
        f"{name}: {int(np.sum(err > allowed))} of {err.size} element(s) differ from the oracle "
        f"beyond rtol={tol.rtol:g} (+ {tol.atol_scale:g} x scale {scale:.3g}); "
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
