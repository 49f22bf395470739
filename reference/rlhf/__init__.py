"""Learning from human preferences: the reward model, KL penalties, advantages (GAE), PPO and the
RLHF loop.
"""

from llmref.rlhf import (
    reward_model,
    kl,
    gae,
    ppo,
    bigram_policy,
    gpt_policy,
    value_model,
    rlhf_loop,
)

__all__ = [
    "reward_model", "kl", "gae", "ppo", "bigram_policy", "gpt_policy", "value_model",
    "rlhf_loop",
]
