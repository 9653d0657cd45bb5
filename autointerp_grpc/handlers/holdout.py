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
  result is marked ``inSample``.

Best-of-k needs a third part, the validation records its candidates are ranked on. Selecting
on the test records would inflate the reported score, and selecting on the explainer's own
records ranks candidates by how well they recall what they were written from, so validation
is carved out of each class's held-out records only: half of them (at least one, the test
keeping at least as many). A ranking scorer that contrasts the two classes needs both in
validation; where a class has too few held-out records to give one to each side, nothing is
carved (the test keeps every held-out record) and :attr:`FeatureSplit.no_validation` says why,
so the run reports that it kept its first draft instead of ranking on one class (issue 18:
12 activating + 3 non-activating records once ranked on activating records alone, every
candidate's score null). An in-sample result ranks on the records it is scored on, the only
ones it has; :attr:`FeatureSplit.validation_seen_records` counts those the explainer saw.
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
    test_activating: list[pb.Activation]
    test_non_activating: list[pb.Activation]
    validation_activating: list[pb.Activation]
    validation_non_activating: list[pb.Activation]
    test: Split
    validation: Split | None
    """Ranks best-of-k candidates; None with a single candidate, or when the records cannot
    give the ranking scorer what it needs (:attr:`no_validation` says why)."""
    in_sample: bool
    latent_max: float
    """The latent's maximum over all the feature's activating records (the scale every
    split is normalised on)."""
    train_records: int
    test_records: int
    validation_records: int
    """Records of :attr:`validation` (0 when there is none)."""
    validation_seen_records: int
    """Of :attr:`validation_records`, those the explainer also saw (in-sample only)."""
    no_validation: str
    """Why best-of-k cannot rank this feature's candidates (a clause, e.g. "too few
    non-activating records (1) ..."); empty with a single candidate or a usable validation
    split."""


def _cut(
    records: Sequence[pb.Activation], fraction: float, rng: random.Random
) -> tuple[list[pb.Activation], list[pb.Activation]]:
    """(kept, held out), in request order; nothing held out below 2 * MIN_PER_SIDE records."""
    n = len(records)
    if fraction <= 0 or n < 2 * MIN_PER_SIDE:
        return list(records), []
    n_held = min(n - MIN_PER_SIDE, max(MIN_PER_SIDE, round(n * fraction)))
    return _take(records, n_held, rng)


def _take(
    records: Sequence[pb.Activation], n_taken: int, rng: random.Random
) -> tuple[list[pb.Activation], list[pb.Activation]]:
    """(the rest, ``n_taken`` records drawn at random), each in request order."""
    taken = set(rng.sample(range(len(records)), n_taken))
    return (
        [r for i, r in enumerate(records) if i not in taken],
        [r for i, r in enumerate(records) if i in taken],
    )


def _too_few(held: dict[str, list[pb.Activation]], needs_both: bool) -> str:
    """Why the held-out records cannot be halved into validation and test ("" if they can):
    each side of a class needs one record, and a ranking scorer that contrasts the classes
    needs both classes in validation (the test needs both for every scorer anyway)."""
    for name, records in held.items():
        if name == "non-activating" and not needs_both:
            continue
        if len(records) < 2:
            return (
                f"too few held-out {name} records ({len(records)}) to set some aside for "
                "validation and keep some for the test (validation and test records are "
                "disjoint)"
            )
    return ""


def _missing(activating: int, non_activating: int, needs_both: bool) -> str:
    """Why in-sample records cannot rank candidates ("" if they can)."""
    if not activating:
        return "the feature has no activating records to rank the candidates on"
    if needs_both and not non_activating:
        return "the feature has no non-activating records to rank the candidates on"
    return ""


def split_feature(
    feature: pb.Feature,
    holdout: float,
    seed: str,
    *,
    explainer_reads_non_activating: bool,
    candidates: int,
    ranker_needs_non_activating: bool = True,
) -> FeatureSplit:
    """The feature's records for the explainer, the candidate ranking and the scorers.

    ``ranker_needs_non_activating``: the scorer that ranks best-of-k candidates contrasts the
    two classes, so validation must hold both."""
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
    act_test, non_test = act_held, non_held
    act_val: list[pb.Activation] = []
    non_val: list[pb.Activation] = []
    no_validation = ""
    if candidates > 1:
        if in_sample:
            # The only records there are: ranked on what is scored (the result says so).
            no_validation = _missing(len(act_held), len(non_held), ranker_needs_non_activating)
            if not no_validation:
                act_val, non_val = act_held, non_held
        else:
            held = {"activating": act_held, "non-activating": non_held}
            no_validation = _too_few(held, ranker_needs_non_activating)
            if not no_validation:
                act_test, act_val = _take(act_held, len(act_held) // 2, rng)
                non_test, non_val = _take(non_held, len(non_held) // 2, rng)
    validation = None
    if act_val or non_val:
        validation = split_records(act_val, non_activating=non_val, latent_max=peak)
    seen = {id(r) for r in (*act_train, *non_train)}
    return FeatureSplit(
        explain_activating=act_train,
        explain_non_activating=non_train,
        test_activating=act_test,
        test_non_activating=non_test,
        validation_activating=act_val,
        validation_non_activating=non_val,
        test=split_records(act_test, non_activating=non_test, latent_max=peak),
        validation=validation,
        in_sample=in_sample,
        latent_max=peak,
        train_records=len(act_train) + len(non_train),
        test_records=0 if in_sample else len(act_test) + len(non_test),
        validation_records=len(act_val) + len(non_val),
        validation_seen_records=sum(id(r) in seen for r in (*act_val, *non_val)),
        no_validation=no_validation,
    )
