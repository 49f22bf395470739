"""The learner's command line: ``llmspec check``, ``llmspec exercises``, ``llmspec run``,
``llmspec docs``."""
