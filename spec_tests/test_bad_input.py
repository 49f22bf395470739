"""The reference's own error messages: the right exception type, and a message that names
the argument, what was expected and what was given, in the reference's exact words.

This is the reference's test, not a learner's spec: the wording is ours to keep, and another
implementation is graded only on the input contract (exception type, function and argument
named) by ``test_contract.py`` with ``--llmspec-contract``.  So these tests skip for any
implementation other than the reference (the ``reference_only`` marker).
"""

import re
import warnings

import numpy as np
import pytest

from llmref.transformer.gpt import GPTConfig

pytestmark = [pytest.mark.contract, pytest.mark.reference_only]

ACTIVATIONS = ["relu", "gelu", "gelu_tanh", "sigmoid", "tanh", "softmax", "log_softmax", "silu"]
X = np.zeros((2, 3))
W = np.zeros((5, 3))
LN = {"gamma": np.ones(3), "beta": np.zeros(3)}
NAN = np.array([[0.0, np.nan, 1.0]])
INF = np.array([[0.0, np.inf, 1.0]])

# (function, args, kwargs, exception, substrings the message must contain)
CASES = {
    "ids given as floats": ("embedding.forward", (np.array([[0.0, 1.0]]), {"W": W}), {},
                            TypeError, ["'ids'", "integer", "float64"]),
    "id equal to vocab size": ("embedding.forward", (np.array([[0, 5]]), {"W": W}), {},
                               ValueError, ["'ids'", "[0, 5)", "got 5"]),
    "negative id": ("embedding.forward", (np.array([[-1, 2]]), {"W": W}), {},
                    ValueError, ["'ids'", "[0, 5)", "got -1"]),
    "empty id batch": ("embedding.forward", (np.zeros((0, 4), dtype=np.int64), {"W": W}), {},
                       ValueError, ["'ids'", "empty", "(0, 4)"]),
    "table of wrong rank": ("embedding.forward", (np.array([1]), {"W": np.zeros(5)}), {},
                            ValueError, ["params['W']", "2 dimension", "(5,)"]),
    "table missing": ("embedding.forward", (np.array([1]), {}), {},
                      ValueError, ["'params'", "missing", "W"]),
    "sequence longer than the table": ("positional.forward", (6, {"W": W}), {},
                                       ValueError, ["'seq_len'", "<= 5", "got 6"]),
    "seq_len not an int": ("positional.forward", (2.0, {"W": W}), {},
                           TypeError, ["'seq_len'", "int", "2.0"]),
    "linear input width": ("linear.forward", (np.zeros((2, 4)), {"W": np.zeros((3, 2))}), {},
                           ValueError, ["'x'", "last dimension 3", "(2, 4)"]),
    "linear bias width": ("linear.forward",
                          (X, {"W": np.zeros((3, 2)), "b": np.zeros(3)}), {},
                          ValueError, ["params['b']", "(2,)", "(3,)"]),
    "linear unknown parameter": ("linear.forward",
                                 (X, {"W": np.zeros((3, 2)), "bias": np.zeros(2)}), {},
                                 ValueError, ["'params'", "unknown", "bias"]),
    "linear integer input": ("linear.forward", (np.zeros((2, 3), dtype=np.int64),
                                                {"W": np.zeros((3, 2))}), {},
                             TypeError, ["'x'", "floating-point", "int64"]),
    "linear NaN input": ("linear.forward", (NAN, {"W": np.zeros((3, 2))}), {},
                         ValueError, ["'x'", "finite", "NaN"]),
    "softmax of a list": ("softmax.forward", ([1.0, 2.0],), {},
                          TypeError, ["'x'", "NumPy array", "list"]),
    "softmax of an empty batch": ("softmax.forward", (np.zeros((0, 5)),), {},
                                  ValueError, ["'x'", "empty", "(0, 5)"]),
    "softmax of inf": ("softmax.forward", (INF,), {}, ValueError, ["'x'", "finite", "inf"]),
    "layer norm gamma width": ("layer_norm.forward",
                               (X, {"gamma": np.ones(4), "beta": np.zeros(3)}), {},
                               ValueError, ["params['gamma']", "(3,)", "(4,)"]),
    "layer norm eps zero": ("layer_norm.forward", (X, LN), {"eps": 0.0},
                            ValueError, ["'eps'", "> 0", "0.0"]),
    "rms norm NaN": ("rms_norm.forward", (NAN, {"gamma": np.ones(3)}), {},
                     ValueError, ["'x'", "finite", "NaN"]),
    "rms norm gamma width": ("rms_norm.forward", (X, {"gamma": np.ones(4)}), {},
                             ValueError, ["params['gamma']", "(3,)", "(4,)"]),
    "rms norm eps zero": ("rms_norm.forward", (X, {"gamma": np.ones(3)}), {"eps": 0.0},
                          ValueError, ["'eps'", "> 0", "0.0"]),
    "cross-entropy float targets": ("cross_entropy.forward", (X, np.array([0.0, 1.0])), {},
                                    TypeError, ["'targets'", "integer", "float64"]),
    "cross-entropy target out of range": ("cross_entropy.forward", (X, np.array([0, 3])), {},
                                          ValueError, ["'targets'", "[0, 3)", "got 3"]),
    "cross-entropy shape mismatch": ("cross_entropy.forward", (X, np.array([0, 1, 2])), {},
                                     ValueError, ["'targets'", "(2,)", "(3,)"]),
    "cross-entropy shape mismatch, 3-d logits": (
        "cross_entropy.forward", (np.zeros((2, 3, 4)), np.zeros((2, 4), dtype=np.int64)), {},
        ValueError, ["'targets'", "must have shape (2, 3)", "(2, 4)"]),
    "cross-entropy of 0-d logits": ("cross_entropy.forward", (np.array(1.0), np.array(0)), {},
                                    ValueError, ["'logits'", "at least 1 dimension", "()"]),
    "cross-entropy all ignored": ("cross_entropy.forward", (X, np.array([-100, -100])), {},
                                  ValueError, ["'targets'", "ignore_index=-100", "all 2"]),
    "mse shape mismatch": ("mse.forward", (X, np.zeros((3, 2))), {},
                           ValueError, ["'target'", "(2, 3)", "(3, 2)"]),
    "sinusoidal of a vector": ("sinusoidal.forward", (np.zeros(4),), {},
                               ValueError, ["'x'", "at least 2", "(4,)"]),
    "sinusoidal table of no positions": ("sinusoidal.table", (0, 4), {},
                                         ValueError, ["'seq_len'", "an int >= 1", "got 0"]),
    "sinusoidal table of a float width": ("sinusoidal.table", (3, 4.0), {},
                                          TypeError, ["'d_model'", "an int", "4.0"]),
    "sinusoidal table of a float length": ("sinusoidal.table", (3.0, 4), {},
                                           TypeError, ["'seq_len'", "an int", "3.0"]),
    "sinusoidal base zero": ("sinusoidal.table", (3, 4), {"base": 0.0},
                             ValueError, ["'base'", "> 0", "0.0"]),
    "positions without a table": ("positional.forward", (2, {}), {},
                                  ValueError, ["'params'", "missing", "W"]),
}
for _name, _call in (("softmax", "softmax.forward"), ("log_softmax", "log_softmax.forward"),
                     ("rms norm", "rms_norm.forward"), ("layer norm", "layer_norm.forward")):
    CASES[f"{_name} of a 0-d array"] = (
        _call, (np.array(1.0),) + (({"gamma": np.ones(1)},) if "rms" in _call else
                                   ({"gamma": np.ones(1), "beta": np.zeros(1)},)
                                   if "layer" in _call else ()), {},
        ValueError, ["'x'", "at least 1", "()"])

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((2, 1, 3, 4))
MHA = {"qkv": {"W": np.zeros((6, 18)), "b": np.zeros(18)},
       "proj": {"W": np.zeros((6, 6)), "b": np.zeros(6)}}
