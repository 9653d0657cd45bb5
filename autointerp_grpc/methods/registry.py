"""The registry: every method by name. The Explain/Score handlers and ListMethods read it."""

from __future__ import annotations

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods.attention import ATTENTION_EXPLAINERS
from autointerp_grpc.methods.explainers import EXPLAINERS
from autointerp_grpc.methods.np_general import NP_GENERAL_EXPLAINERS
from autointerp_grpc.methods.scorers import SCORERS
from autointerp_grpc.methods.spec import MethodSpec


def _by_name(specs: tuple[MethodSpec, ...], request: type) -> dict[str, MethodSpec]:
    oneof = request.DESCRIPTOR.oneofs_by_name["params"]
    members = {f.name for f in oneof.fields}
    table = {}
    for spec in specs:
        # Each method's parameters travel in the request's `<name>_params` oneof member.
        if spec.params_field not in members:
            raise RuntimeError(f"{request.__name__} has no oneof member {spec.params_field}")
        table[spec.name] = spec
    return table


EXPLAINER_REGISTRY: dict[str, MethodSpec] = _by_name(
    (*EXPLAINERS, *NP_GENERAL_EXPLAINERS, *ATTENTION_EXPLAINERS), pb.ExplainRequest
)
SCORER_REGISTRY: dict[str, MethodSpec] = _by_name(SCORERS, pb.ScoreRequest)
