"""The fake LLM's HTTP surface: a Starlette app over a :class:`FakeLLMState`.

Routes: ``POST /v1/chat/completions`` (also ``/chat/completions``), ``GET /v1/models`` (also
``/models``), ``GET /health``, ``GET``/``POST /_control`` (settings), ``GET /_stats``,
``DELETE /_stats`` and ``POST /_stats/reset``. Errors come as OpenAI-style
``{"error": {...}}`` bodies; API keys are never logged or echoed. The faults are described in
:mod:`.faults`; a "drip" answer stays in flight in the stats until its last byte is out.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import math
import time
import zlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from autointerp_testing.fake_llm.answers import Answer
from autointerp_testing.fake_llm.faults import (
    BAD_USAGES,
    BOMB_BYTES,
    ERROR_FAULTS,
    HUGE_BODY_BYTES,
    JSON_SCHEMA_REJECTED,
    LOGPROBS_REJECTED,
    RATE_LIMIT_ERROR,
    THINK_TRACE,
    Directives,
    auth_error,
    bad_request,
    echo_key_message,
    error_body,
)
from autointerp_testing.fake_llm.recognise import (
    last_user_message,
    message_text,
    request_kind,
    system_prompt,
)
from autointerp_testing.fake_llm.state import Exchange, FakeLLMState

__all__ = [
    "COST_PER_TOKEN",
    "DRIP_CHUNK_BYTES",
    "DRIP_INTERVAL_S",
    "MAX_HANG_S",
    "MODEL_IDS",
    "build_app",
]

COST_PER_TOKEN = 1e-6
"""The fake price reported as ``usage.cost`` (USD per prompt or completion token)."""
MAX_HANG_S = 600.0
"""The longest a "hang" fault holds a request before answering 504."""
DRIP_CHUNK_BYTES = 1
"""How many bytes of its body a "drip" answer sends at a time."""
DRIP_INTERVAL_S = 0.2
"""The pause between two pieces of a "drip" answer: short enough for any per-read timeout,
while a whole answer (some hundred bytes) takes minutes."""
MODEL_IDS: tuple[str, ...] = ("fake-model", "openai/gpt-4o-mini", "gpt-4o-mini")
"""What ``GET /v1/models`` lists (any model name is accepted)."""

_GATEWAY_TIMEOUT = {
    "message": "The fake model did not answer in time.",
    "type": "timeout",
    "param": None,
    "code": "timeout",
}


def _json(status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(payload), status_code=status, headers=headers, media_type="application/json"
    )


def _error(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return _json(status, error_body(error), headers)


def _refused_parameters(
    fault: str | None, payload: dict[str, Any]
) -> tuple[int, dict[str, Any]] | None:
    """The error of a provider refusing parameters it does not take ("reject_logprobs":
    log probabilities, HTTP 400; "reject_json_schema": a json_schema ``response_format``,
    HTTP 422), or None."""
    asks_logprobs = bool(payload.get("logprobs")) or payload.get("top_logprobs") is not None
    if fault == "reject_logprobs" and asks_logprobs:
        return 400, LOGPROBS_REJECTED
    response_format = payload.get("response_format")
    if (
        fault == "reject_json_schema"
        and isinstance(response_format, dict)
        and response_format.get("type") == "json_schema"
    ):
        return 422, JSON_SCHEMA_REJECTED
    return None


async def _client_left(request: Request, seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as the client disconnects (its request body must
    have been read already), False if it is still there when the time is up."""

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    try:
        async with asyncio.timeout(seconds):
            await disconnected()
    except TimeoutError:
        return False
    return True


class _Drip(StreamingResponse):
    """A "drip" answer: HTTP 200 and a chat completion, a few bytes at a time.

    The exchange is settled (200) as the last piece goes out, or (0) when the client leaves
    before that: until then the request counts as in flight.
    """

    def __init__(self, body: bytes, exchange: Exchange) -> None:
        self._exchange = exchange
        super().__init__(
            self._pieces(body),
            media_type="application/json",
            headers={"content-length": str(len(body))},
        )

    async def _pieces(self, body: bytes) -> AsyncIterator[bytes]:
        step = max(1, DRIP_CHUNK_BYTES)
        for start in range(0, len(body), step):
            if start + step >= len(body):
                self._exchange.settle(200)
            yield body[start : start + step]
            if start + step < len(body):
                await asyncio.sleep(DRIP_INTERVAL_S)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._exchange.settle(0)  # no-op once the last piece went out