FFN = {"fc": {"W": np.zeros((6, 8)), "b": np.zeros(8)},
       "proj": {"W": np.zeros((8, 6)), "b": np.zeros(6)}}
CONFIG = GPTConfig(vocab_size=7, context_len=4, d_model=6, n_heads=2, n_layers=1)
# without biases and with RMSNorm (no beta): only the linear layers can hold a stray bias
CONFIG_RMS = GPTConfig(vocab_size=7, context_len=4, d_model=6, n_heads=2, n_layers=1,
                       bias=False, norm="rms")
#: the GPT's feed-forward width is the config's (4 d_model), unlike the standalone FFN's
FFN_GPT = {"fc": {"W": np.zeros((6, CONFIG.hidden)), "b": np.zeros(CONFIG.hidden)},
           "proj": {"W": np.zeros((CONFIG.hidden, 6)), "b": np.zeros(6)}}
BLOCK = {"ln1": {"gamma": np.ones(6), "beta": np.zeros(6)}, "attn": MHA,
         "ln2": {"gamma": np.ones(6), "beta": np.zeros(6)}, "ffn": FFN_GPT}
GPT = {"wte": {"W": RNG.standard_normal((7, 6))}, "wpe": {"W": RNG.standard_normal((4, 6))},
       "blocks": [BLOCK], "ln_f": {"gamma": np.ones(6), "beta": np.zeros(6)}}
