"""Typed errors of the answer pipeline; each message says what was wrong and how to fix it."""
from __future__ import annotations


class AssistantError(RuntimeError):
    """Base class of the errors below."""


class QuestionError(AssistantError, ValueError):
    """An empty, oversized or wrongly typed question, or malformed chat history."""


class GeneratorError(AssistantError):
    """The generator failed: misconfigured, or its model errored."""


class EndpointError(GeneratorError):
    """An OpenAI-compatible endpoint is unreachable or answered with an error; the message names the URL."""


class FeedbackError(AssistantError, ValueError):
    """Feedback names an unknown answer id or carries an invalid rating."""
