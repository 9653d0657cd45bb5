"""ListMethods, Explain and Score: every method behind one request shape, via the registry."""

from __future__ import annotations

from types import SimpleNamespace

from google.protobuf.message import Message

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.backends.llm import Usage as LLMUsage
from autointerp_grpc.errors import InvalidArgument, shown
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.handlers.explain import run_explainer
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.methods.spec import ExplainContext, MethodSpec, ScoreContext
from autointerp_grpc.proto_comments import proto_comments
from autointerp_grpc.records import (
    activating_example,
    non_activating_example,
    split_records,
)
from autointerp_grpc.validation import check_activations


def lookup(registry: dict[str, MethodSpec], name: str, kind: str) -> MethodSpec:
    spec = registry.get(name)
    if spec is None:
        raise InvalidArgument(
            f"method {shown(name)} is not a known {kind}; use one of: {', '.join(registry)}"
        )
    return spec


def resolve_params(request: Message, spec: MethodSpec) -> SimpleNamespace:
    sent = request.WhichOneof("params")
    fields = request.DESCRIPTOR.fields_by_name
    expected = fields[spec.params_field].json_name
    if sent is not None and sent != spec.params_field:
        raise InvalidArgument(
            f"{fields[sent].json_name} does not apply to method {spec.name!r}; "
            f"its parameters go in {expected}"
        )
    message = getattr(request, sent) if sent is not None else None
    return method_params.resolve(message, spec.params_descriptor, expected)


def llm_client(llm: pb.LlmOptions, deps: Deps) -> LLMClient:
    """A client for the request's LLM options, after checking their values."""
    for field in llm.DESCRIPTOR.fields:
        if llm.HasField(field.name) if field.has_presence else getattr(llm, field.name):
            method_params.check_value(field, getattr(llm, field.name), f"llm.{field.json_name}")
    return deps.llm.client(
        model=llm.model,
        api_key=llm.api_key,
        provider=llm.provider,
        max_tokens=llm.max_tokens if llm.HasField("max_tokens") else None,
        reasoning_effort=llm.reasoning_effort,
    )


def usage_message(usage: LLMUsage) -> pb.Usage:
    message = pb.Usage(
        llm_calls=usage.calls,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
    )
    if usage.cost is not None:
        message.cost = usage.cost
    return message


async def explain(
    request: pb.ExplainRequest, deps: Deps, temperature: float | None = None
) -> pb.ExplainResponse:
    """The Explain RPC; ``temperature`` overrides the explainer's (bulk best-of-k sampling)."""
    spec = lookup(EXPLAINER_REGISTRY, request.method, "explainer")
    params = resolve_params(request, spec)
    check_activations(request.activations, deps.limits)
    if not any(max(r.values) > 0 for r in request.activations):
        raise InvalidArgument(
            "activations must include at least one record with a positive activation value"
        )
    if request.non_activating:
        check_activations(request.non_activating, deps.limits, field="non_activating")
    client = llm_client(request.llm, deps)
    ctx = ExplainContext(
        request=request,
        params=params,
        client=client,
        activating=[activating_example(r) for r in request.activations],
        non_activating=[non_activating_example(r) for r in request.non_activating],
    )
    explainer, record = spec.run(ctx)
    if temperature is not None:
        explainer.temperature = temperature
    explanation = await run_explainer(explainer, record)
    return pb.ExplainResponse(
        explanation=explanation,
        raw_answer=client.answers[-1] if client.answers else "",
        usage=usage_message(client.usage),
        method=spec.name,
    )


async def score(request: pb.ScoreRequest, deps: Deps) -> pb.ScoreResponse:
    spec = lookup(SCORER_REGISTRY, request.method, "scorer")
    params = resolve_params(request, spec)
    if spec.needs.explanation and not request.explanation.strip():
        raise InvalidArgument(f"explanation is required by the {spec.name} scorer")
    check_activations(request.activations, deps.limits)
    split = split_records(request.activations, need_both=spec.needs.non_activating)
    client = None
    if spec.needs.llm:
        if not request.HasField("llm"):
            raise InvalidArgument(f"llm (model and api_key) is required by the {spec.name} scorer")
        client = llm_client(request.llm, deps)
    ctx = ScoreContext(
        request=request,
        params=params,
        split=split,
        limits=deps.limits,
        request_concurrency=deps.request_concurrency,
        client=client,
        embedding=deps.embedding_model() if spec.needs.embedding_model else None,
    )
    result = await spec.run(ctx)
    assert spec.metric is not None
    response = pb.ScoreResponse(
        score=result.score,
        metric=spec.metric.name,
        method=spec.name,
        breakdown=result.breakdown,
        usage=usage_message(client.usage if client is not None else LLMUsage()),
        notes=result.notes,
    )
    if result.classifier is not None:
        response.classifier.CopyFrom(result.classifier)
    if result.confidence_interval is not None:
        response.confidence_interval.CopyFrom(result.confidence_interval)
    return response


def describe_method(spec: MethodSpec) -> pb.MethodInfo:
    """ListMethods' entry for one method, from its registry entry and the proto."""
    needs = spec.needs
    info = pb.MethodInfo(
        name=spec.name,
        kind=spec.kind,
        description=spec.description,
        requires=pb.MethodRequirements(
            llm=needs.llm,
            embedding_model=needs.embedding_model,
            non_activating=needs.non_activating,
            logits=needs.logits,
            logprobs=needs.logprobs,
            explanation=needs.explanation,
        ),
        parameters_field=spec.request_descriptor.fields_by_name[spec.params_field].json_name,
        parameters=method_params.describe(spec.params_descriptor, proto_comments()),
    )
    if spec.metric is not None:
        metric = spec.metric
        info.metric.CopyFrom(
            pb.MetricInfo(
                name=metric.name,
                minimum=metric.minimum,
                maximum=metric.maximum,
                chance=metric.chance,
            )
        )
    return info


async def list_methods(request: pb.ListMethodsRequest, deps: Deps) -> pb.ListMethodsResponse:
    specs = [*EXPLAINER_REGISTRY.values(), *SCORER_REGISTRY.values()]
    return pb.ListMethodsResponse(
        methods=[describe_method(s) for s in specs], providers=deps.llm.provider_names
    )
