"""Property-based and load tests against the app, in process: random JSON bodies and random
activation records never produce a 5xx or a non-finite score; a bounded mixed load ends with
zero unexpected errors and no leaked connections."""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from typing import Any

import grpc
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from samples import RIGHT_EXPLANATION, cat_records
from support import REST_BASE

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2_grpc as pb_grpc
from autointerp_grpc.runtime import create_app

POST_PATHS = [
    "/v1/explain/default",
    "/v1/score/embedding",
    "/v1/score/fuzz-detection",
    "/v1/explain",
    "/v1/score",
]
FIELD_NAMES = [
    "activations", "tokens", "values", "explanation", "openrouterKey", "openrouter_key",
    "model", "type", "method", "llm", "apiKey", "provider", "nonActivating", "fuzzParams",
    "examplesPerPrompt", "useLogprobs", "defaultParams", "threshold", "maxTokens",
]  # fmt: skip
PROPERTY_SETTINGS = settings(
    max_examples=int(os.environ.get("AUTOINTERP_PROPERTY_EXAMPLES", "120")),
    # The same examples on every run, so CI is reproducible; AUTOINTERP_PROPERTY_RANDOM=1
    # explores new ones.
    derandomize=os.environ.get("AUTOINTERP_PROPERTY_RANDOM") != "1",
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["FUZZ", "DETECTION", "fuzz", "default", "embedding", "recall"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), children, max_size=6)
    ),
    max_leaves=25,
)


async def _post(app, path: str, content: bytes) -> httpx.Response:
    # An exception inside the app would reach the test here (ASGITransport re-raises it):
    # the in-process counterpart of a 500.
    return await app.rest.post(
        path, content=content, headers={**app.headers, "Content-Type": "application/json"}
    )


@PROPERTY_SETTINGS
@given(path=st.sampled_from(POST_PATHS), body=json_values)
async def test_random_json_bodies_never_5xx(app, path: str, body: Any) -> None:
    response = await _post(app, path, json.dumps(body).encode())
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["detail"]


@PROPERTY_SETTINGS
@given(path=st.sampled_from(POST_PATHS), content=st.binary(max_size=200))
async def test_random_bytes_never_5xx(app, path: str, content: bytes) -> None:
    response = await _post(app, path, content)
    assert response.status_code < 500, response.text


# Realistic token text: words, punctuation, unicode letters, leading spaces and newlines.
token = st.text(
    alphabet=st.characters(categories=("L", "N", "P", "Zs"), exclude_characters="<>"),
    min_size=1,
    max_size=8,
) | st.sampled_from([" cat", " the", "\n", " é", "日本", " 🙂"])


@st.composite
def record(draw: st.DrawFn) -> dict[str, Any]:
    tokens = draw(st.lists(token, min_size=1, max_size=8))
    values = draw(
        st.lists(
            st.floats(min_value=-5, max_value=5, allow_nan=False),
            min_size=len(tokens),
            max_size=len(tokens),
        )
    )
    return {"tokens": tokens, "values": values}


SCORE_CALLS = [
    ("/v1/score/embedding", {}),
    ("/v1/score/fuzz-detection", {"openrouterKey": "sk-prop", "model": "m", "type": "FUZZ"}),
    ("/v1/score/fuzz-detection", {"openrouterKey": "sk-prop", "model": "m", "type": "DETECTION"}),
    ("/v1/score", {"method": "detection", "llm": {"model": "m", "apiKey": "sk-prop"}}),
    ("/v1/score", {"method": "embedding"}),
    ("/v1/score", {"method": "simulation", "llm": {"model": "m", "apiKey": "sk-prop"}}),
    ("/v1/score", {"method": "recall", "llm": {"model": "m", "apiKey": "sk-prop"}}),
    ("/v1/score", {"method": "intruder", "llm": {"model": "m", "apiKey": "sk-prop"}}),
]


@PROPERTY_SETTINGS
@given(
    call=st.sampled_from(SCORE_CALLS),
    records=st.lists(record(), min_size=1, max_size=12),
    explanation=st.text(min_size=1, max_size=30).filter(str.strip),
)
async def test_random_records_never_5xx_or_non_finite(app, call, records, explanation) -> None:
    path, extra = call
    body = {"activations": records, "explanation": explanation, **extra}
    response = await _post(app, path, json.dumps(body).encode())
    if response.status_code == 200:
        score = response.json()["score"]
        assert math.isfinite(score)
        low = -1.0 if extra.get("method") == "simulation" else 0.0
        assert low <= score <= 1.0
    else:
        # Bad records (400), or a model whose answers leave nothing to score: a simulation
        # predicting one value everywhere, too few usable answers (503 UNAVAILABLE, by the
        # scoring protocol: a failure is never a score). Never a server error.
        code = response.json()["code"]
        assert (response.status_code, code) in {
            (400, "INVALID_ARGUMENT"),
            (503, "UNAVAILABLE"),
        }, response.text


