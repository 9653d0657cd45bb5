"""Methods by name: looking an explainer or scorer up in the registry and resolving its
parameters into their typed class. Everything here runs once per request (or once per bulk
run)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar, overload

from google.protobuf.message import Message

from autointerp_grpc.descriptors import descriptor_of
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.methods.spec import ExplainerSpec, MethodSpec, P, ScorerSpec

S = TypeVar("S", bound=MethodSpec)


@dataclass(frozen=True)
class ResolvedExplainer(Generic[P]):
    """An explainer and its parameters (the request's, with the proto's defaults filled in)."""

    spec: ExplainerSpec[P]
    params: P

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class ResolvedScorer(Generic[P]):
    """A scorer and its parameters (the request's, with the proto's defaults filled in)."""

    spec: ScorerSpec[P]
    params: P

    @property
    def name(self) -> str:
        return self.spec.name


def lookup(registry: Mapping[str, S], name: str, kind: str) -> S:
    spec = registry.get(name)
    if spec is None:
        raise InvalidArgument(f"method is not a known {kind}; use one of: {', '.join(registry)}")
    return spec


def resolve_params(request: Message, spec: MethodSpec[P]) -> P:
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
    return method_params.resolve(message, spec.params_descriptor, spec.params_type, expected)


def resolve_explainer(request: pb.ExplainRequest | pb.ExplainerChoice) -> ResolvedExplainer[Any]:
    """The explainer an ExplainRequest or ExplainerChoice names, with its parameters."""
    spec = lookup(EXPLAINER_REGISTRY, request.method, "explainer")
    return ResolvedExplainer(spec, resolve_params(request, spec))


def resolve_scorer(request: pb.ScoreRequest | pb.ScorerChoice) -> ResolvedScorer[Any]:
    """The scorer a ScoreRequest or ScorerChoice names, with its parameters."""
    spec = lookup(SCORER_REGISTRY, request.method, "scorer")
    return ResolvedScorer(spec, resolve_params(request, spec))


@overload
def default_method(
    registry: Mapping[str, ExplainerSpec[P]], name: str, **overrides: object
) -> ResolvedExplainer[P]: ...
@overload
def default_method(
    registry: Mapping[str, ScorerSpec[P]], name: str, **overrides: object
) -> ResolvedScorer[P]: ...
def default_method(
    registry: Mapping[str, ExplainerSpec[P]] | Mapping[str, ScorerSpec[P]],
    name: str,
    **overrides: object,
) -> ResolvedExplainer[P] | ResolvedScorer[P]:
    """A method with its default parameters, ``overrides`` replacing some (the legacy RPCs'
    fixed settings). An override that names no parameter of the method is a TypeError at
    once (``dataclasses.replace`` of its frozen parameters class)."""
    spec = registry[name]
    params = replace(spec.params_type(), **overrides)
    if isinstance(spec, ExplainerSpec):
        return ResolvedExplainer(spec, params)
    return ResolvedScorer(spec, params)
