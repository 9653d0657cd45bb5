"""autointerp server: the gRPC service and the legacy REST endpoints in one process.

    python server.py                                          # both doors, settings from env
    uvicorn server:app --host 0.0.0.0 --port 5003 --workers 1  # the legacy launch line

Either way the ASGI app's lifespan also starts the gRPC server (AUTOINTERP_GRPC_PORT, default
50051). Settings are read when the app starts, not when this module is imported.
"""

from __future__ import annotations

import uvicorn

from autointerp_grpc.app import create_app
from autointerp_grpc.config import Settings

app = create_app()


def main() -> None:
    settings = Settings.from_env()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.http_port,
        # grpc.aio shares uvicorn's event loop; the plain asyncio loop is the one it supports.
        loop="asyncio",
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
    )


if __name__ == "__main__":
    main()
