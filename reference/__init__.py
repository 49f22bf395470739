"""llmref: plain NumPy reference implementations of the pieces of a language model.

Every component is a module with ``forward(...) -> (out, cache)`` and
``backward(dout, cache) -> grads``, where ``grads`` is a dict with one entry per
differentiable input (named as the forward's argument) and one per parameter (named as its
key in ``params``).  Runtime dependency: NumPy only.  Inputs must not change in place
between a forward and its backward (the rule for caches, in ``llmref._checks``).

The modules live in folders by the stage the lessons teach them in (``STAGES``, in order);
each is also reachable by its flat name, ``from llmref import softmax``.
"""

from importlib.metadata import PackageNotFoundError, version

from llmref import (  # noqa: I001  (stage order is teaching order)
    layers, losses, text, transformer, accounting, training, rlhf, params,
)
from llmref.layers import (
    linear, relu, gelu, gelu_tanh, sigmoid, tanh, softmax, log_softmax, layer_norm, rms_norm,
    embedding, positional, sinusoidal, ffn, silu, swiglu, rope,
)
from llmref.losses import cross_entropy, mse, preference, dpo
from llmref.text import word_tokenizer, bpe, gpt2_tokenizer
from llmref.transformer import (
    attention, mha, block, gpt, generate, weights, convert, convert_llama,
)
from llmref.accounting import flops, memory
from llmref.training import (
    sgd, adam, adamw, clip, schedules, accumulate, mixed_precision, checkpoint, train,
)
from llmref.rlhf import reward_model, kl, gae, ppo, bigram_policy, rlhf_loop

try:
    __version__ = version("llm-reference-spec")
except PackageNotFoundError:            # imported from a source tree that was never installed
    __version__ = "0+unknown"

#: the stages in the order the lessons teach them, each with its component modules in order
STAGES = {
    'layers': layers.__all__,
    'losses': losses.__all__,
    'text': text.__all__,
    'transformer': transformer.__all__,
    'accounting': accounting.__all__,
    'training': training.__all__,
    'rlhf': rlhf.__all__,
}

#: every component module by its flat name, in teaching order (``params`` is a helper)
__all__ = [name for names in STAGES.values() for name in names] + ["params"]
