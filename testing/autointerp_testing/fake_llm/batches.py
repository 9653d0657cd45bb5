"""The fake LLM's Batch API: OpenAI's ``/v1/files`` and ``/v1/batches``, answered in memory.

A batch's input file is read when the batch is created; the batch stays ``in_progress`` for
:attr:`FakeBatches.delay_s` seconds and is settled on the first look after that: every line
is answered as ``/v1/chat/completions`` would answer it (by ``answer``), except

* :attr:`FakeBatches.failure_rate`: that fraction of the requests (chosen by their
  ``custom_id``, each key at most once, so a resubmitted request succeeds) goes to the
  error file instead, as a provider's transient failure;
* :attr:`FakeBatches.expire`: the batch ends ``expired`` with only its first half answered
  (the rest in the error file, ``batch_expired``), as OpenAI ends a batch past its window.

``POST /v1/batches/{id}/cancel`` ends a batch ``cancelled`` with nothing answered. Every
route checks the bearer key as chat completions do. :attr:`FakeBatches.requests` counts the
requests answered through batches (not in the chat-completions stats).
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from autointerp_testing.fake_llm.faults import auth_error

Answerer = Callable[[dict[str, Any]], dict[str, Any]]


def _json(status: int, payload: object) -> Response:
    return Response(json.dumps(payload), status_code=status, media_type="application/json")


def _not_found(what: str) -> Response:
    error = {"message": f"No such {what}", "type": "invalid_request_error", "code": "not_found"}
    return _json(404, {"error": error})


def _bad(message: str) -> Response:
    error = {"message": message, "type": "invalid_request_error", "code": None}
    return _json(400, {"error": error})


def _multipart_file(content_type: str, body: bytes) -> tuple[bytes, str] | None:
    """The ``file`` part's bytes and the ``purpose`` field of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    data: bytes | None = None
    purpose = ""
    for part in message.iter_parts():  # pyright: ignore[reportAttributeAccessIssue]
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        if name == "file":
            data = payload
        elif name == "purpose":
            purpose = payload.decode()
    return (data, purpose) if data is not None else None