GPT_RMS = {"wte": GPT["wte"], "wpe": GPT["wpe"], "ln_f": {"gamma": np.ones(6)},
           "blocks": [{"ln1": {"gamma": np.ones(6)}, "ln2": {"gamma": np.ones(6)},
                       "attn": {"qkv": {"W": np.zeros((6, 18))}, "proj": {"W": np.zeros((6, 6))}},
                       "ffn": {"fc": {"W": np.zeros((6, CONFIG_RMS.hidden))},
                               "proj": {"W": np.zeros((CONFIG_RMS.hidden, 6))}}}]}
CASES.update({
    "heads do not divide d_model": ("mha.forward", (np.zeros((1, 2, 6)), MHA, 4), {},
                                    ValueError, ["'n_heads'", "d_model = 6", "4"]),
    "mha on a 2-D input": ("mha.forward", (np.zeros((2, 6)), MHA, 2), {},
                           ValueError, ["'x'", "3 dimension", "(2, 6)"]),
    "padding mask of the wrong shape": ("attention.forward", (Q, Q, Q),
                                        {"key_padding_mask": np.zeros((2, 4), bool)},
                                        ValueError, ["'key_padding_mask'", "(2, 3)", "(2, 4)"]),
    "padding mask not boolean": ("attention.forward", (Q, Q, Q),
                                 {"key_padding_mask": np.zeros((2, 3), int)},
                                 TypeError, ["'key_padding_mask'", "boolean", "int64"]),
    "values of rank 3": ("attention.forward", (Q, Q, Q[0]), {},
                         ValueError, ["'v'", "must have 4 dimension(s)", f"{Q[0].shape}"]),
    "keys of rank 3": ("attention.forward", (Q, Q[0], Q), {},
                       ValueError, ["'k'", "must have 4 dimension(s)", f"{Q[0].shape}"]),
    "keys of another width": ("attention.forward", (Q, Q[..., :3], Q[..., :3]), {},
                              ValueError, ["'k'", "(2, 1, S, 4)", "(2, 1, 3, 3)"]),
    "unknown activation": ("ffn.forward", (np.zeros((1, 2, 6)), FFN), {"activation": "swish"},
                           ValueError, ["'activation'", "gelu_tanh", "'swish'"]),
    "sequence longer than the context": ("gpt.forward", (np.zeros((1, 5), int), GPT, CONFIG),
                                         {}, ValueError, ["'ids'", "length 5",
                                                          "context length 4"]),
    "token id equal to the vocabulary size": ("gpt.forward", (np.array([[1, 7]]), GPT, CONFIG),
                                              {}, ValueError, ["'ids'", "[0, 7)", "got 7"]),
    "ids without a batch axis": ("gpt.forward", (np.array([1, 2]), GPT, CONFIG), {},
                                 ValueError, ["'ids'", "(B, T)", "(2,)"]),
    "a block weight of the wrong shape inside the GPT": (
        "gpt.forward", (np.array([[1, 2]]), {**GPT, "blocks": [
            {**BLOCK, "attn": {**MHA, "qkv": {"W": np.zeros((6, 17)), "b": np.zeros(17)}}}]},
            CONFIG), {}, ValueError, ["params['blocks'][0]['attn']['qkv']['W']", "(6, 18)",
                                      "config", "(6, 17)"]),
    "a GPT with fewer blocks than n_layers": ("gpt.forward",
                                              (np.array([[1, 2]]), {**GPT, "blocks": []}, CONFIG),
                                              {}, ValueError, ["params['blocks']",
                                                               "n_layers = 1", "got 0"]),
    "a NaN weight deep in the GPT": (
        "gpt.forward", (np.array([[1, 2]]), {**GPT, "blocks": [
            {**BLOCK, "ffn": {**FFN_GPT, "proj": {"W": np.full((CONFIG.hidden, 6), np.nan),
                                                  "b": np.zeros(6)}}}]},
            CONFIG), {}, ValueError, ["params['blocks'][0]['ffn']['proj']['W']", "finite", "NaN"]),
    "key/value heads that do not divide the heads": (
        "mha.forward", (np.zeros((1, 2, 6)), MHA, 2), {"n_kv_heads": 4}, ValueError,
        ["'n_kv_heads'", "divide n_heads = 2", "4"]),
    "a fused projection too narrow for grouped-query heads": (
        "mha.forward", (np.zeros((1, 2, 6)), MHA, 2), {"n_kv_heads": 1}, ValueError,
        ["params['qkv']['W']", "n_heads + 2 * n_kv_heads = 4", "(6, 18)"]),
    "rotary positions of the wrong length": (
        "mha.forward", (np.zeros((1, 2, 6)), MHA, 2), {"rope_theta": 1e4,
                                                      "positions": np.arange(3)},
        ValueError, ["'positions'", "(T,) = (2,)", "(3,)"]),
    "rotary embedding of an odd head width": (
        "rope.forward", (np.zeros((1, 1, 2, 3)), np.arange(2)), {}, ValueError,
        ["'x'", "even last dimension", "(1, 1, 2, 3)"]),
    "rotary embedding at a negative position": (
        "rope.forward", (np.zeros((1, 1, 2, 4)), np.array([0, -1])), {}, ValueError,
        ["'positions'", "got -1"]),
    "swiglu without its up projection": (
        "swiglu.forward", (np.zeros((1, 2, 6)), {"gate": {"W": np.zeros((6, 4))},
                                                 "down": {"W": np.zeros((4, 6))}}), {},
        ValueError, ["'params'", "missing", "up"]),
    "an unknown norm": ("block.forward", (np.zeros((1, 2, 6)), BLOCK, 2), {"norm": "batch"},
                        ValueError, ["'norm'", "['layer', 'rms']", "'batch'"]),
    "a layer-norm block run as an RMSNorm block": (
        "block.forward", (np.zeros((1, 2, 6)), BLOCK, 2), {"norm": "rms"}, ValueError,
        ["params['ln1']", "unknown", "beta"]),
    "a bias-free GPT given biases": (
        "gpt.forward", (np.array([[1, 2]]), GPT,
                        GPTConfig(vocab_size=7, context_len=4, d_model=6, n_heads=2,
                                  n_layers=1, bias=False)), {}, ValueError,
        ["params['blocks'][0]['ln1']", "unknown", "beta"]),
    "a bias-free RMSNorm GPT given one linear bias": (
        "gpt.forward", (np.array([[1, 2]]), {**GPT_RMS, "blocks": [
            {**GPT_RMS["blocks"][0], "ffn": {"fc": GPT_RMS["blocks"][0]["ffn"]["fc"],
                                             "proj": {"W": np.zeros((CONFIG.hidden, 6)),
                                                      "b": np.zeros(6)}}}]}, CONFIG_RMS), {},
        ValueError, ["params['blocks'][0]['ffn']['proj']", "unknown", "['b']"]),
    "a GPT with biases missing one": (
        "gpt.forward", (np.array([[1, 2]]), {**GPT, "blocks": [
            {**BLOCK, "ffn": {**FFN_GPT, "fc": {"W": np.zeros((6, CONFIG.hidden))}}}]}, CONFIG), {},
        ValueError, ["params['blocks'][0]['ffn']['fc']", "missing", "b"]),
    "an integer attention mask": (
        "gpt.forward", (np.array([[1, 2]]), GPT, CONFIG), {"attention_mask": np.ones((1, 2),
                                                                                     int)},
        TypeError, ["'attention_mask'", "boolean", "int64", "astype(bool)"]),
    "position ids past the context": (
        "gpt.forward", (np.array([[1, 2]]), GPT, CONFIG), {"position_ids": np.array([[3, 4]])},
        ValueError, ["'position_ids'", "[0, 4)", "got 4"]),
    "a block without its second layer norm": (
        "block.forward", (np.zeros((1, 2, 6)), {k: v for k, v in BLOCK.items() if k != "ln2"}, 2),
        {}, ValueError, ["'params'", "missing", "ln2"]),
})
_RNG = np.random.default_rng(0)
_IDS = np.zeros((4, 3), dtype=np.int64)


