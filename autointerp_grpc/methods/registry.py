"""The registry: every method by name. The Explain/Score handlers and ListMethods read it."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from autointerp_grpc.gen.params import BY_MESSAGE
from autointerp_grpc.methods.attention import ATTENTION_EXPLAINERS
from autointerp_grpc.methods.explainers import EXPLAINERS
from autointerp_grpc.methods.np_general import NP_GENERAL_EXPLAINERS
from autointerp_grpc.methods.scorer_specs import SCORERS
from autointerp_grpc.methods.spec import AnyExplainer, AnyScorer, MethodSpec

S = TypeVar("S", bound=MethodSpec)


def by_name(specs: Iterable[S]) -> dict[str, S]:
    """``specs`` by name, each checked against the proto: its parameters travel in its
    request's ``<name>_params`` oneof member, whose message is the one its ``params_type``
    was generated from."""
    table: dict[str, S] = {}
    for spec in specs:
        request = spec.request_descriptor
        members = {f.name for f in request.oneofs_by_name["params"].fields}
        if spec.params_field not in members:
            raise RuntimeError(f"{request.name} has no oneof member {spec.params_field}")
        message = spec.params_descriptor.full_name
        if BY_MESSAGE.get(message) is not spec.params_type:
            raise RuntimeError(
                f"method {spec.name}: params_type is {spec.params_type.__name__}, but its "
                f"parameters travel as {message}"
            )
        if spec.name in table:
            raise RuntimeError(f"two methods are named {spec.name}")
        table[spec.name] = spec
    return table


EXPLAINER_REGISTRY: dict[str, AnyExplainer] = by_name(
    [*EXPLAINERS, *NP_GENERAL_EXPLAINERS, *ATTENTION_EXPLAINERS]
)
SCORER_REGISTRY: dict[str, AnyScorer] = by_name(SCORERS)
