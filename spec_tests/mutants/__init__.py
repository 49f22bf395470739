"""Deliberately wrong implementations, each the reference with one classic bug.

The meta-tests plug each one in with ``--llmspec-impl`` and require the spec tests to catch it; they
are the evidence that the suite can fail.  Each module re-exports every reference component
and replaces one.
"""

#: mutant module -> the spec-test module that must catch it
MUTANTS = {
    "softmax_no_shift": "llmref.spec.test_softmax",
    "embedding_assigns": "llmref.spec.test_embedding",
    "layer_norm_unbiased": "llmref.spec.test_norms",
    "gelu_is_tanh": "llmref.spec.test_activations",
    "pretokenize_isspace": "llmref.spec.test_gpt2_tokenizer",
}
