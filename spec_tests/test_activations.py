"""Element-wise activations: ReLU, exact GELU, tanh-approximate GELU, sigmoid, tanh, SiLU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given

from llmref.spec.harness import strategies as hs
from llmref.spec.harness.checks import (
    check_against_finite_differences,
    check_against_torch,
    check_float32_forward,
)
from llmref.spec.harness.tolerances import F64, assert_close

ORACLES = {
    "relu": torch.relu,
    "gelu": lambda x: F.gelu(x, approximate="none"),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "silu": lambda x: F.silu(x),
}
NAMES = sorted(ORACLES)

# The same two GELUs written without a cancelling 1 + erf / 1 + tanh, for the float32 check,
# whose tolerance is relative to values that F.gelu gets wrong in the far negative tail.
ACCURATE = {
    **ORACLES,
    "gelu": lambda x: x * 0.5 * torch.special.erfc(-x / np.sqrt(2.0)),
    "gelu_tanh": lambda x: x * torch.sigmoid(2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)),
}


def _oracle_rounding(name, x):
    """PyTorch's GELUs form 1 + erf(x / sqrt 2) and 1 + tanh(u), which cancel for negative x:
    its results are only good to about 1e-16 * |x| in absolute terms there (ours use erfc and
    a sigmoid and keep full relative accuracy).  The comparison floor is set at that scale for
    the two GELUs and at none for the rest.  Beyond |x| = 40 both sums saturate exactly (to 0
    or 2), so elements there (the +-1e4 edges) do not set the scale."""
    if not name.startswith("gelu"):
        return 0.0
    moderate = np.abs(x)[np.abs(x) < 40.0]
    return float(np.max(moderate, initial=0.0))


def _args(a):
    return (a["x"],), {}


@pytest.mark.parametrize("name", NAMES)
@given(x=hs.float_arrays(min_dims=0), seed=hs.seeds)
def test_activation_matches_torch(impl, name, x, seed):
    check_against_torch(impl, name, {"x": x}, _args, ORACLES[name], seed,
                        rounding_scale=_oracle_rounding(name, x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("value", [-1.3, 0.7])
def test_activation_of_a_0d_array_matches_torch(impl, name, value):
    """A 0-d input (one number as an array) has the same value and gradient as torch's."""
    check_against_torch(impl, name, {"x": np.array(value)}, _args, ORACLES[name], 0)


@pytest.mark.parametrize("name", NAMES)
@given(x=hs.float_arrays(max_dims=2, max_side=5, edges=False), seed=hs.seeds)
def test_activation_finite_differences(impl, name, x, seed):
    assume(name != "relu" or np.all(np.abs(x) > 1e-4))      # stay off the kink at 0
    check_against_finite_differences(impl, name, {"x": x}, _args, ["x"], seed)


@pytest.mark.parametrize("name", NAMES)
@given(x=hs.float_arrays(dtype=np.float32))
def test_activation_float32(impl, name, x):
    check_float32_forward(impl, name, {"x": x}, _args, ACCURATE[name])


@pytest.mark.parametrize(("name", "approximate"), [("gelu", "none"), ("gelu_tanh", "tanh")])
def test_gelu_variants_each_match_their_own_torch_variant(impl, name, approximate):
    """Exact and tanh GELU are different functions: each equals torch's matching variant to
    1e-12 and differs from the other variant by far more than that."""
    x = np.linspace(-6, 6, 1201)
    ours = impl(f"{name}.forward")(x)[0]
    t = torch.from_numpy(x)
    own = F.gelu(t, approximate=approximate).numpy()
    other = F.gelu(t, approximate="tanh" if approximate == "none" else "none").numpy()
    assert np.max(np.abs(ours - own)) < 1e-12
    assert np.max(np.abs(ours - other)) > 1e-4


