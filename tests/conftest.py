"""Shared fixtures: the repo's fake LLM, the whole app in process (fast tier), and the real
server started as its own process (slow tier). Helpers live in ``support.py``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from support import (
    InProcessApp,
    RunningServer,
    app_settings,
    in_process_app,
    launch_server,
    stop_server,
)

from autointerp_testing.fake_llm import FakeLLMServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The real-model tier (``real_llm``: llama.cpp's server, a model file, minutes of CPU)
    runs only when the ``-m`` expression names it (``make test-real-llm``); ``make test`` and
    ``make test-fast`` leave it out."""
    if "real_llm" in (config.option.markexpr or ""):
        return
    tier = [item for item in items if item.get_closest_marker("real_llm") is not None]
    if tier:
        config.hook.pytest_deselected(items=tier)
        items[:] = [item for item in items if item.get_closest_marker("real_llm") is None]


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(scope="session")
async def app(fake_llm: FakeLLMServer) -> AsyncIterator[InProcessApp]:
    """The whole service in this process (SECRET set, LLM calls to the fake LLM, the
    bag-of-words embedding model): gRPC on a free port, REST through ASGITransport."""
    async with in_process_app(app_settings(fake_llm.base_url)) as running:
        yield running


@pytest.fixture
def clean_fake(fake_llm: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The fake LLM with no fault, no latency and fresh statistics; what a test set is
    cleared after it too, so the session's other tests never inherit it."""
    fake_llm.clear_settings()
    fake_llm.reset_stats()
    yield fake_llm
    fake_llm.clear_settings()


@pytest.fixture(scope="session")
def server(
    fake_llm: FakeLLMServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """`python server.py` with SECRET set, against the fake LLM, on free loopback ports."""
    # Everything is logged, so the no-secrets-in-logs tests see every line.
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    running = launch_server(fake_llm.base_url, log_path, AUTOINTERP_LOG_LEVEL="DEBUG")
    yield running
    assert stop_server(running.process) == 0, running.log_text()
