"""``/docs``: an interactive page (Swagger UI) for the REST door, built on ``/openapi.json``.

The page's scripts and styles come from the ``swagger-ui-py`` wheel (Swagger UI 5, which
reads OpenAPI 3.1) and are served by this process under ``/docs/assets``: nothing is fetched
from a CDN, so the page works in clusters without internet access.

The page is open, like ``/openapi.json``: it is static and carries no data. Its "Try it out"
calls go to the RPC routes, which ask for ``X-SECRET-KEY`` when ``SECRET`` is set; the
document declares that header as an apiKey security scheme, so Swagger UI's Authorize button
sends it. The key stays in the page (``persistAuthorization`` off: not kept in local storage).
"""

from __future__ import annotations

import html
import json

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
OPENAPI_PATH = "/openapi.json"

# The package and folder that hold Swagger UI's built files (swagger-ui-bundle.js, ...).
ASSETS_PACKAGE = ("swagger_ui", "static")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} — REST API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{
      url: {openapi_url},
      dom_id: "#swagger-ui",
      deepLinking: true,
      displayRequestDuration: true,
      persistAuthorization: false,
      validatorUrl: null,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout"
    }});
  </script>
</body>
</html>
"""


def docs_page_html(prefix: str = "", title: str = "autointerp") -> str:
    """The page, with its URLs under ``prefix`` (the ASGI root path when mounted below one)."""
    # The prefix is the server's own configuration, escaped all the same (HTML, then JS).
    return _PAGE.format(
        title=html.escape(title),
        assets=html.escape(prefix + ASSETS_PATH, quote=True),
        openapi_url=json.dumps(prefix + OPENAPI_PATH).replace("<", "\\u003c"),
    )


async def docs_endpoint(request: Request) -> HTMLResponse:
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    return HTMLResponse(docs_page_html(prefix))


def docs_routes() -> list[BaseRoute]:
    """``GET /docs`` (the page) and ``/docs/assets/*`` (Swagger UI's files, from the wheel)."""
    return [
        Route(DOCS_PATH, docs_endpoint, methods=["GET"]),
        Mount(ASSETS_PATH, app=StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets"),
    ]
