"""pytest fixtures for tests that talk to the fake LLM directly: a fresh server per test, and
the real OpenAI SDK client on it.

A module of the test-double package rather than of one test directory, so that the fake's own
tests (``testing/tests``) and the service's tests that check their side of a prompt against it
(``tests/unit``) share one definition; a conftest brings them in with
``from autointerp_testing.fixtures import client, fake``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from autointerp_testing.fake_llm import FakeLLMServer

__all__ = ["client", "fake"]


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    """A fake LLM of its own (no faults, no latency, empty stats), stopped after the test."""
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
async def client(fake: FakeLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    """The real ``openai.AsyncOpenAI`` client on :func:`fake`, without retries."""
    oai = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=10)
    yield oai
    await oai.close()
