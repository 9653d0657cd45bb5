"""Turn the wire's activation records into delphi examples.

Legacy semantics (kept from the server this service replaces): a record whose values sum
above zero is *activating*, every other record is *non-activating*. A record with negative
values therefore counts by its sum: negative activations pull a record towards
non-activating; they are passed to delphi unchanged.

The breakdowns' ``distance`` follows the legacy convention: 1 for an activating example (its
quantile; every record is one quantile here), -1 for a non-activating one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

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


def _normalized(values: torch.Tensor) -> torch.Tensor:
    # delphi's convention: activations scaled to integers 0 to 10 by the record's maximum.
    peak = float(values.max())
    if peak <= 0:
        return torch.zeros_like(values)
    return torch.round(values.clamp(min=0) / peak * 10)


def activating_example(record: pb.Activation) -> ActivatingExample:
    values = torch.tensor(list(record.values), dtype=torch.float64)
    return ActivatingExample(
        tokens=_token_ids(record),
        activations=values,
        normalized_activations=_normalized(values),
        str_tokens=list(record.tokens),
        quantile=ACTIVATING_DISTANCE,
    )


def non_activating_example(record: pb.Activation) -> NonActivatingExample:
    example = NonActivatingExample(
        tokens=_token_ids(record),
        activations=torch.tensor(list(record.values), dtype=torch.float64),
        str_tokens=list(record.tokens),
        distance=NON_ACTIVATING_DISTANCE,
    )
    # delphi's ContrastiveExplainer and IntruderScorer read normalized_activations on every
    # example, but NonActivatingExample does not declare it.
    example.normalized_activations = _normalized(example.activations)  # type: ignore[attr-defined]
    return example


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
    records: Sequence[pb.Activation], non_activating: Sequence[pb.Activation] = ()
) -> Split:
    """Split ``records`` the legacy way (activating when their values sum above 0); the
    records of ``non_activating`` are labelled by the caller and stay non-activating
    whatever their values (an explicit label always wins). Request order: ``records``, then
    ``non_activating``."""
    in_order: list[ActivatingExample | NonActivatingExample] = [
        activating_example(r) if is_activating(r) else non_activating_example(r) for r in records
    ]
    in_order += [non_activating_example(r) for r in non_activating]
    activating = [e for e in in_order if isinstance(e, ActivatingExample)]
    negatives = [e for e in in_order if isinstance(e, NonActivatingExample)]
    return Split(activating, negatives, in_order)
