"""Structured output in the provider's dialect (issue 20): OpenAI's json_schema first, then
llama-cpp-python's json_object with a schema, then the prompt alone; the first dialect the
provider accepts is kept for the rest of the request, and a rejection is not an item's failure.
The provider here is a scripted client that rejects the dialects it is told to."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from autointerp_grpc.delphi_compat import Response
from autointerp_grpc.errors import AutoInterpError, InvalidArgument, Unavailable
from autointerp_grpc.methods.structured import StructuredOutput, response_format_for
from autointerp_grpc.prompts import RECALL_RESPONSE_FORMAT


class ScriptedProvider:
    """Rejects (HTTP 422, as an InvalidArgument recorded in ``errors``) the response_format
    types in ``rejects``; answers ``{}`` otherwise. Records each call's format type."""

    def __init__(
        self,
        rejects: set[str | None],
        error: type[AutoInterpError] = InvalidArgument,
        message: str = "The LLM provider rejected the request (HTTP 422)",
    ) -> None:
        self.rejects = rejects
        self.error, self.message = error, message
        self.asked: list[str | None] = []
        self.errors: list[AutoInterpError] = []

    async def generate(self, prompt: Any, **kwargs: Any) -> Response:
        await asyncio.sleep(0)
        response_format = kwargs.get("response_format")
        kind = response_format["type"] if response_format else None
        self.asked.append(kind)
        if kind in self.rejects:
            error = self.error(self.message)
            self.errors.append(error)
            raise error
        return Response(text="{}")


def test_each_dialect_carries_the_same_schema() -> None:
    schema = RECALL_RESPONSE_FORMAT["json_schema"]["schema"]
    assert response_format_for("json_schema", RECALL_RESPONSE_FORMAT) is RECALL_RESPONSE_FORMAT
    assert response_format_for("json_object_schema", RECALL_RESPONSE_FORMAT) == {
        "type": "json_object",
        "schema": schema,
    }
    assert response_format_for("prompt", RECALL_RESPONSE_FORMAT) is None
    with pytest.raises(ValueError, match="unknown"):
        response_format_for("grammar", RECALL_RESPONSE_FORMAT)


async def test_a_provider_taking_json_schema_gets_it_on_every_call() -> None:
    provider = ScriptedProvider(rejects=set())
    structured = StructuredOutput(RECALL_RESPONSE_FORMAT)
    for _ in range(3):
        await structured.generate(provider, "judge")  # type: ignore[arg-type]
    assert provider.asked == ["json_schema"] * 3
    assert structured.note == (
        "Answers asked for with structured output: response_format json_schema."
    )


async def test_llama_cpp_pythons_dialect_is_found_once_and_kept() -> None:
    provider = ScriptedProvider(rejects={"json_schema"})
    structured = StructuredOutput(RECALL_RESPONSE_FORMAT)
    for _ in range(3):
        await structured.generate(provider, "judge")  # type: ignore[arg-type]
    assert provider.asked == ["json_schema", "json_object", "json_object", "json_object"]
    assert structured.dialect == "json_object_schema"
    assert provider.errors == []  # the rejection is not an item's failure
    assert "json_object with the schema" in structured.note
    assert "rejected json_schema" in structured.note


async def test_a_server_error_naming_response_format_is_a_rejection_too() -> None:
    # llama-cpp-python 0.3.36's server, measured in the real-model tier: HTTP 500.
    refused = (
        "The LLM provider failed (HTTP 500): 1 validation error: {'type': 'literal_error', "
        "'loc': ('body', 'response_format', 'type'), 'msg': \"Input should be 'text' or "
        "'json_object'\"}"
    )
    provider = ScriptedProvider(rejects={"json_schema"}, error=Unavailable, message=refused)
    structured = StructuredOutput(RECALL_RESPONSE_FORMAT)
    await structured.generate(provider, "judge")  # type: ignore[arg-type]
    assert provider.asked == ["json_schema", "json_object"]
    assert provider.errors == []
    # Any other server error is the call's failure, not a dialect's refusal.
    down = ScriptedProvider(rejects={"json_schema"}, error=Unavailable, message="HTTP 500")
    with pytest.raises(Unavailable):
        await StructuredOutput(RECALL_RESPONSE_FORMAT).generate(down, "judge")  # type: ignore[arg-type]
    assert down.asked == ["json_schema"]


async def test_concurrent_calls_step_past_a_rejection_together() -> None:
    provider = ScriptedProvider(rejects={"json_schema"})
    structured = StructuredOutput(RECALL_RESPONSE_FORMAT)
    await asyncio.gather(*(structured.generate(provider, "j") for _ in range(5)))  # type: ignore[arg-type]
    assert provider.asked.count("json_schema") == 5  # all were in flight before the answer
    assert provider.asked.count("json_object") == 5
    assert structured.dialect == "json_object_schema"  # stepped once, not five times
    assert structured.note.count("json_schema") == 1


async def test_a_provider_without_structured_output_gets_the_prompt_alone() -> None:
    provider = ScriptedProvider(rejects={"json_schema", "json_object"})
    structured = StructuredOutput(RECALL_RESPONSE_FORMAT)
    await structured.generate(provider, "judge")  # type: ignore[arg-type]
    await structured.generate(provider, "judge")  # type: ignore[arg-type]
    assert provider.asked == ["json_schema", "json_object", None, None]
    assert "no structured output" in structured.note
    assert "rejected json_schema, json_object_schema" in structured.note


async def test_a_rejection_of_the_prompt_itself_is_the_requests_error() -> None:
    # Rejected whatever the format (an unknown model, say): the last dialect's error stands.
    provider = ScriptedProvider(rejects={"json_schema", "json_object", None})
    structured = StructuredOutput(RECALL_RESPONSE_FORMAT)
    with pytest.raises(InvalidArgument, match="HTTP 422"):
        await structured.generate(provider, "judge")  # type: ignore[arg-type]
    assert len(provider.errors) == 1  # that one stays: it says why the item went unanswered


async def test_structured_output_turned_off_asks_in_the_prompt_only() -> None:
    provider = ScriptedProvider(rejects=set())
    structured = StructuredOutput(RECALL_RESPONSE_FORMAT, enabled=False)
    await structured.generate(provider, "judge")  # type: ignore[arg-type]
    assert provider.asked == [None]
