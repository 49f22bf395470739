"""The claims registry and the tests agree: every testable claim has a test carrying its id,
no test names an unknown claim, the registry lists exactly the tests that carry each id, and
every numeric claim's test reads its value from the registry."""

from llmref.spec.harness import registry


def test_registry_and_claim_markers_agree():
    problems = registry.problems()
    assert not problems, "\n".join(problems)


def test_every_lesson_has_claims():
    lessons = {entry["lesson"][:3] for entry in registry.claims().values()}
    assert lessons == {"000", "001", "002", "003", "004"}
