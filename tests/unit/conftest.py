"""Fixtures of the tests that check the service's prompts against the fake LLM directly: a
fresh server, and the real OpenAI SDK client on it (shared with the fake's own tests)."""

from autointerp_testing.fixtures import client, fake

__all__ = ["client", "fake"]
