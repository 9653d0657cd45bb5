"""Structured output across providers' dialects: a JSON schema the model's answer must follow.

A method whose answer is JSON (the recall judge, simulation in JSON mode) sends its schema as
``response_format``, so that a provider that can constrain decoding (a grammar, as llama.cpp
builds from a schema) makes even a small model answer in shape. Providers spell it
differently:

1. ``json_schema``: OpenAI's ``{"type": "json_schema", "json_schema": {"name", "schema"}}``
   (OpenAI, OpenRouter, vLLM, Ollama, llama.cpp's own ``llama-server``);
2. ``json_object_schema``: ``{"type": "json_object", "schema": {...}}``, the dialect of
   llama-cpp-python's server (which refuses the first with HTTP 422) and Anyscale's;
3. ``prompt``: no ``response_format``; the prompt alone asks for the JSON.

:class:`StructuredOutput` asks in that order and keeps, for the rest of its request, the first
dialect the provider accepts: a provider that rejects the request (HTTP 400/422, an
:class:`~autointerp_grpc.errors.InvalidArgument`, or any failure whose message names
``response_format``, as llama-cpp-python's HTTP 500 does) is asked again in the next dialect. The
rejection is no failure of the request's items: it is taken out of the client's error list
(which names why items went unanswered). :attr:`StructuredOutput.note` says which dialect ran.
"""

from __future__ import annotations

import asyncio
from typing import Any

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import InvalidArgument, Unavailable

__all__ = ["DIALECTS", "StructuredOutput", "response_format_for"]

DIALECTS: tuple[str, ...] = ("json_schema", "json_object_schema", "prompt")


def response_format_for(dialect: str, openai_format: dict[str, Any]) -> dict[str, Any] | None:
    """``openai_format`` (OpenAI's json_schema ``response_format``) in ``dialect``; None for
    ``prompt`` (no ``response_format``)."""
    if dialect == "json_schema":
        return openai_format
    if dialect == "json_object_schema":
        return {"type": "json_object", "schema": openai_format["json_schema"]["schema"]}
    if dialect == "prompt":
        return None
    raise ValueError(f"unknown structured-output dialect {dialect!r}")


def _rejects_format(error: InvalidArgument | Unavailable) -> bool:
    """Whether a failed call was the provider refusing its ``response_format``: a 400/422,
    or a provider error that names the parameter (llama-cpp-python 0.3.36's server answers
    an unknown type with HTTP 500 and its validation error, "loc: (body, response_format,
    type)", measured in the real-model tier)."""
    return type(error) is InvalidArgument or "response_format" in error.message


class StructuredOutput:
    """One request's structured-output calls: the first dialect its provider accepts, kept.

    ``enabled=False`` asks in the ``prompt`` dialect only (a caller that turned structured
    output off)."""

    def __init__(self, openai_format: dict[str, Any], *, enabled: bool = True) -> None:
        self._format = openai_format
        self._index = 0 if enabled else len(DIALECTS) - 1
        self._rejected: list[str] = []
        self._lock = asyncio.Lock()

    @property
    def dialect(self) -> str:
        """The dialect the next call asks in."""
        return DIALECTS[self._index]

    @property
    def note(self) -> str:
        """Which structured output ran, and what the provider refused on the way."""
        ran = {
            "json_schema": "structured output: response_format json_schema",
            "json_object_schema": "structured output: response_format json_object with the "
            "schema (llama-cpp-python's dialect)",
            "prompt": "no structured output: the prompt alone asked for the JSON",
        }[self.dialect]
        refused = f" (the provider rejected {', '.join(self._rejected)})" if self._rejected else ""
        return f"Answers asked for with {ran}{refused}."

    async def generate(self, client: LLMClient, prompt: Any, **kwargs: Any) -> Response:
        """``client.generate`` with the schema in the kept dialect; the next dialect when the
        provider rejects this one. A rejection of the last dialect is the request's error."""
        while True:
            index = self._index
            dialect = DIALECTS[index]
            response_format = response_format_for(dialect, self._format)
            extra = {"response_format": response_format} if response_format is not None else {}
            try:
                return await client.generate(prompt, **kwargs, **extra)
            except (InvalidArgument, Unavailable) as rejected:
                if dialect == "prompt" or not _rejects_format(rejected):
                    raise
                # Not one of the request's failures: the same call goes again, differently.
                if rejected in client.errors:
                    client.errors.remove(rejected)
                async with self._lock:
                    if self._index == index:  # concurrent calls step on once, not each
                        self._rejected.append(dialect)
                        self._index += 1