class FakeBatches:
    """Files and batches of one fake LLM."""

    def __init__(self, answer: Answerer | None = None) -> None:
        self.answer = answer
        """How a request line's body is answered (the app sets it)."""
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._inputs: dict[str, list[dict[str, Any]]] = {}
        self._failed_once: set[str] = set()
        self.delay_s = 0.0
        """Seconds a batch stays in progress."""
        self.failure_rate = 0.0
        """Fraction of requests failed (each key at most once)."""
        self.expire = False
        """Batches end expired, half answered."""
        self.requests = 0
        """Requests answered through batches."""

    def configure(
        self, delay_s: float = 0.0, failure_rate: float = 0.0, expire: bool = False
    ) -> None:
        if delay_s < 0 or not 0.0 <= failure_rate <= 1.0:
            raise ValueError("delay_s must be >= 0 and failure_rate within [0, 1]")
        self.delay_s, self.failure_rate, self.expire = delay_s, failure_rate, expire

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self.create_file, methods=["POST"]),
            Route("/v1/files/{file_id}/content", self.file_content, methods=["GET"]),
            Route("/v1/batches", self.create_batch, methods=["POST"]),
            Route("/v1/batches", self.list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", self.retrieve, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", self.cancel, methods=["POST"]),
        ]

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-fake-{next(self._ids)}"

    async def create_file(self, request: Request) -> Response:
        denied = auth_error(request.headers.get("authorization"))
        if denied is not None:
            return _json(denied[0], {"error": denied[1]})
        parsed = _multipart_file(request.headers.get("content-type", ""), await request.body())
        if parsed is None:
            return _bad("a multipart body with a 'file' part is required")
        data, purpose = parsed
        file_id = self._new_id("file")
        with self._lock:
            self.files[file_id] = data
        return _json(
            200,
            {
                "id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": "input.jsonl", "purpose": purpose or "batch", "status": "processed",
            },
        )  # fmt: skip

    async def file_content(self, request: Request) -> Response:
        denied = auth_error(request.headers.get("authorization"))
        if denied is not None:
            return _json(denied[0], {"error": denied[1]})
        data = self.files.get(request.path_params["file_id"])
        if data is None:
            return _not_found("file")
        return Response(data, media_type="application/octet-stream")

    async def create_batch(self, request: Request) -> Response:
        denied = auth_error(request.headers.get("authorization"))
        if denied is not None:
            return _json(denied[0], {"error": denied[1]})
        try:
            body = json.loads(await request.body())
            data = self.files[body["input_file_id"]]
            lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError):
            return _bad("input_file_id must name an uploaded JSONL file")
        if body.get("endpoint") != "/v1/chat/completions":
            return _bad("only /v1/chat/completions batches are served")
        now = int(time.time())
        batch_id = self._new_id("batch")
        batch = {
            "id": batch_id, "object": "batch", "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": body.get("completion_window", "24h"), "status": "in_progress",
            "created_at": now, "in_progress_at": now, "expires_at": now + 24 * 3600,
            "output_file_id": None, "error_file_id": None,
            "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
            "metadata": body.get("metadata"), "errors": None,
        }  # fmt: skip
        with self._lock:
            self.batches[batch_id] = batch
            self._inputs[batch_id] = lines
            # The settings when it was created decide how it ends.
            batch["_due"] = time.monotonic() + self.delay_s
            batch["_expire"], batch["_failure_rate"] = self.expire, self.failure_rate
        return _json(200, _public(batch))

    async def list_batches(self, request: Request) -> Response:
        with self._lock:
            data = [_public(b) for b in self.batches.values()]
        return _json(200, {"object": "list", "data": data, "has_more": False})

    async def retrieve(self, request: Request) -> Response:
        denied = auth_error(request.headers.get("authorization"))
        if denied is not None:
            return _json(denied[0], {"error": denied[1]})
        batch_id = request.path_params["batch_id"]
        with self._lock:
            batch = self.batches.get(batch_id)
            if batch is None:
                return _not_found("batch")
            if batch["status"] == "in_progress" and time.monotonic() >= batch["_due"]:
                self._settle(batch)
            return _json(200, _public(batch))

    async def cancel(self, request: Request) -> Response:
        denied = auth_error(request.headers.get("authorization"))
        if denied is not None:
            return _json(denied[0], {"error": denied[1]})
        with self._lock:
            batch = self.batches.get(request.path_params["batch_id"])
            if batch is None:
                return _not_found("batch")
            if batch["status"] == "in_progress":
                batch["status"] = "cancelled"
                batch["cancelled_at"] = int(time.time())
                counts = batch["request_counts"]
                counts["failed"] = counts["total"]
            return _json(200, _public(batch))

    def _fails(self, key: str, rate: float) -> bool:
        if rate <= 0 or key in self._failed_once:
            return False
        share = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        if share < rate:
            self._failed_once.add(key)
            return True
        return False

    def _settle(self, batch: dict[str, Any]) -> None:
        """Answer ``batch`` (under the lock): its output and error files, its final status."""
        lines = self._inputs.pop(batch["id"], [])
        expire, rate = batch["_expire"], batch["_failure_rate"]
        answered = len(lines) // 2 if expire else len(lines)
        output: list[str] = []
        errors: list[str] = []
        for index, line in enumerate(lines):
            key = str(line.get("custom_id"))
            if index >= answered:
                error = {"code": "batch_expired", "message": "the batch expired"}
                errors.append(json.dumps({"custom_id": key, "response": None, "error": error}))
            elif self._fails(key, rate):
                body = {"error": {"message": "The server had an error", "type": "server_error"}}
                response = {"status_code": 500, "request_id": key[:12], "body": body}
                errors.append(json.dumps({"custom_id": key, "response": response, "error": None}))
            else:
                assert self.answer is not None
                completion = self.answer(line.get("body") or {})
                response = {"status_code": 200, "request_id": key[:12], "body": completion}
                output.append(json.dumps({"custom_id": key, "response": response, "error": None}))
                self.requests += 1
        for name, content in (("output_file_id", output), ("error_file_id", errors)):
            if content:
                file_id = self._new_id("file")
                self.files[file_id] = ("\n".join(content) + "\n").encode()
                batch[name] = file_id
        batch["status"] = "expired" if expire else "completed"
        batch["completed_at"] = int(time.time())
        batch["request_counts"] = {
            "total": len(lines),
            "completed": len(output),
            "failed": len(errors),
        }


def _public(batch: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in batch.items() if not k.startswith("_")}
