"""Errors meant for users: each carries one readable sentence and a CLI exit code.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; nothing else reaches the
terminal, so a user never sees a traceback for an expected failure.
"""

from __future__ import annotations


class OpslineError(Exception):
    """Base class: an expected failure with a message written for the user."""

    exit_code = 1


class UsageError(OpslineError):
    """The user asked for something that does not exist (unknown recipe, experiment, key)."""

    exit_code = 2


class DataValidationError(OpslineError):
    """The prepared dataset failed its checks; ``report`` is the readable report."""

    def __init__(self, report: str):
        super().__init__(report)
        self.report = report


class NoDatasetError(OpslineError):
    """Training or evaluation was asked for before ``opsline data prepare``."""


class NoModelError(OpslineError):
    """No registered model (or no alias) matches what was asked for."""


class ModelLoadError(OpslineError):
    """A model directory is missing files or does not match the recipe that loads it."""


class InvalidRequestError(OpslineError):
    """A request that passed its schema but cannot be served by the loaded model (e.g. a
    prompt over the model's context limit); the API answers 422 naming ``field``."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason
