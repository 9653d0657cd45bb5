"""What handlers need, created once at startup and passed in (tests pass fakes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.backends.llm import LLMBackend
from autointerp_grpc.errors import Unavailable
from autointerp_grpc.validation import Limits


@dataclass
class Deps:
    llm: LLMBackend
    limits: Limits = field(default_factory=Limits)
    request_concurrency: int = 8
    """Cap on one request's upstream LLM calls in flight at once."""
    feature_timeout_s: float = 600.0
    """Time limit of one bulk feature (a bulk stream itself has none: it may run for hours)."""
    embedding: EmbeddingBackend | None = None
    """Set once the model has loaded; None while loading."""

    def embedding_model(self) -> EmbeddingBackend:
        if self.embedding is None:
            raise Unavailable("The embedding model is still loading; retry shortly")
        return self.embedding
