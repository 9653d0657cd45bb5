"""One JSON error shape on the whole REST door, in process.

Every error — from an RPC route or from Starlette itself (no such path, wrong method, a body
over the cap, a bug outside the RPC routes) — answers the proto's ``ErrorResponse``
(``{"detail", "code"}``, code a gRPC status name) with an ``x-request-id``; and every
response, errors or not, carries ``x-request-id``: the caller's when it sent a sane one.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from google.protobuf import json_format
from starlette.routing import Route
from support import REST_BASE, app_settings, in_process_app

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.runtime import create_app

FRESH_ID = re.compile(r"[0-9a-f]{32}")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"detail", "code"}, body
    assert body["code"] == code
    assert body["detail"]
    # Exactly the proto's ErrorResponse: it parses with no unknown field.
    json_format.Parse(response.text, pb.ErrorResponse())
    assert response.headers["x-request-id"]
    return body


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nope"),
        ("POST", "/v1/nope"),
        ("GET", "/"),
        ("GET", "/v2/score"),
        ("DELETE", "/v1/score/embedding/extra"),
        ("GET", "/docs/assets/no-such-file.js"),
    ],
)
async def test_unknown_path_is_a_json_404(app, method: str, path: str) -> None:
    response = await app.rest.request(method, path, headers=app.headers)
    body = assert_error(response, 404, "NOT_FOUND")
    assert FRESH_ID.fullmatch(response.headers["x-request-id"])
    if path != "/":
        assert path not in body["detail"]  # the caller's own text is not echoed


async def test_unknown_path_without_the_secret_is_still_404(app) -> None:
    assert_error(await app.rest.get("/v1/nope"), 404, "NOT_FOUND")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/v1/score", "POST"),
        ("PUT", "/v1/explain/default", "POST"),
        ("POST", "/v1/methods", "GET, HEAD"),
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/metrics", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
        ("POST", "/docs", "GET, HEAD"),
    ],
)
async def test_wrong_method_on_a_known_path_is_a_json_405(
    app, method: str, path: str, allow: str
) -> None:
    response = await app.rest.request(method, path, headers=app.headers)
    assert_error(response, 405, "UNIMPLEMENTED")
    assert set(response.headers["allow"].split(", ")) == set(allow.split(", "))


async def test_errors_carry_the_callers_request_id(app) -> None:
    headers = {**app.headers, "x-request-id": "caller-id-1"}
    for method, path in (("GET", "/v1/nope"), ("GET", "/v1/score")):
        response = await app.rest.request(method, path, headers=headers)
        assert response.headers["x-request-id"] == "caller-id-1"
    # An id that is not sane (too long) is replaced by a fresh one.
    response = await app.rest.get("/v1/nope", headers={"x-request-id": "x" * 500})
    assert FRESH_ID.fullmatch(response.headers["x-request-id"])


async def test_body_too_large_is_a_json_413(fake_llm) -> None:
    settings = app_settings(fake_llm.base_url, max_request_bytes=1024)
    async with in_process_app(settings) as small:
        body = json.dumps({"explanation": "x" * 4096})
        headers = {**small.headers, "content-type": "application/json", "x-request-id": "big-1"}
        for path in ("/v1/score/embedding", "/v1/explain-and-score"):
            response = await small.rest.post(path, content=body, headers=headers)
            detail = assert_error(response, 413, "RESOURCE_EXHAUSTED")["detail"]
            assert "limit of 1024 bytes" in detail
            assert response.headers["x-request-id"] == "big-1"
        # On an unknown path the path decides first: 404, whatever the body.
        response = await small.rest.post("/v1/nope", content=body, headers=headers)
        assert_error(response, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "path", ["/health", "/metrics", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"]
)
async def test_every_route_carries_a_request_id(app, path: str) -> None:
    response = await app.rest.get(path)
    assert response.status_code == 200
    assert FRESH_ID.fullmatch(response.headers["x-request-id"])
    assert len(response.headers.get_list("x-request-id")) == 1
    echoed = await app.rest.get(path, headers={"x-request-id": "probe-7"})
    assert echoed.headers.get_list("x-request-id") == ["probe-7"]


async def test_rpc_routes_keep_a_single_request_id(app) -> None:
    response = await app.rest.get("/v1/methods", headers={**app.headers, "x-request-id": "rpc-1"})
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == ["rpc-1"]
    unauthenticated = await app.rest.get("/v1/methods", headers={"x-request-id": "rpc-2"})
    assert_error(unauthenticated, 401, "UNAUTHENTICATED")
    assert unauthenticated.headers.get_list("x-request-id") == ["rpc-2"]


async def test_a_bug_outside_the_rpc_routes_is_a_generic_json_500(app) -> None:
    async def broken(request):
        raise RuntimeError("secret-looking detail sk-should-not-leak")

    asgi = create_app(runtime=app.runtime)
    asgi.router.routes.append(Route("/broken", broken))
    transport = httpx.ASGITransport(app=asgi, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=REST_BASE) as client:
        response = await client.get("/broken", headers={"x-request-id": "bug-1"})
    body = assert_error(response, 500, "INTERNAL")
    assert "sk-should-not-leak" not in response.text
    assert "bug-1" in body["detail"]
    assert response.headers["x-request-id"] == "bug-1"
    assert "bug-1" in app.log_text()  # logged with its traceback under that id
