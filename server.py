"""autointerp server: the gRPC service and the legacy REST endpoints in one process.

    python server.py                                          # both doors, settings from env
    uvicorn server:app --host 0.0.0.0 --port 5003 --workers 1  # the legacy launch line

Either way the ASGI app's lifespan also starts the gRPC server (AUTOINTERP_GRPC_PORT, default
50051). Settings are read when the app starts, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from autointerp_grpc.app import create_app
from autointerp_grpc.config import Settings

app = create_app()


class _Server(uvicorn.Server):
    autointerp_app: Starlette

    """uvicorn's server, but SIGTERM/SIGINT end in a clean exit (status 0).

    uvicorn re-raises a captured signal after its graceful shutdown, so the process would
    die by SIGTERM even though every in-flight request finished; an orchestrator reads that
    as a crash.
    """

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Before uvicorn stops accepting connections and waits for in-flight requests: health
        # turns NOT_SERVING and new requests on either door are refused.
        runtime = getattr(self.autointerp_app.state, "runtime", None)
        if runtime is not None:
            runtime.begin_shutdown()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {
            sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def main() -> None:
    settings = Settings.from_env()
    asgi_app = create_app(settings)
    config = uvicorn.Config(
        asgi_app,
        host=settings.host,
        port=settings.http_port,
        # grpc.aio shares uvicorn's event loop; the plain asyncio loop is the one it supports.
        loop="asyncio",
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
    )
    server = _Server(config)
    server.autointerp_app = asgi_app
    server.run()


if __name__ == "__main__":
    main()
