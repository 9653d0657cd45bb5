"""autointerp server: the gRPC service and the legacy REST endpoints in one process.

    python server.py                                          # both doors, settings from env
    AUTOINTERP_HTTP_PORT=0 python server.py                   # gRPC only
    uvicorn server:app --host 0.0.0.0 --port 5003 --workers 1  # the legacy launch line

``python server.py`` runs :func:`autointerp_grpc.app.serve`: gRPC and REST side by side on
one event loop, with SIGTERM/SIGINT handled by the service (drain, then stop, exit 0). With
the legacy launch line the ASGI app's lifespan starts the gRPC server too
(AUTOINTERP_GRPC_PORT, default 50051) and uvicorn handles the signals. Either way settings
are read when the service starts, not when this module is imported.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

from pydantic import ValidationError

from autointerp_grpc.app import create_app, serve
from autointerp_grpc.config import Settings

app = create_app(exit_watchdog=True)


def main() -> None:
    try:
        settings = Settings.from_env()
    except ValidationError as exc:
        # A clear line per bad setting (values hidden: one may be the SECRET), no traceback.
        sys.exit(f"autointerp: invalid configuration:\n{exc}")
    asyncio.run(serve(settings))
    # Everything has stopped and the log is flushed: skip the interpreter's own finalisation
    # (seconds with torch loaded), so the exit follows the stop at once.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
