"""The suite's fixtures, registered by the plugin when the suite runs."""

from __future__ import annotations

import pytest

from llmref.spec.harness import registry
from llmref.spec.harness.impl import Implementation
from llmref.spec.session import claim_ids


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
    return with_value[0]


@pytest.fixture
def claim_values(request) -> dict:
    """``{claim id: registry entry}`` for every claim this test carries."""
    return {i: registry.claims()[i] for i in claim_ids(request.node) if i in registry.claims()}
