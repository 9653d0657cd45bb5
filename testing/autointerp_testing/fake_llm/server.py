""":class:`FakeLLMServer`: the fake LLM's app served by uvicorn on a background thread.

The server thread runs its own event loop; :meth:`FakeLLMServer.start` returns once it
listens and :meth:`FakeLLMServer.stop` returns once it has stopped, dropping open connections
first so that a hanging request never holds the shutdown.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn

from autointerp_testing.fake_llm.app import build_app
from autointerp_testing.fake_llm.state import FakeLLMState

__all__ = ["FakeLLMServer"]

_START_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5  # seconds; uvicorn's timeout_graceful_shutdown is an int
_KEEP_ALIVE_S = 75
"""Longer than HTTP clients keep idle connections (httpx: 5 s), so a client never reuses a
connection the server is closing."""


class _Uvicorn(uvicorn.Server):
    """uvicorn's server, stopped by an event rather than its polling loop, dropping every open
    connection before its graceful shutdown."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._exit: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        await super().startup(sockets=sockets)
        self.ready.set()

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the default headers
        assert self._exit is not None
        await self._exit.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for connection in list(self.server_state.connections):
            connection.transport.abort()  # in-flight handlers see the client leave
        await super().shutdown(sockets=sockets)

    def request_exit(self) -> None:
        """Ask the server to stop; callable from any thread."""
        self.should_exit = True
        if self._loop is not None and self._exit is not None:
            self._loop.call_soon_threadsafe(self._exit.set)


def _bind(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class FakeLLMServer(FakeLLMState):
    """A fake OpenAI chat-completions server (see :mod:`autointerp_testing.fake_llm`).

    Use it as a context manager; ``port=0`` picks a free port, :attr:`base_url` is what
    ``AsyncOpenAI(base_url=...)`` takes. Restartable after :meth:`stop`.
    """

    def __init__(  # noqa: PLR0917 (positional signature is the documented API)
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_s: float = 0.0,
        fault: str | None = None,
        fault_count: int | None = None,
        retry_after_ms: int = 50,
    ) -> None:
        super().__init__(latency_s, fault, fault_count, retry_after_ms)
        self._host = host
        self._port = port
        self._bound_port: int | None = None
        self._server: _Uvicorn | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Bind and serve on a daemon thread; returns once the server accepts connections."""
        if self._server is not None:
            raise RuntimeError("FakeLLMServer is already running")
        sock = _bind(self._host, self._port)
        config = uvicorn.Config(
            build_app(self),
            lifespan="off",
            log_config=None,  # leave the host process's logging alone
            server_header=False,
            date_header=False,
            headers=[("server", "FakeLLM/1.0")],
            timeout_keep_alive=_KEEP_ALIVE_S,
            timeout_graceful_shutdown=_STOP_TIMEOUT_S,
        )
        server = _Uvicorn(config)
        self._error = None
        thread = threading.Thread(
            target=self._serve,
            args=(server, sock),
            name=f"fake-llm-{sock.getsockname()[1]}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        self._bound_port = int(sock.getsockname()[1])
        thread.start()
        if not server.ready.wait(_START_TIMEOUT_S) or self._error is not None:
            self.stop()
            raise RuntimeError("the fake LLM server did not start") from self._error
        return self

    def _serve(self, server: _Uvicorn, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start(); a thread has no caller to raise to
            self._error = exc
            server.ready.set()
        finally:
            sock.close()

    def stop(self) -> None:
        """Stop serving and drop open connections; idempotent and prompt even if requests
        hang."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server, self._thread, self._bound_port = None, None, None
        server.request_exit()
        if thread is not None:
            thread.join(timeout=_STOP_TIMEOUT_S + 1.0)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port once started, else the configured one."""
        return self._bound_port if self._bound_port is not None else self._port

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, what ``AsyncOpenAI(base_url=...)`` takes."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}/v1"