def _lg(x, y, p):
    return 0.0, {"w": np.zeros(2)}


CASES.update({
    "an epoch of no examples": ("train.epoch_batches", (0, 4, _RNG), {},
                                ValueError, ["'n_examples'", "an int >= 1", "got 0"]),
    "a batch size that is not an int": ("train.epoch_batches", (10, 2.0, _RNG), {},
                                        TypeError, ["'batch_size'", "an int", "2.0"]),
    "inputs and targets of different lengths": (
        "train.train", ({"w": np.zeros(2)}, _lg, np.zeros(4), np.zeros(3)),
        {"epochs": 1, "batch_size": 2, "optimizer": None, "lr": 0.1},
        ValueError, ["'inputs' and 'targets'", "same number", "4 and 3"]),
    "fewer examples per batch than micro-batches": (
        "train.train", ({"w": np.zeros(2)}, _lg, np.zeros(4), np.zeros(4)),
        {"epochs": 1, "batch_size": 2, "micro_batches": 3, "optimizer": None, "lr": 0.1},
        ValueError, ["'batch_size'", ">= micro_batches = 3", "got 2"]),
    "zero epochs": ("train.train", ({"w": np.zeros(2)}, _lg, np.zeros(4), np.zeros(4)),
                    {"epochs": 0, "batch_size": 2, "optimizer": None, "lr": 0.1},
                    ValueError, ["'epochs'", "an int >= 1", "got 0"]),
    "micro-batches not an int": ("train.train",
                                 ({"w": np.zeros(2)}, _lg, np.zeros(4), np.zeros(4)),
                                 {"epochs": 1, "batch_size": 2, "micro_batches": 1.5,
                                  "optimizer": None, "lr": 0.1},
                                 TypeError, ["'micro_batches'", "an int", "1.5"]),
    "a loss scale that cannot grow": ("mixed_precision.scaler_init", (), {"growth_factor": 1.0},
                                      ValueError, ["'growth_factor'", "> 1", "1.0"]),
    "a back-off of 0": ("mixed_precision.scaler_init", (), {"backoff_factor": 0.0},
                        ValueError, ["'backoff_factor'", "(0, 1)", "0.0"]),
    "a back-off of 1": ("mixed_precision.scaler_init", (), {"backoff_factor": 1.0},
                        ValueError, ["'backoff_factor'", "(0, 1)", "1.0"]),
    "a growth interval that is not an int": ("mixed_precision.scaler_init", (),
                                             {"growth_interval": 2.5},
                                             TypeError, ["'growth_interval'", "an int", "2.5"]),
    "an unknown compute format": ("mixed_precision.cast", (np.zeros(2), "float8"), {},
                                  ValueError, ["'dtype'", "float16", "'float8'"]),
    "a training step in an unknown format": ("mixed_precision.train_step",
                                             ({}, lambda params, scale: (0.0, {}),
                                              lambda params, grads, state: (params, state),
                                              None, None), {"dtype": "int8"},
                                             ValueError, ["'dtype'", "bfloat16", "'int8'"]),
    "micro-batch gradients of different structures": (
        "accumulate.loss_and_grads",
        (lambda batch: (0.0, {"w": np.zeros(2)} if batch else {"w": np.zeros(2), "b": np.zeros(1)}),
         [0, 1]), {}, ValueError, ["'fn'", "micro-batch 1", "structure", "'b'"]),
    "an embedding vocabulary that is not an int": ("embedding.init", (2.5, 4, _RNG), {},
                                                   TypeError, ["'vocab_size'", "an int", "2.5"]),
    "a linear layer of a float width": ("linear.init", (3.0, 2, _RNG), {},
                                        TypeError, ["'d_in'", "an int", "3.0"]),
    "a linear layer of a float output width": ("linear.init", (3, 2.0, _RNG), {},
                                               TypeError, ["'d_out'", "an int", "2.0"]),
    "a linear layer on a 0-d array": ("linear.forward", (np.array(1.0), {"W": np.zeros((1, 2))}),
                                      {}, ValueError, ["'x'", "at least 1", "()"]),
    "an embedding table of no rows": ("embedding.init", (0, 4, _RNG), {},
                                      ValueError, ["'vocab_size'", "an int >= 1", "got 0"]),
    "an embedding width that is not an int": ("embedding.init", (5, 2.5, _RNG), {},
                                              TypeError, ["'d_model'", "an int", "2.5"]),
    "a linear layer of no inputs": ("linear.init", (0, 3, _RNG), {},
                                    ValueError, ["'d_in'", "an int >= 1", "got 0"]),
    "a linear layer of no outputs": ("linear.init", (3, 0, _RNG), {},
                                     ValueError, ["'d_out'", "an int >= 1", "got 0"]),
    "a layer norm of width 0": ("layer_norm.init", (0,), {}, ValueError,
                                ["'d_model'", "an int >= 1", "got 0"]),
    "an RMSNorm of width 0": ("rms_norm.init", (0,), {}, ValueError,
                              ["'d_model'", "an int >= 1", "got 0"]),
    "a bigram policy of no tokens": ("bigram_policy.init", (0, _RNG), {},
                                     ValueError, ["'vocab_size'", "> 0", "0"]),
    "no micro-batches to accumulate": ("accumulate.loss_and_grads", (_lg, []), {},
                                       ValueError, ["'micro_batches'",
                                                    "at least one micro-batch", "got none"]),
    "checkpoint segments of size 0": ("checkpoint.loss_and_grads",
                                      (_IDS, _IDS, GPT, CONFIG, 0), {},
                                      ValueError, ["'segment_size'", "an int >= 1", "got 0"]),
    "checkpoint segments of a float size": ("checkpoint.loss_and_grads",
                                            (_IDS, _IDS, GPT, CONFIG, 2.0), {},
                                            TypeError, ["'segment_size'", "an int", "2.0"]),
})
CASES["a feed-forward of a 0-d input"] = ("ffn.forward", (np.array(1.0), FFN), {}, ValueError,
                                          ["'x'", "at least 1 dimension(s)", "shape ()"])
