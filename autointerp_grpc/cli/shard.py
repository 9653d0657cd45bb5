"""``autointerp run --shard I/N``: a deterministic share of the input for one of N workers.

A feature belongs to shard ``I`` of ``N`` when the SHA-256 of its id, read as a number, is
``I`` modulo ``N``: every worker that reads the same input computes the same split without
talking to the others, the N shards together hold every feature exactly once, and a
feature's shard does not depend on where it sits in the file. Without ``--shard`` a
Kubernetes Indexed Job's ``JOB_COMPLETION_INDEX`` is the index, with the count from
``AUTOINTERP_SHARD_COUNT`` (the Job's ``completions``; ``deploy/shards-job.yaml`` sets both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from autointerp_grpc.cli.inputs import UsageError
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb

INDEX_ENV = "JOB_COMPLETION_INDEX"
COUNT_ENV = "AUTOINTERP_SHARD_COUNT"


def parse_shard(text: str | None, environ: Mapping[str, str]) -> tuple[int, int] | None:
    """``(index, count)`` from ``--shard I/N`` (or the Indexed Job's environment), or None
    when the run is not sharded; UsageError naming what is wrong."""
    source = "--shard"
    if text is None:
        index_text = environ.get(INDEX_ENV, "").strip()
        if not index_text:
            return None
        count_text = environ.get(COUNT_ENV, "").strip()
        if not count_text:
            raise UsageError(
                f"${INDEX_ENV} is set ({index_text}) but ${COUNT_ENV} is not: set it to the "
                "Job's completions, or pass --shard I/N"
            )
        text = f"{index_text}/{count_text}"
        source = f"${INDEX_ENV}/${COUNT_ENV}"
    index_part, slash, count_part = text.partition("/")
    try:
        index, count = int(index_part), int(count_part)
    except ValueError:
        index, count = -1, 0
    if not slash or count < 1 or not 0 <= index < count:
        raise UsageError(f"{source} must be I/N with N at least 1 and 0 <= I < N (got {text!r})")
    return index, count


def shard_of(feature_id: str, count: int) -> int:
    """Which of ``count`` shards the feature ``feature_id`` belongs to."""
    digest = hashlib.sha256(feature_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


def select(features: Sequence[pb.Feature], shard: tuple[int, int] | None) -> list[pb.Feature]:
    """The features of ``shard`` (all of them when None), in input order."""
    if shard is None:
        return list(features)
    index, count = shard
    return [f for f in features if shard_of(f.id, count) == index]
