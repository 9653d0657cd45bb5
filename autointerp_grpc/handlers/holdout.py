"""How a bulk run divides a feature's records between explaining, selecting and scoring.

Whatever the explainer saw is never scored (DESIGN.md §3a). Each class — activating records
(those of ``activations`` whose values sum above 0) and non-activating ones (the rest of
``activations`` and every ``nonActivating`` record, which stay non-activating whatever their
values) — is cut on its own, so both are held out in proportion:

* ``holdout`` of a class's records (at least :data:`MIN_PER_SIDE`, leaving at least as many)
  is held out for scoring when the class has at least ``2 * MIN_PER_SIDE`` records;
* non-activating records go to the explainer only if it reads them (contrastive); otherwise
  they are all held out, since the explainer never sees them;
* too few activating records to hold any out, or ``holdout`` 0, scores in-sample: the
  result is marked ``inSample``;
* best-of-k ranks its candidates on a validation split, never on the test records: a class's
  held-out records are halved into validation and test when each half keeps
  :data:`MIN_PER_SIDE`, else that class's training records rank.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.records import Split, is_activating, max_over_records, split_records

MIN_PER_SIDE = 2


@dataclass
class FeatureSplit:
    explain_activating: list[pb.Activation]
    explain_non_activating: list[pb.Activation]
    test: Split
    validation: Split | None
    """Ranks best-of-k candidates (None with a single candidate)."""
    in_sample: bool
    latent_max: float
    """The latent's maximum over all the feature's activating records (the scale every
    split is normalised on)."""
    train_records: int
    test_records: int
    validation_records: int


def _cut(
    records: Sequence[pb.Activation], fraction: float, rng: random.Random
) -> tuple[list[pb.Activation], list[pb.Activation]]:
    """(kept, held out), in request order; nothing held out below 2 * MIN_PER_SIDE records."""
    n = len(records)
    if fraction <= 0 or n < 2 * MIN_PER_SIDE:
        return list(records), []
    n_held = min(n - MIN_PER_SIDE, max(MIN_PER_SIDE, round(n * fraction)))
    held = set(rng.sample(range(n), n_held))
    return (
        [r for i, r in enumerate(records) if i not in held],
        [r for i, r in enumerate(records) if i in held],
    )


def _halve(
    held: list[pb.Activation], train: list[pb.Activation], rng: random.Random
) -> tuple[list[pb.Activation], list[pb.Activation]]:
    """(validation, test) of one class."""
    if len(held) >= 2 * MIN_PER_SIDE:
        first, second = _cut(held, 0.5, rng)
        return second, first
    return train, held


def split_feature(
    feature: pb.Feature,
    holdout: float,
    seed: str,
    *,
    explainer_reads_non_activating: bool,
    candidates: int,
) -> FeatureSplit:
    """The feature's records for the explainer, the candidate ranking and the scorers."""
    rng = random.Random(seed)
    activating = [r for r in feature.activations if is_activating(r)]
    peak = max_over_records(activating)
    others = [r for r in feature.activations if not is_activating(r)]
    non_activating = [*others, *feature.non_activating]
    act_train, act_held = _cut(activating, holdout, rng)
    if explainer_reads_non_activating:
        non_train, non_held = _cut(non_activating, holdout, rng)
    else:
        non_train, non_held = [], non_activating
    in_sample = not act_held or (explainer_reads_non_activating and not non_held)
    if in_sample:
        # Scored on everything, as asked (holdout 0) or for want of records; marked so.
        act_train, act_held = activating, activating
        non_train = non_activating if explainer_reads_non_activating else []
        non_held = non_activating
    validation = None
    act_test, non_test = act_held, non_held
    if candidates > 1:
        if in_sample:
            act_val, non_val = act_held, non_held
        else:
            act_val, act_test = _halve(act_held, act_train, rng)
            non_val, non_test = _halve(non_held, non_train, rng)
        validation = split_records(act_val, non_activating=non_val, latent_max=peak)
    return FeatureSplit(
        explain_activating=act_train,
        explain_non_activating=non_train,
        test=split_records(act_test, non_activating=non_test, latent_max=peak),
        validation=validation,
        in_sample=in_sample,
        latent_max=peak,
        train_records=len(act_train) + len(non_train),
        test_records=0 if in_sample else len(act_test) + len(non_test),
        validation_records=len(validation.in_order) if validation is not None else 0,
    )