_PAD_PIECE = b" " * (1024 * 1024)


async def _padded(size: int, tail: bytes) -> AsyncIterator[bytes]:
    """``size`` bytes of JSON whitespace, 1 MiB at a time, then ``tail``."""
    for start in range(0, size, len(_PAD_PIECE)):
        yield _PAD_PIECE[: min(len(_PAD_PIECE), size - start)]
        await asyncio.sleep(0)
    yield tail


@functools.lru_cache(maxsize=2)
def _gzip_bomb(tail: bytes) -> bytes:
    """:data:`BOMB_BYTES` of whitespace then ``tail``, gzip-compressed (computed once)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(_PAD_PIECE) for _ in range(BOMB_BYTES // len(_PAD_PIECE))]
    parts.append(packer.compress(tail))
    parts.append(packer.flush())
    return b"".join(parts)


LOGPROBS_FLOOD_ENTRIES = 100_000
"""Per-token log probabilities in a "logprobs_flood" answer: about 7 MB of JSON, 100,000
objects to build."""

_FLOOD_MARK = "logprobs flood goes here"


@functools.lru_cache(maxsize=1)
def _logprobs_flood() -> str:
    entry = {"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}
    return json.dumps({"content": [entry] * LOGPROBS_FLOOD_ENTRIES, "refusal": None})


_BOMB_TAIL = b'{"error": "the completion never comes"}'


def warm_gzip_bomb() -> None:
    """Compress the "gzip_bomb" body now (once per process; it is cached), so that a test that
    measures its own memory while the fake serves the bomb does not count the compression."""
    _gzip_bomb(_BOMB_TAIL)


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _parse_chat_request(body: bytes) -> tuple[dict[str, Any], list[Any], Directives]:
    """Validate a chat request; ``ValueError`` carries the 400 message."""
    try:
        request = json.loads(body)
    except ValueError:
        raise ValueError("Request body is not valid JSON") from None
    if not isinstance(request, dict):
        raise ValueError("Request body must be a JSON object")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty list")
    if request.get("stream"):
        raise ValueError("The fake LLM does not support streaming")
    return request, messages, Directives(str(request.get("model") or "fake-model"))


class _Endpoints:
    """The route handlers, bound to one state."""

    def __init__(self, state: FakeLLMState) -> None:
        self.state = state
        self._bad_usages = itertools.cycle(BAD_USAGES)

    async def health(self, request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def models(self, request: Request) -> Response:
        denied = auth_error(request.headers.get("authorization"))
        if denied is not None:
            return _error(*denied)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "fake-llm"}
            for name in MODEL_IDS
        ]
        return _json(200, {"object": "list", "data": data})

    async def stats(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.state.reset_stats()
        return _json(200, self.state.jsonable_stats())

    async def reset_stats(self, request: Request) -> Response:
        self.state.reset_stats()
        return _json(200, self.state.jsonable_stats())

    async def control(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                update = json.loads(await request.body() or b"{}")
                if not isinstance(update, dict):
                    raise ValueError("control body must be a JSON object")
                self.state.apply_control(update)
            except (ValueError, TypeError) as exc:
                return _error(400, bad_request(str(exc)))
        return _json(200, self.state.config())

    async def not_found(self, request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        error = {
            "message": f"Unknown path {request.url.path!r}"
            if status == 404
            else f"Method {request.method} not allowed on {request.url.path!r}",
            "type": "invalid_request_error",
            "param": None,
            "code": "not_found" if status == 404 else "method_not_allowed",
        }
        return _error(status, error)

    # ---- chat completions ------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        exchange = self.state.begin()
        response: Response | None = None
        try:
            response = await self._chat(request, exchange)
            return response
        finally:
            if not isinstance(response, _Drip):  # a drip settles once it is sent
                # A no-op unless nothing was answered (hang, client gone, stop).
                exchange.settle(0)

    async def _chat(self, request: Request, exchange: Exchange) -> Response:
        try:
            body = await request.body()
        except ClientDisconnect:
            return Response()
        denied = auth_error(request.headers.get("authorization"))
        try:
            payload, messages, directives = _parse_chat_request(body)
        except ValueError as exc:
            status, error = denied or (400, bad_request(str(exc)))
            exchange.settle(status)
            return _error(status, error)
        # Classify before the auth check so rejected requests still count under their kind.
        record = exchange.record
        record["model"] = directives.model
        record["kind"] = kind = request_kind(messages)
        answer = Answer(kind, system_prompt(messages), last_user_message(messages))
        record["n_examples"] = answer.n_examples
        # What the model was shown, so tests can check which records reached which prompt.
        record["prompt"] = last_user_message(messages)
        response_format = payload.get("response_format")
        # Which structured output was asked for (its type), if any.
        record["response_format"] = (
            response_format.get("type") if isinstance(response_format, dict) else None
        )
        refusal = self._refusal(exchange, denied)
        if refusal is not None:
            return refusal

        fault, latency = self.state.take_fault_and_latency(directives)
        if request.query_params.get("redirected"):
            fault = None  # the second leg of a "redirect_bomb": the plain answer
        record["fault"] = fault
        if latency > 0 and await _client_left(request, latency):
            return Response()
        if fault in ERROR_FAULTS:
            return self._fault_error(exchange, fault)
        if fault in ("redirect_bomb", "echo_key"):
            return self._hostile_error(request, exchange, fault)
        if fault == "hang":
            if await _client_left(request, MAX_HANG_S):
                return Response()
            exchange.settle(504)
            return _error(504, _GATEWAY_TIMEOUT)
        refused = _refused_parameters(fault, payload)
        if refused is not None:
            exchange.settle(refused[0])
            return _error(*refused)

        content = answer.content(fault) if directives.answer is None else directives.answer
        reasoning = None
        if directives.reasoning:
            reasoning = THINK_TRACE
        elif fault == "think":
            content = f"<think>\n{THINK_TRACE}\n</think>\n\n{content}"
        # "no_logprobs" and @logprobs=0: a provider that ignores the request for them.
        logprobs = bool(payload.get("logprobs")) and directives.logprobs and fault != "no_logprobs"
        completion = self._completion(
            payload, directives.model, content, reasoning, answer if logprobs else None
        )
        return self._answer(exchange, fault, completion)

    def _answer(
        self, exchange: Exchange, fault: str | None, completion: dict[str, Any]
    ) -> Response:
        """The HTTP 200 carrying ``completion``, as ``fault`` spoils it."""
        if fault == "drip":
            return _Drip(json.dumps(completion).encode(), exchange)
        exchange.settle(200)
        if fault == "nested_body":
            return Response(b"[" * 100_000 + b"]" * 100_000, media_type="application/json")
        if fault == "huge_body":
            tail = json.dumps(completion).encode()
            # Chunked, no Content-Length: the size shows only as it is read.
            return StreamingResponse(_padded(HUGE_BODY_BYTES, tail), media_type="application/json")
        if fault == "lying_length":
            return StreamingResponse(
                _padded(HUGE_BODY_BYTES, b""),
                media_type="application/json",
                headers={"content-length": str(2**40)},
            )
        if fault == "gzip_bomb":
            return Response(
                _gzip_bomb(_BOMB_TAIL),
                media_type="application/json",
                headers={"content-encoding": "gzip"},
            )
        if fault == "huge_cost":
            completion["usage"]["cost"] = 1e308
        elif fault == "logprobs_flood":
            # Encoded once: the fake shares a process (and the GIL) with the server in tests.
            completion["choices"][0]["logprobs"] = _FLOOD_MARK
            text = json.dumps(completion).replace(json.dumps(_FLOOD_MARK), _logprobs_flood())
            return Response(text, media_type="application/json")
        if fault == "not_json":
            text = json.dumps(completion)
            return Response(text[: len(text) // 2], media_type="application/json")
        if fault == "choices_string":
            completion["choices"] = "oops"
        elif fault == "no_message":
            for choice in completion["choices"]:
                del choice["message"]
        elif fault == "bad_usage":
            completion["usage"].update(next(self._bad_usages))
        return _json(200, completion)

    def batch_completion(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The chat completion a batch request line's body gets (no faults, no latency)."""
        messages = payload.get("messages")
        if not isinstance(messages, list) or not messages:
            messages = [{"role": "user", "content": ""}]
        payload = {**payload, "messages": messages}
        model = Directives(str(payload.get("model") or "fake-model")).model
        answer = Answer(
            request_kind(messages), system_prompt(messages), last_user_message(messages)
        )
        content = answer.content(None)
        return self._completion(
            payload, model, content, None, answer if payload.get("logprobs") else None
        )

    def _hostile_error(self, request: Request, exchange: Exchange, fault: str) -> Response:
        """A "redirect_bomb" (307 carrying a gzip bomb) or "echo_key" (400 echoing the key)."""
        if fault == "redirect_bomb":
            exchange.settle(307)
            return Response(
                _gzip_bomb(_BOMB_TAIL),
                status_code=307,
                media_type="application/json",
                headers={
                    "content-encoding": "gzip",
                    "location": f"{request.url.path}?redirected=1",
                },
            )
        exchange.settle(400)
        key = (request.headers.get("authorization") or "").partition(" ")[2].strip()
        return _error(400, bad_request(echo_key_message(key)))

    def _refusal(
        self, exchange: Exchange, denied: tuple[int, dict[str, Any]] | None
    ) -> Response | None:
        """The answer to a request refused before it is looked at: a bad key, or (for a
        request the rate limit does not let through) HTTP 429."""
        if denied is not None:
            exchange.settle(denied[0])
            return _error(*denied)
        limit = self.state.rate_limit
        wait_s = limit.take() if limit is not None else 0.0
        return self._rate_limited(exchange, wait_s) if wait_s > 0 else None

    def _rate_limited(self, exchange: Exchange, wait_s: float) -> Response:
        """HTTP 429 for a request over the rate limit, saying when the next one would pass."""
        retry_ms = max(1, math.ceil(wait_s * 1000))
        record = exchange.record
        record["fault"] = "rate_limit"
        exchange.settle(429)
        headers = {
            "retry-after-ms": str(retry_ms),
            "retry-after": str(max(1, math.ceil(retry_ms / 1000))),
        }
        return _error(429, RATE_LIMIT_ERROR, headers)

    def _fault_error(self, exchange: Exchange, fault: str) -> Response:
        status, error = ERROR_FAULTS[fault]
        headers = None
        if status == 429:
            retry_ms = self.state.retry_after_ms
            headers = {
                "retry-after-ms": str(retry_ms),
                "retry-after": str(max(1, math.ceil(retry_ms / 1000))),
            }
        exchange.settle(status)
        return _error(status, error, headers)

    def _completion(
        self,
        request: dict[str, Any],
        model: str,
        content: str,
        reasoning: str | None,
        logprobs_of: Answer | None,
    ) -> dict[str, Any]:
        """The chat completion carrying ``content``; with ``logprobs_of``, its log
        probabilities (``top_logprobs`` alternatives per token, as the request asks)."""
        message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None}
        if reasoning is not None:
            message["reasoning"] = reasoning
        choice: dict[str, Any] = {
            "index": 0,
            "message": message,
            "finish_reason": "stop",
            "logprobs": None,
        }
        if logprobs_of is not None:
            top_n = request.get("top_logprobs")
            top = int(top_n) if isinstance(top_n, (int, float)) else None
            choice["logprobs"] = {"content": logprobs_of.logprobs(content, top), "refusal": None}
        prompt_chars = sum(len(message_text(m)) for m in request["messages"])
        prompt_tokens = max(1, prompt_chars // 4)
        completion_tokens = _approx_tokens(content) + (
            _approx_tokens(reasoning) if reasoning else 0
        )
        total_tokens = prompt_tokens + completion_tokens
        cached = self.state.cached_prefix_tokens(
            request["messages"],
            lambda fixed: min(prompt_tokens, sum(len(message_text(m)) for m in fixed) // 4),
        )
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total_tokens,
            "cost": round(total_tokens * COST_PER_TOKEN, 12),
        }
        if cached:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        return {
            "id": self.state.next_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": usage,
            "system_fingerprint": "fake-llm",
        }


def build_app(state: FakeLLMState) -> Starlette:
    """The fake LLM's Starlette app, serving ``state``."""
    endpoints = _Endpoints(state)
    chat = endpoints.chat_completions
    state.batches.answer = endpoints.batch_completion
    routes = [
        *state.batches.routes(),
        Route("/health", endpoints.health, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/chat/completions", chat, methods=["POST"]),
        Route("/v1/models", endpoints.models, methods=["GET"]),
        Route("/models", endpoints.models, methods=["GET"]),
        Route("/_control", endpoints.control, methods=["GET", "POST"]),
        Route("/_stats", endpoints.stats, methods=["GET", "DELETE"]),
        Route("/_stats/reset", endpoints.reset_stats, methods=["POST"]),
    ]
    handlers = {404: endpoints.not_found, 405: endpoints.not_found}
    return Starlette(routes=routes, exception_handlers=handlers)
