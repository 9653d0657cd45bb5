"""autointerp server: the gRPC service and the legacy REST endpoints in one process.

    python server.py                                          # both doors, settings from env
    AUTOINTERP_HTTP__PORT=0 python server.py                   # gRPC only
    uvicorn server:app --host 0.0.0.0 --port 5003 --workers 1  # the legacy launch line

``python server.py`` runs :func:`autointerp_grpc.runtime.serve`: gRPC and REST side by side on
one event loop, with SIGTERM/SIGINT handled by the service (drain, then stop, exit 0). With
the legacy launch line the ASGI app's lifespan starts the gRPC server too
(AUTOINTERP_GRPC__PORT, default 50051) and uvicorn handles the signals.

Either way the REST door runs the same HTTP protocol (h11 with a deadline and a size limit on
request heads, :mod:`autointerp_grpc.rest.http_protocol`): under the uvicorn CLI this module,
as it is imported, installs it on the uvicorn configuration importing it. And either way a bad
setting is one line, ``invalid configuration: <setting>: <rule>``, and exit status 2.
Settings are read when the service starts: by ``main()``, or as uvicorn imports this module.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import uvicorn
from starlette.applications import Starlette

from autointerp_grpc.config import ConfigError, Settings, load_settings
from autointerp_grpc.rest import http_protocol
from autointerp_grpc.runtime import StartupError, create_app, serve

CONFIG_ERROR_EXIT = 2
STARTUP_ERROR_EXIT = 1


def _settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(CONFIG_ERROR_EXIT)


def _importing_uvicorn_config() -> uvicorn.Config | None:
    """The uvicorn configuration that is importing this module (``load_app()``/``load()``,
    under the uvicorn CLI or ``uvicorn.run("server:app")``), found on the call stack; None
    when imported otherwise."""
    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, uvicorn.Config):
            return candidate
        frame = frame.f_back
    return None


def _legacy_app() -> Starlette:
    config = _importing_uvicorn_config()
    if config is None:
        # Imported by something else (a test, a tool): settings are read when it starts.
        return create_app(exit_watchdog=True)
    settings = _settings_or_exit()
    http_protocol.install(config, settings.http.head_timeout_s, settings.limits.max_header_bytes)
    return create_app(settings, exit_watchdog=True)


app = _legacy_app()


def main() -> None:
    settings = _settings_or_exit()
    try:
        asyncio.run(serve(settings))
    except StartupError as exc:
        print(f"autointerp: {exc}", file=sys.stderr)
        logging.shutdown()
        os._exit(STARTUP_ERROR_EXIT)
    # Everything has stopped and the log is flushed: skip the interpreter's own finalisation
    # (seconds with torch loaded), so the exit follows the stop at once.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()
