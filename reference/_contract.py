"""The input contract of a public function, declared next to it.

Every public function of the reference carries a declaration made with :func:`contract`::

    @contract(example=lambda rng: {"x": rng.standard_normal((2, 5))})
    def forward(x): ...

``example(rng)`` returns keyword arguments of one valid call.  From it the input-contract
test (``llmref.spec.test_contract``) derives bad variants of every argument by the kind of
value the example gives it (a float array gets NaN, inf, an integer dtype, a list, None, an
empty array...; an int gets -1, 0, 1.5, True, None, and ``np.int64`` must be accepted) and
requires each bad variant to raise the exception type the catalogue (:data:`VARIANTS`) gives,
with a message naming the function and the argument.  The skeleton writer reads the same
declaration to state the contract in each exercise's docstring.

A variant that is in fact valid for an argument (a rank that the function accepts, zero where
zero is allowed) is declared lenient next to the function, never in the test::

    @contract(example=..., lenient={"x": ("rank_up", "rank_down")})

``opaque`` names arguments the test leaves alone (a forward's ``cache`` is checked by the
backward's own shape checks, not by kind).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

#: every kind of bad variant, by the kind of valid value it is made from:
#: ``{value kind: {variant: (exception type name, what it means)}}``
VARIANTS = {
    "float array": {
        "nan": ("ValueError", "a NaN element"),
        "inf": ("ValueError", "an infinite element"),
        "int_dtype": ("TypeError", "an integer dtype"),
        "bool_dtype": ("TypeError", "a boolean dtype"),
        "list": ("TypeError", "a Python list instead of an array"),
        "none": ("TypeError", "None"),
        "empty": ("ValueError", "an empty array"),
        "rank_up": ("ValueError", "one more dimension"),
        "rank_down": ("ValueError", "one dimension fewer"),
    },
    "int array": {
        "float_dtype": ("TypeError", "a float dtype"),
        "negative": ("ValueError", "a negative value"),
        "too_large": ("ValueError", "a value past the allowed range"),
        "list": ("TypeError", "a Python list instead of an array"),
        "none": ("TypeError", "None"),
        "empty": ("ValueError", "an empty array"),
    },
    "bool array": {
        "int_dtype": ("TypeError", "an integer dtype (an int mask is not a boolean mask)"),
        "list": ("TypeError", "a Python list instead of an array"),
        "none": ("TypeError", "None"),
    },
    "int": {
        "negative": ("ValueError", "-1"),
        "zero": ("ValueError", "0"),
        "huge": ("ValueError", "2**70, past what an int64 holds"),
        "float": ("TypeError", "a float such as 1.5"),
        "bool": ("TypeError", "True"),
        "str": ("TypeError", "a string"),
        "none": ("TypeError", "None"),
    },
    "float": {
        "nan": ("ValueError", "NaN"),
        "inf": ("ValueError", "infinity"),
        "negative": ("ValueError", "a negative number"),
        "str": ("TypeError", "a string"),
        "none": ("TypeError", "None"),
    },
    "bool": {
        "int": ("TypeError", "the int 1"),
        "str": ("TypeError", "a string"),
        "none": ("TypeError", "None"),
    },
    "str": {
        "int": ("TypeError", "an int"),
        "none": ("TypeError", "None"),
    },
    "dict": {
        "missing_key": ("ValueError", "a required key removed"),
        "extra_key": ("ValueError", "an unknown key added"),
        "list": ("TypeError", "a list instead of a dict"),
        "none": ("TypeError", "None"),
    },
    "list": {
        "none": ("TypeError", "None"),
        "empty": ("ValueError", "an empty list"),
    },
    "callable": {
        "int": ("TypeError", "an int instead of a function"),
        "none": ("TypeError", "None"),
    },
    "dtype": {
        "int_dtype": ("TypeError", "an integer dtype"),
        "none": ("TypeError", "None"),
    },
    "dataclass": {
        "str": ("TypeError", "a string instead of the configuration object"),
        "none": ("TypeError", "None"),
    },
    "generator": {
        "int": ("TypeError", "an int seed instead of a NumPy Generator"),
        "none": ("TypeError", "None"),
    },
}

#: variants that must be ACCEPTED (same result as the example): NumPy scalars where Python
#: ones are accepted
ACCEPTED = {"int": ("np_int",), "float": ("np_float",)}


@dataclass(frozen=True)
class Contract:
    example: Callable                        # rng -> {argument: valid value}
    lenient: Mapping[str, frozenset] = field(default_factory=dict)
    opaque: frozenset = frozenset({"cache"})
    mutates: frozenset = frozenset()         # arguments the function updates in place

    def allows(self, argument: str, variant: str) -> bool:
        """Whether ``variant`` of ``argument`` is declared valid for this function."""
        return variant in self.lenient.get(argument, ()) or "*" in self.lenient.get(argument, ())


def contract(example: Callable, *, lenient: Mapping[str, Iterable[str]] | None = None,
             opaque: Iterable[str] = ("cache",), mutates: Iterable[str] = ()) -> Callable:
    """Attach an input contract to a public function (stored as ``fn.__contract__``).

    Parameters
    ----------
    example : callable
        ``example(rng) -> dict``: keyword arguments of one valid call, built with the NumPy
        generator ``rng``.
    lenient : dict, optional
        ``{argument: variant names}`` from :data:`VARIANTS` that the function accepts
        (``"*"``: every variant; the argument takes anything).
    opaque : iterable of str
        Arguments the contract test does not vary (default: ``cache``).
    mutates : iterable of str
        Arguments the function updates in place, as its docstring says; every other array
        argument must be left unchanged.
    """
    declared = Contract(example=example,
                        lenient={k: frozenset(v) for k, v in (lenient or {}).items()},
                        opaque=frozenset(opaque), mutates=frozenset(mutates))

    def attach(fn):
        fn.__contract__ = declared
        return fn

    return attach


def kind_of(value) -> str | None:
    """The catalogue's name (a key of :data:`VARIANTS`) for the kind of a valid value; None
    for a value the contract test does not vary."""
    import dataclasses
    import inspect

    import numpy as np

    if isinstance(value, np.ndarray):
        if value.dtype == bool:
            return "bool array"
        if np.issubdtype(value.dtype, np.integer):
            return "int array"
        if np.issubdtype(value.dtype, np.floating):
            return "float array"
        return None
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, (int, np.integer)):
        return "int"
    if isinstance(value, (float, np.floating)):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "dict"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, np.random.Generator):
        return "generator"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return "dataclass"
    if isinstance(value, np.dtype) or (inspect.isclass(value) and issubclass(value, np.generic)):
        return "dtype"
    if callable(value) and not inspect.isclass(value):
        return "callable"
    return None
