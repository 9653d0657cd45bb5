"""Fixtures of the fake LLM's own tests: a fresh server, and the real OpenAI SDK client on it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import openai
import pytest

from autointerp_grpc.testing.fake_llm import FakeLLMServer


@pytest.fixture
def fake() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
async def client(fake: FakeLLMServer) -> AsyncIterator[openai.AsyncOpenAI]:
    oai = openai.AsyncOpenAI(base_url=fake.base_url, api_key="k", max_retries=0, timeout=10)
    yield oai
    await oai.close()
