"""The request's LLM options: checked once (:func:`checked_llm`), then turned into a fresh
client per job (:func:`llm_client`), each with its own usage and error log."""

from __future__ import annotations

from dataclasses import dataclass

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.descriptors import descriptor_of
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.methods import params as method_params


@dataclass(frozen=True)
class CheckedLlm:
    """LLM options that have passed their checks (:func:`checked_llm`, the only place they are
    checked). A bulk run checks its options once and hands this to every job; a single
    request hands its raw options to the job's preparation, which checks them in order."""

    options: pb.LlmOptions


def check_llm_options(llm: pb.LlmOptions) -> None:
    """The request's LLM options against their ranges (InvalidArgument naming the field)."""
    for field in descriptor_of(llm).fields:
        if llm.HasField(field.name) if field.has_presence else getattr(llm, field.name):
            method_params.check_value(field, getattr(llm, field.name), f"llm.{field.json_name}")


def checked_llm(llm: pb.LlmOptions | CheckedLlm) -> CheckedLlm:
    """``llm`` checked against its ranges (InvalidArgument naming the field); options
    already checked pass as they are, so no path checks them twice."""
    if isinstance(llm, CheckedLlm):
        return llm
    check_llm_options(llm)
    return CheckedLlm(llm)


def llm_client(llm: pb.LlmOptions, deps: Deps) -> LLMClient:
    """A new client (its own usage and error log) for already-checked LLM options."""
    return deps.llm.client(
        model=llm.model,
        api_key=llm.api_key,
        provider=llm.provider,
        max_tokens=llm.max_tokens if llm.HasField("max_tokens") else None,
        reasoning_effort=llm.reasoning_effort,
        fresh=llm.fresh,
        dry_run=llm.dry_run,
        batch=llm.batch,
    )
