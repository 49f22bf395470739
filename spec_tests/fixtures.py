"""The suite's fixtures, registered by the plugin when the suite runs.

Claim tests get the implementation from ``impl`` and their numbers from ``claim`` /
``claim_values``; both record what the test used (the functions it called, the registry
values it read), and :class:`ClaimUse` fails a claim test that used neither.  A claim test
records the figures it computed with ``claim_figures`` (a test run by hypothesis notes them
with :mod:`~llmref.spec.harness.findings`; a test that gives none gets what its passing
comparisons found); they go into the run's status file.
"""

from __future__ import annotations

import math
import os

import pytest

from llmref.spec.harness import findings, registry
from llmref.spec.harness.impl import Implementation
from llmref.spec.session import claim_ids

#: Meta-tests set ``LLMSPEC_PERTURB=value:<claim id>`` to hand that claim's tests a wrong
#: value (see :mod:`llmref.spec.perturbed`): a test that reads its number from the registry
#: must then fail.
PERTURB_ENV = "LLMSPEC_PERTURB"
READ_KEYS = ("value", "tolerance")


class Entry(dict):
    """A registry entry that notes on the test item when its value or tolerance is read."""

    def __init__(self, entry: dict, node):
        super().__init__(entry)
        self._node = node
        if os.environ.get(PERTURB_ENV) == f"value:{entry['id']}" and "value" in entry:
            value = entry["value"]
            self["value"] = value * 1.5 + (1 if value >= 0 else -1)

    def __getitem__(self, key):
        if key in READ_KEYS:
            reads = getattr(self._node, "_llmspec_registry_reads", None)
            if reads is None:
                reads = self._node._llmspec_registry_reads = set()
            reads.add(f"{super().__getitem__('id')}.{key}")
        return super().__getitem__(key)


@pytest.fixture(scope="session")
def impl(request) -> Implementation:
    """The implementation under test; ``impl("softmax.forward")`` gives a function."""
    return request.config._llmspec_impl


@pytest.fixture
def claim(request) -> dict:
    """The registry entry of the claim this test backs (numeric claims read their value and
    tolerance from it, so the number lives in one place)."""
    ids = claim_ids(request.node)
    entries = [registry.claims()[i] for i in ids if i in registry.claims()]
    with_value = [e for e in entries if "value" in e]
    if not with_value:
        raise pytest.UsageError(f"{request.node.nodeid} asks for 'claim' but carries no "
                                f"numeric claim marker (markers: {ids})")
    return Entry(with_value[0], request.node)


@pytest.fixture
def claim_values(request) -> dict:
    """``{claim id: registry entry}`` for every claim this test carries."""
    return {i: Entry(registry.claims()[i], request.node)
            for i in claim_ids(request.node) if i in registry.claims()}


def _plain(value):
    """``value`` as JSON: NumPy scalars and arrays become floats, ints and lists."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return str(value)


class Figures:
    """What a claim test found, by name: ``claim_figures["p(sat | cat)"] = 0.995`` or
    ``claim_figures.record(loss=0.28, epochs=400)``.  Written into the status file under the
    test (``tests[node]["figures"]``), from where the docs show them."""

    def __init__(self, node):
        self._found = node._llmspec_figures = {}

    def __setitem__(self, name: str, value) -> None:
        self._found[name] = _plain(value)

    def __getitem__(self, name: str):
        return self._found[name]

    def record(self, **figures) -> None:
        for name, value in figures.items():
            self[name] = value


@pytest.fixture
def claim_figures(request) -> Figures:
    """Record the numbers this claim test computed (see :class:`Figures`)."""
    return Figures(request.node)


def usage_problem(claims: list, calls: set, reads: set) -> str | None:
    """Why a passing claim test decides nothing, or None: it carries claim markers but called
    no function of the implementation under test and read no value from the registry."""
    if claims and not calls and not reads:
        return (f"claim test for {', '.join(claims)} called no function of the "
                "implementation under test (impl(...) / impl.lib) and read no value or "
                "tolerance from the registry (the claim / claim_values fixtures): it cannot "
                "tell a right implementation from a wrong one")
    return None


class ClaimUse:
    """Fails a passing claim test that used neither the implementation nor the registry."""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item):
        item.config._llmspec_impl.reset_calls()
        item._llmspec_registry_reads = set()
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item):
        if not claim_ids(item):
            return (yield)
        with findings.gathering() as found:
            result = yield
        problem = usage_problem(claim_ids(item), item.config._llmspec_impl.calls,
                                getattr(item, "_llmspec_registry_reads", set()))
        if problem:
            pytest.fail(problem, pytrace=False)
        item._llmspec_used = sorted(item.config._llmspec_impl.calls)
        item._llmspec_figures = figures_of(getattr(item, "_llmspec_figures", None) or {},
                                           found)
        return result


def figures_of(recorded: dict, found: findings.Findings) -> dict:
    """A claim test's figures: those it recorded (``claim_figures``) and noted
    (:func:`findings.largest` and the like), and, unless it recorded some through
    ``claim_figures``, what its passing comparisons found (values compared, largest relative
    difference)."""
    noted = {k: _plain(v) for k, v in found.values.items()}
    if recorded:
        return {**recorded, **noted}
    return {**noted, **{k: _plain(v) for k, v in found.comparison_figures().items()}}
