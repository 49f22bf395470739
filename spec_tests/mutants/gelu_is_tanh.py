"""Exact GELU silently computed with the tanh approximation (an ignored ``approximate`` flag)."""

from reference import *  # noqa: F403  (every other component is the reference one)
from reference import gelu_tanh as gelu  # noqa: F401
