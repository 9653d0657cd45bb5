"""Parallel classifier batches, upstream caps and coalesced embeddings: correctness only."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import numpy as np
import pytest
from samples import RIGHT_EXPLANATION

from autointerp_grpc.backends.embedding import EmbeddingBackend
from autointerp_grpc.backends.llm import LLMBackend
from autointerp_grpc.config import Settings
from autointerp_grpc.delphi_compat import EmbeddingScorer, embedding_samples
from autointerp_grpc.gen.autointerp.v1 import autointerp_pb2 as pb
from autointerp_grpc.methods.classifiers import run_classifier
from autointerp_grpc.records import split_records

KEY = "sk-concurrency-test"


def _records(n: int) -> list[pb.Activation]:
    """n records, half activating (a cat token at 0.9), half not."""
    records = []
    for i in range(n):
        if i % 2 == 0:
            records.append(pb.Activation(tokens=["My", " cat", f" {i}"], values=[0, 0.9, 0]))
        else:
            records.append(pb.Activation(tokens=["The", " bank", f" {i}"], values=[0, 0, 0]))
    return records


@pytest.fixture
async def backend(fake_llm) -> AsyncIterator[LLMBackend]:
    fake_llm.set_fault(None)
    fake_llm.set_latency(0)
    fake_llm.reset_stats()
    llm = LLMBackend(Settings(llm_base_url=fake_llm.base_url, llm_max_retries=0))
    yield llm
    await llm.aclose()


@pytest.mark.parametrize("fuzz", [False, True])
async def test_parallel_batches_equal_the_sequential_path(backend, fuzz: bool) -> None:
    split = split_records(_records(40))
    runs = {}
    for concurrency in (1, 8):
        outputs = await run_classifier(
            split_records(_records(40)),
            RIGHT_EXPLANATION,
            backend.client("m", KEY),
            fuzz=fuzz,
            concurrency=concurrency,
            seed=7,
        )
        runs[concurrency] = [dataclasses.astuple(o) for o in outputs]
    assert runs[1] == runs[8]
    assert len(runs[1]) == len(split.in_order)


async def test_request_cap_is_respected(backend, fake_llm) -> None:
    fake_llm.set_latency(0.1)
    split = split_records(_records(40))  # 8 batches of 5
    await run_classifier(
        split, RIGHT_EXPLANATION, backend.client("m", KEY), fuzz=False, concurrency=3
    )
    stats = fake_llm.stats()
    assert stats["requests"] == 8
    assert stats["peak_in_flight"] == 3


async def test_process_cap_is_respected_across_requests(fake_llm) -> None:
    fake_llm.set_fault(None)
    fake_llm.set_latency(0.1)
    fake_llm.reset_stats()
    llm = LLMBackend(Settings(llm_base_url=fake_llm.base_url, llm_max_concurrency=4))
    try:
        await asyncio.gather(
            *(
                run_classifier(
                    split_records(_records(40)),
                    RIGHT_EXPLANATION,
                    llm.client("m", KEY),
                    fuzz=False,
                    concurrency=8,
                )
                for _ in range(3)
            )
        )
    finally:
        await llm.aclose()
        fake_llm.set_latency(0)
    stats = fake_llm.stats()
    assert stats["requests"] == 24
    assert stats["peak_in_flight"] == 4


@pytest.fixture(scope="module")
def model() -> object:
    return EmbeddingBackend.load(Settings()).model


async def test_coalesced_embeddings_equal_per_request_ones(model) -> None:
    coalescing = EmbeddingBackend(model, "test", coalesce=True, window_s=0.02, max_batch=1000)
    requests = [
        [f"text {i} about {topic}" for topic in ("cats", "banks", "rain")] for i in range(16)
    ]
    try:
        together = await asyncio.gather(*(coalescing.encode(r) for r in requests))
        assert coalescing.batcher is not None
        assert max(coalescing.batcher.batch_sizes) > 3, "nothing was coalesced"
        for texts, rows in zip(requests, together, strict=True):
            alone = coalescing.encode_now(texts)
            np.testing.assert_allclose(rows, alone, atol=1e-5)
    finally:
        await coalescing.close()


async def test_similarities_equal_delphis_embedding_scorer(model) -> None:
    backend = EmbeddingBackend(model, "test", coalesce=True)
    split = split_records(_records(10))
    samples = embedding_samples(split.in_order)
    try:
        ours = await backend.explanation_similarities(RIGHT_EXPLANATION, [s.text for s in samples])
    finally:
        await backend.close()
    theirs = EmbeddingScorer(model)._query(RIGHT_EXPLANATION, embedding_samples(split.in_order))
    np.testing.assert_allclose(ours, [o.similarity for o in theirs], atol=1e-5)