def test_relu_derivative_at_zero_is_zero(impl):
    x = np.array([-1.0, 0.0, -0.0, 1.0])
    _, cache = impl("relu.forward")(x)
    np.testing.assert_array_equal(
        impl("relu.backward")(np.array([2.0, 3.0, 4.0, 5.0]), cache)["x"], [0.0, 0.0, 0.0, 5.0])


#: the value and the slope of each activation at 0 (the conventions its docstring states)
AT_ZERO = {"relu": (0.0, 0.0), "gelu": (0.0, 0.5), "gelu_tanh": (0.0, 0.5),
           "sigmoid": (0.5, 0.25), "tanh": (0.0, 1.0), "silu": (0.0, 0.5)}


@pytest.mark.parametrize("name", NAMES)
def test_value_and_slope_at_zero(impl, name):
    """At x = 0 and x = -0.0: relu 0 with slope 0 (not 1), both GELUs and SiLU 0 with slope
    1/2, sigmoid 1/2 with slope 1/4, tanh 0 with slope 1."""
    value, slope = AT_ZERO[name]
    x = np.array([0.0, -0.0])
    out, cache = impl(f"{name}.forward")(x)
    dx = impl(f"{name}.backward")(np.array([3.0, -2.0]), cache)["x"]
    assert_close(out, [value, value], F64, name=f"{name}(0)")
    assert_close(dx, [3.0 * slope, -2.0 * slope], F64, name=f"{name}'(0)", reference_scale=1.0)


def test_gelu_keeps_relative_accuracy_in_the_far_negative_tail(impl):
    """gelu(-10) = -10 * Phi(-10) = -7.6e-23, a value that 1 + erf(x / sqrt 2) cannot
    represent; Phi(-10) = 7.619853024160527e-24 was computed with mpmath at 30 digits."""
    out, _ = impl("gelu.forward")(np.array([-10.0]))
    np.testing.assert_allclose(out, [-10.0 * 7.619853024160527e-24], rtol=1e-12)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "gelu", "gelu_tanh", "silu"])
def test_activation_extreme_inputs_are_finite(impl, name):
    """No overflow warning or NaN at +-1e4 (sigmoid is written to avoid exp overflow)."""
    x = np.array([-1e4, -50.0, 0.0, 50.0, 1e4])
    with np.errstate(over="raise", invalid="raise"):
        check_against_torch(impl, name, {"x": x}, _args, ORACLES[name], seed=0,
                            rounding_scale=_oracle_rounding(name, x))


@pytest.mark.parametrize("x_dtype,dout_dtype", [(np.float32, np.float64),
                                                (np.float64, np.float32)])
def test_gelu_gradient_takes_the_promoted_dtype(impl, x_dtype, dout_dtype):
    """gelu.backward's gradient has the promoted dtype of dout and x, as its docstring says:
    float32 with float64, either way round, gives float64, with torch's float64 values (no
    float32 rounding on the way)."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4)).astype(x_dtype)
    dout = rng.standard_normal((3, 4)).astype(dout_dtype)
    _, cache = impl("gelu.forward")(x)
    dx = impl("gelu.backward")(dout, cache)["x"]
    assert dx.dtype == np.float64
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    F.gelu(xt).backward(torch.from_numpy(dout.astype(np.float64)))
    assert_close(dx, xt.grad.numpy(), F64, name="dx")


@pytest.mark.reference_only
def test_gelu_cache_holds_phi_as_float64(impl):
    """The reference's GELU cache holds Phi(x) as a float64 array, as its docstring's Cache
    section says, for float32 and 0-d inputs too (the CDF comes from a frompyfunc ufunc,
    which returns an array of Python objects, or a bare float for a 0-d input)."""
    for x in (np.array([[-1.0, 0.0, 2.0]], dtype=np.float32), np.array(0.5)):
        _, (_, phi) = impl("gelu.forward")(x)
        assert isinstance(phi, np.ndarray) and phi.dtype == np.float64, (type(phi), phi)
