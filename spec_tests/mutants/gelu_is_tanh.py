"""Exact GELU silently computed with the tanh approximation (an ignored ``approximate`` flag)."""

from llmref import *  # noqa: F403  (every other component is the reference one)
from llmref.layers import gelu_tanh as gelu  # noqa: F401