CASES["a key padding mask of another batch size"] = (
    "mha.forward", (np.zeros((2, 3, 6)), MHA, 2), {"key_padding_mask": np.zeros((1, 3), bool)},
    ValueError, ["'key_padding_mask'", "must have shape (2, 3)", "got shape (1, 3)"])
CASES["attention of width 0"] = ("mha.init", (0, 2, RNG), {}, ValueError,
                                 ["'d_model'", "an int >= 1", "got 0"])
CASES["a block of width 0"] = ("block.init", (0, 2, 8, RNG), {}, ValueError,
                               ["'d_model'", "an int >= 1", "got 0"])
CASES["a sinusoidal base of 0"] = ("sinusoidal.forward", (np.zeros((2, 3)), 0.0), {},
                                   ValueError, ["'base'", "must be > 0", "got 0.0"])
CASES["a sinusoidal cache that holds no shape"] = (
    "sinusoidal.backward", (np.zeros((2, 3)), ("(2, 3)",)), {}, TypeError,
    ["'cache'", "sinusoidal.forward returned", "('(2, 3)',)"])
# all four of DPO's log-probability arrays 2-D with one shape: only the rank check can refuse
_LOGP_2D = np.zeros((2, 2))
CASES["DPO log-probabilities of rank 2"] = ("dpo.forward", (_LOGP_2D,) * 4 + (0.1,), {},
                                            ValueError, ["'policy_chosen'", "1 dimension",
                                                         "(2, 2)"])
