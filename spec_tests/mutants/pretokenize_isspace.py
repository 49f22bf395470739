"""GPT-2's pre-tokenisation with Python's ``str.isspace`` as its whitespace: the ASCII
information separators U+001C..U+001F become spaces, which Unicode's White_Space (and so
GPT-2's pattern) does not count."""

import importlib.util
import sys

from llmref import *  # noqa: F403  (every other component is the reference one)
from llmref.text import gpt2_tokenizer as _reference

# a private copy of the module (its own character-class memo), with the one table changed
_spec = importlib.util.spec_from_file_location(f"{__name__}.gpt2_tokenizer", _reference.__file__)
gpt2_tokenizer = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpt2_tokenizer)
gpt2_tokenizer.WHITE_SPACE = frozenset(c for c in range(0x110000) if chr(c).isspace())
