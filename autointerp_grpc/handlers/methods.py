"""Methods by name: looking one up and resolving its parameters, the LLM options, and the
ListMethods RPC. Everything here runs once per request (or once per bulk run)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from google.protobuf.message import Message

from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.descriptors import descriptor_of
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.methods.spec import MethodSpec
from autointerp_grpc.proto_comments import proto_comments


@dataclass(frozen=True)
class Resolved:
    """A method and its parameters (the request's, with the proto's defaults filled in)."""

    spec: MethodSpec
    params: SimpleNamespace

    @property
    def name(self) -> str:
        return self.spec.name


def lookup(registry: dict[str, MethodSpec], name: str, kind: str) -> MethodSpec:
    spec = registry.get(name)
    if spec is None:
        raise InvalidArgument(f"method is not a known {kind}; use one of: {', '.join(registry)}")
    return spec


def resolve_params(request: Message, spec: MethodSpec) -> SimpleNamespace:
    """The parameters ``request`` (an Explain/Score request or a bulk choice) carries in its
    ``params`` oneof for ``spec``, checked against their ranges, defaults filled in."""
    sent = request.WhichOneof("params")
    fields = descriptor_of(request).fields_by_name
    expected = spec.request_descriptor.fields_by_name[spec.params_field].json_name
    if sent is not None and sent != spec.params_field:
        raise InvalidArgument(
            f"{fields[sent].json_name} does not apply to method {spec.name!r}; "
            f"its parameters go in {expected}"
        )
    message = getattr(request, sent) if sent is not None else None
    return method_params.resolve(message, spec.params_descriptor, expected)


def resolve_explainer(request: Message) -> Resolved:
    """The explainer an ExplainRequest or ExplainerChoice names, with its parameters."""
    spec = lookup(EXPLAINER_REGISTRY, request.method, "explainer")  # type: ignore[attr-defined]
    return Resolved(spec, resolve_params(request, spec))


def resolve_scorer(request: Message) -> Resolved:
    """The scorer a ScoreRequest or ScorerChoice names, with its parameters."""
    spec = lookup(SCORER_REGISTRY, request.method, "scorer")  # type: ignore[attr-defined]
    return Resolved(spec, resolve_params(request, spec))


def default_method(registry: dict[str, MethodSpec], name: str, **overrides: object) -> Resolved:
    """A method with its default parameters (the legacy RPCs' fixed settings)."""
    spec = registry[name]
    params = method_params.resolve(None, spec.params_descriptor, spec.params_field)
    for key, value in overrides.items():
        if not hasattr(params, key):
            raise KeyError(f"{name} has no parameter {key}")
        setattr(params, key, value)
    return Resolved(spec, params)


def check_llm_options(llm: pb.LlmOptions) -> None:
    """The request's LLM options against their ranges (InvalidArgument naming the field)."""
    for field in descriptor_of(llm).fields:
        if llm.HasField(field.name) if field.has_presence else getattr(llm, field.name):
            method_params.check_value(field, getattr(llm, field.name), f"llm.{field.json_name}")


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
    )


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
            attention=needs.attention,
        ),
        parameters_field=spec.request_descriptor.fields_by_name[spec.params_field].json_name,
        parameters=method_params.describe(spec.params_descriptor, proto_comments()),
        controls=spec.controls,
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