for _name in ACTIVATIONS:
    CASES[f"{_name} of integers"] = (f"{_name}.forward", (np.arange(3),), {},
                                     TypeError, ["'x'", "floating-point", "int64"])
    CASES[f"{_name} of NaN"] = (f"{_name}.forward", (NAN,), {},
                                ValueError, ["'x'", "finite", "NaN"])


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_rejected_clearly(impl, case):
    function, args, kwargs, error, needles = CASES[case]
    with pytest.raises(error) as info:
        impl(function)(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{function}: "), f"{message!r} does not start with {function}:"
    missing = [n for n in needles if n not in message]
    assert not missing, f"the {error.__name__} message {message!r} does not mention {missing}"


# Upstream gradients of the wrong shape, or with NaN, must be rejected by every backward.
FORWARDS = {
    "relu": ((X,), {}), "gelu": ((X,), {}), "gelu_tanh": ((X,), {}), "sigmoid": ((X,), {}),
    "tanh": ((X,), {}), "softmax": ((X,), {}), "log_softmax": ((X,), {}),
    "sinusoidal": ((X,), {}), "layer_norm": ((X, LN), {}),
    "rms_norm": ((X, {"gamma": np.ones(3)}), {}),
    "linear": ((X, {"W": np.zeros((3, 2))}), {}),
    "embedding": ((np.array([[0, 1]]), {"W": W}), {}),
    "positional": ((2, {"W": W}), {}),
    "cross_entropy": ((X, np.array([0, 1])), {}),
    "mse": ((X, X), {}),
    "attention": ((Q, Q, Q), {"causal": True}),
    "mha": ((np.zeros((1, 2, 6)), MHA, 2), {}),
    "ffn": ((np.zeros((1, 2, 6)), FFN), {}),
    "silu": ((X,), {}),
    "swiglu": ((np.zeros((1, 2, 6)), {"gate": {"W": np.zeros((6, 4))},
                                      "up": {"W": np.zeros((6, 4))},
                                      "down": {"W": np.zeros((4, 6))}}), {}),
    "rope": ((np.zeros((1, 2, 3, 4)), np.arange(3)), {}),
    "block": ((np.zeros((1, 2, 6)), BLOCK, 2), {}),
    "gpt": ((np.array([[1, 2, 3]]), GPT, CONFIG), {}),
}


@pytest.mark.parametrize("component", sorted(FORWARDS))
def test_backward_rejects_wrong_upstream_shape(impl, component):
    args, kwargs = FORWARDS[component]
    out, cache = impl(f"{component}.forward")(*args, **kwargs)
    wrong = np.zeros(np.shape(out) + (2,))
    with pytest.raises(ValueError) as info:
        impl(f"{component}.backward")(wrong, cache)
    message = str(info.value)
    assert message.startswith(f"{component}.backward: "), message
    assert any(f"'{name}'" in message for name in ("dout", "dloss", "dlogits")), message
    assert str(np.shape(out)) in message and str(wrong.shape) in message, message


@pytest.mark.parametrize("component", sorted(FORWARDS))
def test_backward_rejects_nan_upstream(impl, component):
    args, kwargs = FORWARDS[component]
    out, cache = impl(f"{component}.forward")(*args, **kwargs)
    with pytest.raises(ValueError, match=rf"^{component}\.backward: .*NaN"):
        impl(f"{component}.backward")(np.full(np.shape(out), np.nan), cache)


def test_gpt_config_rejects_heads_that_do_not_divide_d_model():
    with pytest.raises(ValueError, match=r"'n_heads' must divide d_model = 6, got n_heads = 4"):
        GPTConfig(vocab_size=7, context_len=4, d_model=6, n_heads=4, n_layers=1)


@pytest.mark.parametrize(("fields", "error", "needle"), [
    ({"n_kv_heads": 4}, ValueError, "'n_kv_heads' must divide n_heads = 6"),
    ({"n_kv_heads": 0}, ValueError, "'n_kv_heads' must be > 0"),
    ({"norm": "batch"}, ValueError, "'norm' must be one of ['layer', 'rms']"),
    ({"position": "alibi"}, ValueError, "'position' must be one of ['learned', 'rope']"),
    ({"activation": "swish"}, ValueError, "'activation' must be one of"),
    ({"rope_theta": 0.0}, ValueError, "'rope_theta' must be > 0"),
    ({"bias": 1}, TypeError, "'bias' must be a bool"),
    ({"fused_qkv": "no"}, TypeError, "'fused_qkv' must be a bool"),
    ({"d_model": 18, "position": "rope"}, ValueError, "even head dimension, got"),
], ids=lambda v: str(v)[:30])
def test_gpt_config_rejects_bad_llama_options(fields, error, needle):
    base = {"vocab_size": 7, "context_len": 4, "d_model": 12, "n_heads": 6, "n_layers": 1}
    with pytest.raises(error) as info:
        GPTConfig(**{**base, **fields})
    assert "GPTConfig" in str(info.value) and needle in str(info.value), str(info.value)


# Sizes past int64, and finite numbers so large that the result overflows float64 (issue 14):
# a clear ValueError naming the function and the argument, never a raw NumPy or Python error
# and never an inf or NaN handed back (the warnings filter makes a RuntimeWarning an error).
_P = {"W": np.ones((2, 2))}
_G = {"W": np.full((2, 2), 3.0)}
HUGE = {
    "a GPT of 2**70 layers": (GPTConfig, (), {"vocab_size": 7, "context_len": 4, "d_model": 6,
                                              "n_heads": 2, "n_layers": 2**70},
                              "GPTConfig", ["'n_layers'", "fits in int64"]),
    "FLOPs of 2**70 rows": ("flops.linear", (2**70, 3, 4), {}, "flops.linear",
                            ["'n_rows'", "fits in int64"]),
    "a warm-up of 2**1100 steps": ("schedules.linear_warmup", (3, 0.1, 2**1100), {},
                                   "schedules.linear_warmup",
                                   ["'warmup_steps'", "fits in int64", "1101 bits"]),
    "generating 2**70 tokens": ("generate.generate",
                                (GPT, CONFIG, np.zeros((1, 2), dtype=np.int64), 2**70), {},
                                "generate.generate", ["'max_new_tokens'", "fits in int64"]),
    "an SGD step with lr 1e308": ("sgd.step", (_P, _G, {"step": 0, "buffer": None}, 1e308), {},
                                  "sgd.step", ["'lr' = 1e+308", "overflow float64"]),
    "an Adam step with weight decay 1e308": (
        "adam.step", (_P, _G, {"step": 0, "m": {"W": np.zeros((2, 2))},
                                "v": {"W": np.zeros((2, 2))}}),
        {"weight_decay": 1e308}, "adam.step", ["'weight_decay' = 1e+308", "overflow float64"]),
    "DPO with beta 1e308": ("dpo.forward", (np.array([-1.0, -2.0]), np.array([-3.0, -1.0]),
                                            np.array([-2.0, -2.0]), np.array([-2.0, -2.0]),
                                            1e308), {},
                            "dpo.forward", ["'beta' = 1e+308", "overflow float64"]),
    "a repetition penalty of 1e308": ("generate.penalize_repeats",
                                      (np.array([[-3.0, 1.0, 2.0]]), np.array([[0, 2]]),
                                       np.array([[True, True]]), 1e308), {},
                                      "generate.penalize_repeats",
                                      ["'penalty' = 1e+308", "overflow float64"]),
    "an initial std of 1e308": ("linear.init", (3, 2, _RNG), {"std": 1e308}, "linear.init",
                                ["'std'", "1e+300"]),
}


@pytest.mark.parametrize("case", sorted(HUGE))
def test_huge_values_are_refused_clearly(impl, case):
    function, args, kwargs, label, needles = HUGE[case]
    fn = function if callable(function) else impl(function)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError) as info:
            fn(*args, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{label}: "), message
    missing = [n for n in needles if n not in message]
    assert not missing, f"{message!r} does not mention {missing}"


@pytest.mark.parametrize("pred,dloss", [
    ([3.0, -2.0], 1e308),     # 2 dloss / n already inf
    ([300.0, 1.0], 1e307),    # 2 dloss / n finite, times the difference overflows
    ([3.0, 0.0], 1e308),      # inf times a zero difference: NaN
], ids=["factor", "product", "nan"])
def test_mse_backward_refuses_an_upstream_gradient_that_overflows(impl, pred, dloss):
    """The overflow is reported as a ValueError naming the gradient, without a
    RuntimeWarning on the way (the warnings filter makes one an error)."""
    _, cache = impl("mse.forward")(np.array(pred), np.zeros(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=rf"^mse\.backward: argument 'dloss' = "
                                             rf"{re.escape(repr(dloss))}.*\(the gradient"):
            impl("mse.backward")(dloss, cache)


def test_huge_but_representable_learning_rates_schedule_exactly(impl):
    """The schedules multiply base_lr by a ratio <= 1, so no finite base_lr overflows."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert impl("schedules.linear_warmup")(3, 1e308, 10) == 1e308 * (4 / 10)
        assert impl("schedules.cosine")(0, 1e308, 10) == 1e308
        assert 0 < impl("schedules.warmup_cosine")(5, 1e308, 2, 10) < 1e308
