"""What a method is: its name, needs, parameters message, metric and implementation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from google.protobuf.descriptor import Descriptor

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.descriptors import descriptor_of, message_type_of
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods.params import field_value
from autointerp_grpc.records import Split
from autointerp_grpc.validation import Limits


@dataclass(frozen=True)
class Needs:
    """What a method needs (mirrors the proto's MethodRequirements)."""

    llm: bool = False
    embedding_model: bool = False
    non_activating: bool = False
    logits: bool = False
    logprobs: bool = False
    explanation: bool = False
    attention: bool = False
    """Reads attention records (the request's ``attention``) instead of activation records."""


@dataclass(frozen=True)
class Metric:
    """The metric a scorer reports, its range and its chance level."""

    name: str
    minimum: float
    maximum: float
    chance: float


DEFAULT_MIN_ANSWERED: float = field_value(pb.ScoreRequest(), "min_answered", "minAnswered")
"""The coverage floor when a request does not set one: ScoreRequest.min_answered's
``(parameter).default_value``, read from the descriptor so the proto is its only source."""


@dataclass
class ExplainContext:
    """What an explainer gets: its resolved parameters, an LLM client and the records."""

    params: SimpleNamespace
    client: LLMClient
    activating: list[Any]
    non_activating: list[Any]
    top_positive_logits: list[str] = field(default_factory=list)
    attention: list[pb.AttentionRecord] = field(default_factory=list)
    """Validated attention records (explainers whose ``needs.attention`` is set)."""


@dataclass
class ScoreContext:
    """What a scorer gets: the records split, the explanation, parameters and the backends
    it declared it needs (None otherwise)."""

    explanation: str
    params: SimpleNamespace
    split: Split
    limits: Limits
    request_concurrency: int = 1
    client: LLMClient | None = None
    embedding: EmbeddingBackend | None = None
    min_answered: float = DEFAULT_MIN_ANSWERED
    """Least answered fraction of items, per class where they have one (the coverage floor)."""


@dataclass
class ScoreResult:
    """A scorer's output, before usage is added."""

    score: float
    breakdown: list[pb.ScoreBreakdownItem]
    chance: float
    """What a judge that reads neither the explanation nor the examples' content (answering by
    position, layout or at random) scores in expectation here."""
    classifier: pb.ClassifierMetrics | None = None
    confidence_interval: pb.ConfidenceInterval | None = None
    notes: list[str] = field(default_factory=list)
    coverage: pb.Coverage | None = None
    extra_metrics: dict[str, float] = field(default_factory=dict)
    """Results reported apart from the headline (recall's decoys)."""
    control: ScoreResult | None = None
    """The request's control explanation scored the same way (``controlExplanation``)."""


@dataclass(frozen=True)
class MethodSpec:
    """One explainer or scorer.

    ``run`` is, for explainers, ``build(ctx) -> (delphi Explainer, LatentRecord)`` (the
    handler runs it and retries an unparsable answer once) and, for scorers,
    ``async run(ctx) -> ScoreResult``.
    """

    name: str
    kind: pb.MethodKind  # pb.METHOD_KIND_EXPLAINER or pb.METHOD_KIND_SCORER
    description: str
    needs: Needs
    run: Callable[..., Any] | Callable[..., Awaitable[Any]]
    metric: Metric | None = None
    controls: tuple[str, ...] = ()
    """Scorers: how a judge that never reads the explanation is kept at chance, and the
    controls a caller can ask for (ListMethods' ``controls``)."""

    @property
    def params_field(self) -> str:
        """The request's oneof member that carries this method's parameters."""
        return f"{self.name}_params"

    @property
    def request_descriptor(self) -> Descriptor:
        kind = pb.METHOD_KIND_EXPLAINER
        return descriptor_of(pb.ExplainRequest if self.kind == kind else pb.ScoreRequest)

    @property
    def params_descriptor(self) -> Descriptor:
        return message_type_of(self.request_descriptor.fields_by_name[self.params_field])
