"""Turn the wire's activation records into delphi examples.

Legacy semantics (kept from the server this service replaces): a record whose values sum
above zero is *activating*, every other record is *non-activating*. A record with negative
values therefore counts by its sum: negative activations pull a record towards
non-activating; they are passed to delphi unchanged.

The breakdowns' ``distance`` follows the legacy convention: 1 for an activating example (its
quantile; every record is one quantile here), -1 for a non-activating one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from autointerp_grpc.delphi_compat import ActivatingExample, NonActivatingExample
from autointerp_grpc.errors import InvalidArgument
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

ACTIVATING_DISTANCE = 1
NON_ACTIVATING_DISTANCE = -1


def is_activating(record: pb.Activation) -> bool:
    """The legacy split: activating when the values sum above zero."""
    return sum(record.values) > 0


def _token_ids(record: pb.Activation) -> torch.Tensor:
    # Callers send token strings, not ids; delphi's explainers and scorers only read
    # ``str_tokens``, so the id tensor just has the right length.
    return torch.zeros(len(record.tokens), dtype=torch.long)


NORMALIZED_MAX = 10
"""Normalised activations are integers from 0 to this."""
_LATENT_MAX_FLOOR = 1e-6  # delphi's eps: a latent that never fires normalises to all 0


def max_over_records(*groups: Sequence[pb.Activation]) -> float:
    """The latent's maximum activation over every record of ``groups`` (0.0 with none): the
    ``latent_max`` that :func:`activating_example` and :func:`non_activating_example` scale
    by."""
    return max((max(r.values, default=0.0) for group in groups for r in group), default=0.0)


def _normalized(values: torch.Tensor, latent_max: float | None = None) -> torch.Tensor:
    """Activations as integers 0 to 10.

    With ``latent_max`` (delphi's rule, ``delphi/latents/samplers.py``
    ``normalize_activations``, given the latent record's ``max_activation``): ``ceil(v * 10 /
    max(latent_max, 1e-6))`` clamped to 0-10, so every record of a latent shares one scale
    and any positive activation shows as at least 1. Without it (the legacy per-record
    rule): ``round(v / record max * 10)``, negatives clamped to 0, a record that never
    exceeds 0 all 0.
    """
    if latent_max is not None:
        scale = max(float(latent_max), _LATENT_MAX_FLOOR)
        scaled = torch.ceil(values * NORMALIZED_MAX / scale).clamp(0, NORMALIZED_MAX)
        return scaled + 0.0  # no -0.0 from ceil of small negatives
    peak = float(values.max()) if values.numel() else 0.0
    if peak <= 0:
        return torch.zeros_like(values)
    return torch.round(values.clamp(min=0) / peak * NORMALIZED_MAX)


def activating_example(
    record: pb.Activation, *, latent_max: float | None = None
) -> ActivatingExample:
    """``record`` as a delphi activating example; ``latent_max`` (the latent's maximum over all
    its records, see :func:`max_over_records`) normalises as delphi does, None per record."""
    values = torch.tensor(list(record.values), dtype=torch.float64)
    return ActivatingExample(
        tokens=_token_ids(record),
        activations=values,
        normalized_activations=_normalized(values, latent_max),
        str_tokens=list(record.tokens),
        quantile=ACTIVATING_DISTANCE,
    )


def non_activating_example(
    record: pb.Activation, *, latent_max: float | None = None
) -> NonActivatingExample:
    """``record`` as a delphi non-activating example, normalised like
    :func:`activating_example` (on the latent's scale when ``latent_max`` is given)."""
    example = NonActivatingExample(
        tokens=_token_ids(record),
        activations=torch.tensor(list(record.values), dtype=torch.float64),
        str_tokens=list(record.tokens),
        distance=NON_ACTIVATING_DISTANCE,
    )
    # delphi's ContrastiveExplainer and IntruderScorer read normalized_activations on every
    # example, but NonActivatingExample does not declare it.
    example.normalized_activations = _normalized(example.activations, latent_max)  # type: ignore[attr-defined]
    return example


def example_token_count(items: Iterable[Any]) -> int:
    """How many tokens delphi examples (or the samples and outputs built from them, anything
    with ``str_tokens``) hold."""
    return sum(len(item.str_tokens or ()) for item in items)


def str_tokens_of(example: ActivatingExample | NonActivatingExample) -> list[str]:
    """The example's tokens as text (the list itself). Every example built here has them;
    delphi declares the field optional."""
    if example.str_tokens is None:
        raise ValueError("the example has no str_tokens")
    return example.str_tokens


@dataclass
class Split:
    """Records split into activating and non-activating examples, plus the request order."""

    activating: list[ActivatingExample]
    non_activating: list[NonActivatingExample]
    in_order: list[ActivatingExample | NonActivatingExample]

    @property
    def activating_indices(self) -> set[int]:
        """Request indices of the activating records."""
        return {i for i, e in enumerate(self.in_order) if isinstance(e, ActivatingExample)}

    def require_both(self) -> None:
        """Reject records lacking either kind (for scorers that contrast the two)."""
        if not self.activating or not self.non_activating:
            raise InvalidArgument(
                "activations must include both activating records (values summing above 0) "
                "and non-activating records (summing to 0 or less) to score against each "
                f"other; got {len(self.activating)} activating and "
                f"{len(self.non_activating)} non-activating"
            )


def split_records(
    records: Sequence[pb.Activation],
    non_activating: Sequence[pb.Activation] = (),
    *,
    latent_max: float | None = None,
) -> Split:
    """Split ``records`` the legacy way (activating when their values sum above 0); the
    records of ``non_activating`` are labelled by the caller and stay non-activating
    whatever their values (an explicit label always wins). Request order: ``records``, then
    ``non_activating``. Every example is normalised on the latent's scale: ``latent_max``,
    or the maximum over ``records``."""
    peak = max_over_records(records) if latent_max is None else latent_max
    in_order: list[ActivatingExample | NonActivatingExample] = [
        activating_example(r, latent_max=peak)
        if is_activating(r)
        else non_activating_example(r, latent_max=peak)
        for r in records
    ]
    in_order += [non_activating_example(r, latent_max=peak) for r in non_activating]
    activating = [e for e in in_order if isinstance(e, ActivatingExample)]
    negatives = [e for e in in_order if isinstance(e, NonActivatingExample)]
    return Split(activating, negatives, in_order)
