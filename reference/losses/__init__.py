"""What training minimises: next-token cross-entropy, squared error, and the pairwise preference
losses of reward models and DPO.
"""

from llmref.losses import (
    cross_entropy,
    mse,
    preference,
    dpo,
)

__all__ = [
    "cross_entropy", "mse", "preference", "dpo",
]