# --- bounded load -------------------------------------------------------------------------

# In process the load reaches its volume fast; AUTOINTERP_LOAD_SECONDS=60 soaks it longer.
LOAD_SECONDS = float(os.environ.get("AUTOINTERP_LOAD_SECONDS", "8"))
LOAD_CLIENTS = 32


def _open_fds() -> int:
    """This process's open descriptors: the app's, and the fake LLM's and the clients'."""
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow  # a load test: 32 clients of mixed RPCs for ~13 s
async def test_bounded_mixed_load(app, fake_llm) -> None:
    records = cat_records()
    expected_failures = {"429": 429, "garbage": 503, "bad_key": 400}
    # (door, path or RPC, body, expected HTTP status)
    calls: list[tuple[str, str, dict[str, Any], int]] = [
        ("rest", "/v1/explain/default",
         {"activations": records, "openrouterKey": "sk-load", "model": "m@latency=50"}, 200),
        ("rest", "/v1/score/embedding",
         {"activations": records, "explanation": RIGHT_EXPLANATION}, 200),
        ("rest", "/v1/score/fuzz-detection",
         {"activations": records, "explanation": RIGHT_EXPLANATION, "openrouterKey": "sk-load",
          "model": "m@latency=50", "type": "DETECTION"}, 200),
        ("rest", "/v1/score",
         {"method": "fuzz", "activations": records, "explanation": RIGHT_EXPLANATION,
          "llm": {"model": "m@latency=50", "apiKey": "sk-load"}}, 200),
        ("grpc", "ExplainDefault",
         {"activations": records, "openrouterKey": "sk-load", "model": "m@latency=50"}, 200),
        ("grpc", "ScoreEmbedding", {"activations": records, "explanation": "cats"}, 200),
    ]  # fmt: skip
    for fault, status in expected_failures.items():
        calls.append(
            ("rest", "/v1/explain/default",
             {"activations": records, "openrouterKey": "sk-load", "model": f"m@fault={fault}"},
             status)
        )  # fmt: skip
    request_types = {
        "ExplainDefault": pb.ExplainDefaultRequest,
        "ScoreEmbedding": pb.ScoreEmbeddingRequest,
    }
    from google.protobuf import json_format

    unexpected: list[str] = []
    counts = {"ok": 0, "expected_error": 0}
    rng = random.Random(0)

    async def client(http: httpx.AsyncClient, stub: pb_grpc.AutoInterpStub, stop_at: float) -> None:
        while time.monotonic() < stop_at:
            door, target, body, expected = rng.choice(calls)
            if door == "rest":
                response = await http.post(
                    target,
                    content=json.dumps(body),
                    headers={**app.headers, "Content-Type": "application/json"},
                )
                status = response.status_code
            else:
                request = json_format.ParseDict(body, request_types[target]())
                try:
                    await getattr(stub, target)(request, metadata=app.auth, timeout=60)
                    status = 200
                except grpc.aio.AioRpcError as exc:
                    status = -1
                    unexpected.append(f"{target}: {exc.code()} {exc.details()}")
            if status != expected:
                unexpected.append(f"{door} {target}: {status}, expected {expected}")
            counts["ok" if status == 200 else "expected_error"] += 1

    transport = httpx.ASGITransport(app=create_app(runtime=app.runtime))

    async def phase(seconds: float) -> int:
        """Run the load for ``seconds`` with fresh client connections (REST through the app's
        ASGI transport, gRPC over loopback); the open descriptors once the clients have gone."""
        async with (
            httpx.AsyncClient(transport=transport, base_url=REST_BASE, timeout=60) as http,
            grpc.aio.insecure_channel(app.grpc_target) as channel,
        ):
            stub = pb_grpc.AutoInterpStub(channel)
            stop_at = time.monotonic() + seconds
            await asyncio.gather(*(client(http, stub, stop_at) for _ in range(LOAD_CLIENTS)))
        await asyncio.sleep(1)
        return _open_fds()

    # The first phase fills the upstream keep-alive pool; after the second, the server holds
    # no more descriptors than after the first: nothing leaks per request or per client.
    warm = await phase(min(3.0, LOAD_SECONDS / 4))
    after = await phase(LOAD_SECONDS)
    assert not unexpected, unexpected[:10]
    assert counts["ok"] > 100 and counts["expected_error"] > 10, counts
    assert after <= warm + 8, (warm, after)
    assert fake_llm.stats()["in_flight"] == 0
