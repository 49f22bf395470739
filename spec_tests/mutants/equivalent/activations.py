"""mutmut survivors of the activations group judged equivalent: nothing a test can observe."""

SPECIFIC = {
    ("out = np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)",
     "out = np.where(x > 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(x.dtype, copy=False)"):
        "at x = 0 both branches of the stable sigmoid give exactly 1/2",
    ('return _backward(_checks.dout_like("gelu.backward", dout, cache[0].shape), cache)',
     'return _backward(_checks.dout_like("gelu.backward", dout, cache[1].shape), cache)'):
        "cache[0] and cache[1] (x and Phi(x)) have the same shape",
    ('return _backward(_checks.dout_like("gelu_tanh.backward", dout, cache[0].shape), cache)',
     'return _backward(_checks.dout_like("gelu_tanh.backward", dout, cache[1].shape), cache)'):
        "cache[0] and cache[1] (x and sigma(2u)) have the same shape",
}
