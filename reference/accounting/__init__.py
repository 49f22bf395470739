"""Counting the cost: floating-point operations and memory of a model and its training.
"""

from llmref.accounting import (
    flops,
    memory,
)

__all__ = [
    "flops", "memory",
]
