"""The ListMethods RPC: every registry entry described from its spec and the proto."""

from __future__ import annotations

from typing import Any

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.handlers.deps import Deps
from autointerp_grpc.methods import params as method_params
from autointerp_grpc.methods.registry import EXPLAINER_REGISTRY, SCORER_REGISTRY
from autointerp_grpc.methods.spec import ExplainerSpec, ScorerSpec
from autointerp_grpc.proto_comments import proto_comments


def describe_method(spec: ExplainerSpec[Any] | ScorerSpec[Any]) -> pb.MethodInfo:
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
    )
    if isinstance(spec, ScorerSpec):
        info.controls.extend(spec.controls)
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
