"""What a method is: its name, needs, parameters and implementation; a scorer's metric.

An explainer is an :class:`ExplainerSpec` (``build(ctx) -> (delphi Explainer,
LatentRecord)``, which the Explain handler runs, retrying an unparsable answer once), a
scorer a :class:`ScorerSpec` (``async run(ctx) -> ScoreResult``). Both are generic over their
parameters class (generated from the proto's parameters message into
:mod:`autointerp_grpc.gen.params`), so a method's context carries its own typed parameters
and pyright checks every read of them against the proto's fields. ``kind`` (ListMethods')
follows from the spec's type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.backends.llm import LLMClient
from autointerp_grpc.descriptors import descriptor_of, message_type_of
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods.params import field_value
from autointerp_grpc.records import Split
from autointerp_grpc.validation import Limits

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from autointerp_grpc.delphi_compat import Explainer, LatentRecord

P = TypeVar("P", bound="DataclassInstance")
"""A method's parameters class (one of :mod:`autointerp_grpc.gen.params`)."""


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
class ExplainContext(Generic[P]):
    """What an explainer gets: its resolved parameters, an LLM client and the records."""

    params: P
    client: LLMClient
    activating: list[Any]
    non_activating: list[Any]
    top_positive_logits: list[str] = field(default_factory=list)
    attention: list[pb.AttentionRecord] = field(default_factory=list)
    """Validated attention records (explainers whose ``needs.attention`` is set)."""


@dataclass
class ScoreContext(Generic[P]):
    """What a scorer gets: the records split, the explanation, parameters and the backends
    it declared it needs (None otherwise)."""

    explanation: str
    params: P
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
class MethodSpec(Generic[P]):
    """What every method has: a name, a description, its needs and its parameters class.

    Its parameters travel in the request's ``<name>_params`` oneof member, a message of the
    same name as ``params_type`` (the registry checks both)."""

    kind: ClassVar[pb.MethodKind]
    request: ClassVar[type[Message]]
    """The request that names this kind of method (its ``params`` oneof carries theirs)."""

    name: str
    description: str
    needs: Needs
    params_type: type[P]
    """The generated class of this method's parameters (:mod:`autointerp_grpc.gen.params`)."""

    @property
    def params_field(self) -> str:
        """The request's oneof member that carries this method's parameters."""
        return f"{self.name}_params"

    @property
    def request_descriptor(self) -> Descriptor:
        return descriptor_of(self.request)

    @property
    def params_descriptor(self) -> Descriptor:
        return message_type_of(self.request_descriptor.fields_by_name[self.params_field])


@dataclass(frozen=True)
class ExplainerSpec(MethodSpec[P]):
    """An explainer: ``build`` makes the delphi explainer and latent record for one request
    (synchronously; the Explain handler runs it, retrying an unparsable answer once)."""

    kind: ClassVar[pb.MethodKind] = pb.METHOD_KIND_EXPLAINER
    request: ClassVar[type[Message]] = pb.ExplainRequest

    build: Callable[[ExplainContext[P]], tuple[Explainer, LatentRecord]]


@dataclass(frozen=True)
class ScorerSpec(MethodSpec[P]):
    """A scorer: ``run`` scores one explanation on one split, reporting ``metric``."""

    kind: ClassVar[pb.MethodKind] = pb.METHOD_KIND_SCORER
    request: ClassVar[type[Message]] = pb.ScoreRequest

    run: Callable[[ScoreContext[P]], Awaitable[ScoreResult]]
    metric: Metric
    controls: tuple[str, ...] = ()
    """How a judge that never reads the explanation is kept at chance, and the controls a
    caller can ask for (ListMethods' ``controls``)."""


AnyExplainer = ExplainerSpec[Any]
"""An explainer of any parameters class (the registry's entries, a handler's method)."""
AnyScorer = ScorerSpec[Any]
"""A scorer of any parameters class."""
