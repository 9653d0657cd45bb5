"""Fixtures of the fake LLM's own tests: a fresh server, and the real OpenAI SDK client on it."""

from autointerp_testing.fixtures import client, fake

__all__ = ["client", "fake"]
