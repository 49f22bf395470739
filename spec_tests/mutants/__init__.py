"""Deliberately wrong implementations, each the reference with one classic bug.

The meta-tests plug each one in with ``--impl`` and require the spec tests to catch it; they
are the evidence that the suite can fail.  Each module re-exports every reference component
and replaces one.
"""

#: mutant module -> the spec-test file that must catch it
MUTANTS = {
    "softmax_no_shift": "spec_tests/test_softmax.py",
    "embedding_assigns": "spec_tests/test_embedding.py",
    "layer_norm_unbiased": "spec_tests/test_norms.py",
    "gelu_is_tanh": "spec_tests/test_activations.py",
}
