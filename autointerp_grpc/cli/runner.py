"""The bulk runner of an ``autointerp run`` (live or a ``--batch`` round), from its command
line: the one place the run's flags become a :class:`~autointerp_grpc.client.bulk.BulkRunner`."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable

from autointerp_grpc.client import bulk
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb


def bulk_runner(
    args: argparse.Namespace,
    servers: list[bulk.Server],
    template: pb.ExplainAndScoreRequest,
    features: Iterable[pb.Feature],
    finish: Callable[[pb.FeatureResult], None],
    *,
    on_usage: Callable[[pb.Usage], None],
    on_retry: Callable[[bulk.Job, pb.FeatureResult], None] | None = None,
    on_batch: Callable[[pb.BatchRound], None] | None = None,
) -> bulk.BulkRunner | None:
    """A runner over ``servers`` for the ``features`` that can be sent; a feature refused
    before sending (:func:`~autointerp_grpc.client.bulk.local_error`) goes to ``finish`` at
    once. None when none is left to send."""
    jobs: list[bulk.Job] = []
    for feature in features:
        local = bulk.local_error(feature)
        if local is not None:
            finish(local)
        else:
            jobs.append(bulk.Job(feature))
    if not jobs:
        return None
    return bulk.BulkRunner(
        servers,
        template,
        jobs,
        batch_size=args.batch_size,
        streams=args.streams or 2 * len(servers),
        retries=args.retries,
        stream_timeout=args.timeout,
        idle_timeout=args.idle_timeout or None,
        on_result=finish,
        on_usage=on_usage,
        on_retry=on_retry,
        on_batch=on_batch,
    )
