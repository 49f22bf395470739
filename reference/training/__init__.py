"""Learning: optimizers, gradient clipping, learning-rate schedules, accumulation, mixed precision,
activation checkpointing and the training loop.
"""

from llmref.training import (
    sgd,
    adam,
    adamw,
    clip,
    schedules,
    accumulate,
    mixed_precision,
    checkpoint,
    train,
)

__all__ = [
    "sgd", "adam", "adamw", "clip", "schedules", "accumulate", "mixed_precision", "checkpoint",
    "train",
]
